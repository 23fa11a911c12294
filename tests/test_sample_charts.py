"""dashboard.sample_charts: per-character probabilities, and the next-character view as top k with its temperature."""

import math
import string

import numpy as np

from dashboard import sample_charts


def test_char_probs_figure():
    fig = sample_charts.char_probs_figure("ab", ["a", "b", "."], [0.5, 0.25, 1.0])
    probs, nll = fig.data
    assert list(probs.y) == [0.5, 0.25, 1.0]
    assert np.allclose(nll.y, [math.log(2), math.log(4), 0.0])
    assert "Noto Sans CJK" in fig.layout.font.family  # a name in any script gets glyphs


def test_next_char_figure_most_likely_first_at_t1():
    fig = sample_charts.next_char_figure([("a", 0.2), (".", 0.5), ("b", 0.3)], "em")
    assert list(fig.data[0].x) == [".", "b", "a"]
    assert "'em'" in fig.layout.title.text and "T = 1: the model's own distribution" in fig.layout.title.text
    colours = list(fig.data[0].marker.color)
    assert colours[0] == sample_charts.GREY and colours[2] == sample_charts.ORANGE  # '.' and the vowel


def test_next_char_figure_names_an_applied_temperature():
    fig = sample_charts.next_char_figure([("a", 0.6), ("b", 0.4)], "", temperature=0.7)
    assert "T = 0.7 applied" in fig.layout.title.text and "(start of a name)" in fig.layout.title.text


def test_the_lectures_27_tokens_all_show():
    dist = [(c, 1 / 27) for c in "." + string.ascii_lowercase]
    fig = sample_charts.next_char_figure(dist, "")
    assert len(fig.data[0].x) == 27 and "most likely of" not in fig.layout.xaxis.title.text


def test_a_big_alphabet_shows_the_top_k_and_the_rest_in_words():
    chars = [".", *(chr(0x4E00 + i) for i in range(5000))]
    probs = np.random.default_rng(0).dirichlet(np.ones(len(chars)))
    fig = sample_charts.next_char_figure(list(zip(chars, probs.tolist(), strict=True)), "王")
    bars = fig.data[0]
    assert len(bars.x) == sample_charts.TOP_K
    assert list(bars.y) == sorted(probs, reverse=True)[: sample_charts.TOP_K]
    rest = 1 - sum(bars.y)
    assert f"the {sample_charts.TOP_K} most likely of 5,001 tokens" in fig.layout.xaxis.title.text
    assert f"p = {rest:.2f} together" in fig.layout.xaxis.title.text
