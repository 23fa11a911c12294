"""dashboard.embedding_charts: vowels by base letter, labels that never overlap, top-k labels for big alphabets."""

import math
import string

import numpy as np
import pytest

from dashboard import analysis
from dashboard import embedding_charts as ec

LECTURE = list("." + string.ascii_lowercase)


def label_boxes(fig, x_range, y_range) -> list[tuple[str, float, float, float, float]]:
    """(text, left, right, bottom, top) of every label in the layout's pixels (y up), as embedding_figure placed it."""
    sx = ec.PLOT_WIDTH / (x_range[1] - x_range[0])
    sy = ec.PLOT_HEIGHT / (y_range[1] - y_range[0])
    boxes = []
    for a in fig.layout.annotations:
        cx = (a.x - x_range[0]) * sx + a.ax
        cy = (a.y - y_range[0]) * sy - a.ay
        w, h = 8 + ec.text_width(a.text), ec.LABEL_HEIGHT
        boxes.append((a.text, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2))
    return boxes


def overlapping(boxes) -> list[tuple[str, str]]:
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[2] and b[1] < a[2] and a[3] < b[4] and b[3] < a[4]
    ]


def lecture_like_points() -> np.ndarray:
    """The end of the lecture's run: 18 letters in one tight blob, the rest ('.', q, j, ...) far out."""
    rng = np.random.default_rng(0)
    pts = rng.normal(scale=0.15, size=(27, 2))
    pts[[0, 17, 10, 6, 1, 2, 13, 12, 11]] = [[2.6, -0.4], [3.6, 0.6], [-1.8, -3.3], [-1.8, 0.6], [-1, 1.6],
                                              [-1.1, 1.2], [-1.4, 1.1], [0.7, -0.9], [0.7, -1.0]]  # fmt: skip
    return pts


@pytest.mark.parametrize(
    "points",
    [lecture_like_points(), np.zeros((27, 2)), np.random.default_rng(1).normal(size=(27, 2))],
    ids=["lecture-blob", "all-on-one-spot", "spread"],
)
def test_every_label_is_legible_at_the_default_view(points):
    x_range, y_range = analysis.axis_ranges([points])
    fig = ec.embedding_figure(points, LECTURE, x_title="PC1", y_title="PC2", x_range=x_range, y_range=y_range)
    boxes = label_boxes(fig, x_range, y_range)
    # Every character is labelled, or named as one without room near its dot (the page's caption lists them).
    assert sorted([b[0] for b in boxes] + fig.layout.meta["unlabelled"]) == sorted(LECTURE)
    assert overlapping(boxes) == []
    # Short leader lines only: pushed further, the blob's labels made a starburst of crossing lines.
    assert all(math.hypot(a.ax, a.ay) <= ec.MAX_LEADER + 1e-9 for a in fig.layout.annotations)
    for _, left, right, bottom, top in boxes:  # inside the plot area
        assert left >= -0.5 and right <= ec.PLOT_WIDTH + 0.5 and bottom >= -0.5 and top <= ec.PLOT_HEIGHT + 0.5


def test_the_lecture_blob_labels_what_fits_and_a_zoom_labels_the_rest():
    points = lecture_like_points()
    x_range, y_range = analysis.axis_ranges([points])
    fig = ec.embedding_figure(points, LECTURE, x_title="PC1", y_title="PC2", x_range=x_range, y_range=y_range)
    loners = {LECTURE[i] for i in (0, 17, 10, 6, 1, 2, 13, 12, 11)}  # '.', q, j, ...: far from the blob
    left_off = fig.layout.meta["unlabelled"]
    assert left_off and not set(left_off) & loners  # only the blob's characters lack room
    assert fig.layout.meta["outside"] == []
    zoom_x, zoom_y = analysis.crowd_ranges(points)
    zoomed = ec.embedding_figure(points, LECTURE, x_title="PC1", y_title="PC2", x_range=zoom_x, y_range=zoom_y)
    assert set(zoomed.layout.meta["outside"]) == loners
    assert zoomed.layout.meta["unlabelled"] == []  # in the zoom, every character of the blob has its label
    assert len(zoomed.layout.annotations) == 27 - 9


def test_a_searched_character_is_labelled_even_in_the_crowd():
    points = np.zeros((27, 2))  # all on one spot: room for only a few labels
    fig = ec.embedding_figure(points, LECTURE, x_title="x", y_title="y", highlight={"k", "z"})
    assert {"k", "z"} <= {a.text for a in fig.layout.annotations}
    assert "k" not in fig.layout.meta["unlabelled"] and "z" not in fig.layout.meta["unlabelled"]


def test_pca_axes_give_the_variance_of_the_snapshot_shown():
    rng = np.random.default_rng(0)
    init = rng.normal(size=(27, 10))  # N(0, 1): no direction stands out
    final = init * [6, 3, 1, 1, 1, 1, 1, 1, 1, 1]  # training stretched two directions
    basis = analysis.pca_basis(final)
    assert basis.explained_of(final) == pytest.approx(basis.explained)
    at_init = basis.explained_of(init)
    assert at_init[0] < basis.explained[0] / 2 and at_init[1] < basis.explained[1]
    assert 0 < at_init.sum() < 1


def test_labels_stay_on_their_points_when_there_is_room():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fig = ec.embedding_figure(points, [".", "a", "b", "c"], x_title="x", y_title="y")
    assert [(a.ax, a.ay) for a in fig.layout.annotations] == [(0, 0)] * 4


@pytest.mark.parametrize("points", [lecture_like_points(), np.random.default_rng(1).normal(size=(27, 2))])
def test_no_label_hides_another_characters_dot(points):
    x_range, y_range = analysis.axis_ranges([points])
    fig = ec.embedding_figure(points, LECTURE, x_title="PC1", y_title="PC2", x_range=x_range, y_range=y_range)
    dots = (points - [x_range[0], y_range[0]]) * [
        ec.PLOT_WIDTH / (x_range[1] - x_range[0]),
        ec.PLOT_HEIGHT / (y_range[1] - y_range[0]),
    ]
    for text, left, right, bottom, top in label_boxes(fig, x_range, y_range):  # some blob labels are left off
        for j, (x, y) in enumerate(dots):
            if LECTURE[j] != text:
                assert not (left + 1 < x < right - 1 and bottom + 1 < y < top - 1), (text, LECTURE[j])


@pytest.mark.parametrize(("ch", "vowel"), [*((c, True) for c in "aeiouAEIOUéÖåÅøæœ"), *((c, False) for c in "bYçñ.1 ")])
def test_accented_vowels_are_vowels(ch, vowel):
    assert analysis.is_vowel(ch) is vowel


def test_vowels_consonants_and_the_marker_are_coloured_apart():
    labels = [".", "a", "b", "é", " ", "Ö"]
    fig = ec.embedding_figure(np.arange(12.0).reshape(6, 2), labels, x_title="PC1", y_title="PC2", y_range=[0, 11])
    by_name = {t.name: list(t.text) for t in fig.data}
    assert by_name == {"vowel": ["a", "é", "Ö"], "consonant / other": ["b", "␣"], "'.' start/end": ["."]}
    assert list(fig.layout.yaxis.range) == [0, 11]


def test_thousands_of_characters_label_the_most_frequent_and_the_searched():
    rng = np.random.default_rng(0)
    labels = [".", *(chr(0x4E00 + i) for i in range(5000))]
    counts = {ch: 5000 - i for i, ch in enumerate(labels[1:])}  # the first ideographs are the most frequent
    searched = {labels[4000], labels[4999]}
    fig = ec.embedding_figure(
        rng.normal(size=(5001, 2)), labels, x_title="PC1", y_title="PC2", counts=counts, highlight=searched
    )
    shown = {a.text for a in fig.layout.annotations}
    assert shown | set(fig.layout.meta["unlabelled"]) == {".", *labels[1 : 1 + ec.TOP_LABELS], *searched}
    assert searched <= shown and len(shown) > ec.TOP_LABELS / 2  # a few may lack room near their dots
    assert sum(len(t.x) for t in fig.data if t.name != "searched") == 5001  # every character is a dot
    ring = next(t for t in fig.data if t.name == "searched")
    assert len(ring.x) == 2
    assert "Noto Sans CJK" in fig.layout.annotations[0].font.family
    assert all(a.bgcolor == ec.RED for a in fig.layout.annotations if a.text in searched)


def test_wide_characters_get_wider_labels():
    assert ec.text_width("王") == pytest.approx(1.5 * ec.text_width("a"))
