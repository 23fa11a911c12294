"""The Embeddings and Sample pages through AppTest: legible labels and search, honest next-character view,
case folding, held-out names, and a 5,000-character CJK upload through both pages."""

import json

from test_alphabet import MIXED, cjk_names
from test_app import TINY, app, clean_caches, fresh_registry, run_of, texts, train_tiny, wait_for  # noqa: F401 (fixtures)

from dashboard import embedding_charts, sidebar, state

EMBEDDINGS, SAMPLE = "pages/2_embeddings.py", "pages/4_sample.py"


def chart(at, key: str) -> dict:
    """The plotly spec of the chart with this widget key."""
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)


def upload(at, name: str, words: list[str]):
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    raw = ("\n".join(words) + "\n").encode()
    at.file_uploader(key=state.DATA_UPLOAD).set_value((name, raw, "text/plain")).run()
    assert not at.error, texts(at.error)
    return at


def test_embeddings_label_every_character_and_search_highlights():
    at = train_tiny(app())
    at.switch_page(EMBEDDINGS).run()
    assert not at.exception
    spec = chart(at, "embedding_chart")
    assert sorted(a["text"] for a in spec["layout"]["annotations"]) == sorted(".abcdefghijklmnopqrstuvwxyz")
    assert "overlap are moved aside" in texts(at.caption)
    at.text_input(key=state.EMB_SEARCH).set_value("Qé").run()  # folded to the data's case; é is not in names.txt
    spec = chart(at, "embedding_chart")
    assert any(t["name"] == "searched" for t in spec["data"])
    red = [a["text"] for a in spec["layout"]["annotations"] if a["bgcolor"] == embedding_charts.RED]
    assert red == ["q"]
    assert "Not in this data's alphabet: é" in texts(at.caption)


def test_next_char_shows_the_models_own_distribution_unless_asked():
    at = train_tiny(app())
    at.switch_page(SAMPLE).run()
    at.slider(key=state.SAMPLE_TEMPERATURE).set_value(0.5).run()
    plain = chart(at, "next_char_chart")
    assert "T = 1: the model's own distribution" in plain["layout"]["title"]["text"]
    assert "the model's own distribution (T = 1)" in texts(at.caption)
    at.toggle(key=state.NEXT_USE_TEMPERATURE).set_value(True).run()
    hot = chart(at, "next_char_chart")
    assert "T = 0.5 applied" in hot["layout"]["title"]["text"] and "temperature T = 0.5" in texts(at.caption)
    assert max(hot["data"][0]["y"]) > max(plain["data"][0]["y"])  # T < 1 sharpens: the top bar grows


def test_scoring_folds_case_and_says_so():
    at = train_tiny(app())
    at.switch_page(SAMPLE).run()
    at.text_input(key=state.SCORE_WORD).set_value("Anna").run()
    assert not at.error, texts(at.error)
    assert "'Anna' is read as 'anna'" in texts(at.caption)
    assert "'anna'" in chart(at, "score_chart")["layout"]["title"]["text"]
    at.text_input(key=state.SAMPLE_PREFIX).set_value("EM").run()
    at.button(key="btn_sample").click().run()
    assert all(name.startswith("em") for name in at.dataframe[0].value["name"])


def test_new_names_say_how_many_are_real_held_out_names():
    at = train_tiny(app(), hp_steps=1000)
    at.switch_page(SAMPLE).run()
    at.number_input(key=state.SAMPLE_N).set_value(200)
    at.button(key="btn_sample").click().run()
    table = at.dataframe[0].value
    held_out = run_of(at).job.dataset.held_out_word_set
    real = [n for n, mark in zip(table["name"], table["new?"], strict=True) if mark == "new (a real held-out name)"]
    assert real and all(n in held_out for n in real)
    # Distinct names: a name sampled twice counts once (issue 17, #5).
    new = len({n for n, mark in zip(table["name"], table["new?"], strict=True) if mark.startswith("new")})
    assert f"Of the {new} new names, {len(set(real))} are real names from the held-out dev/test words" in texts(
        at.caption
    )


def test_a_5000_character_cjk_upload_through_both_pages():
    words = cjk_names()
    at = upload(app(), "cjk.txt", words)
    assert "5,001 tokens" in texts(at.sidebar.caption)
    at = train_tiny(at, hp_steps=30, hp_eval_every=30)
    assert run_of(at).job.dataset.vocab.size == 5001

    at.switch_page(EMBEDDINGS).run()
    assert not at.exception
    spec = chart(at, "embedding_chart")
    assert len(spec["layout"]["annotations"]) <= 45 and "5,001 characters" in texts(at.caption)
    at.text_input(key=state.EMB_SEARCH).set_value(words[0][0]).run()
    assert words[0][0] in {a["text"] for a in chart(at, "embedding_chart")["layout"]["annotations"]}

    at.switch_page(SAMPLE).run()
    at.button(key="btn_sample").click().run()
    # (The page's own errors: the sidebar may say that a 30-step run ended worse than guessing, i.e. diverged.)
    assert not at.exception and not at.main.error
    assert all(set(n.removesuffix("…")) <= set("".join(words)) for n in at.dataframe[0].value["name"])
    at.text_input(key=state.SCORE_WORD).set_value(words[1]).run()
    assert not at.main.error and chart(at, "score_chart")
    bars = chart(at, "next_char_chart")
    assert len(bars["data"][0]["x"]) == 30 and "most likely of 5,001 tokens" in bars["layout"]["xaxis"]["title"]["text"]


def test_a_mixed_script_upload_samples_and_scores():
    at = train_tiny(upload(app(), "mixed.txt", MIXED * 3), hp_steps=30, hp_eval_every=30)
    at.switch_page(SAMPLE).run()
    at.text_input(key=state.SCORE_WORD).set_value("Ελένη").run()
    assert not at.main.error and not at.exception
    at.switch_page(EMBEDDINGS).run()
    labels = {a["text"] for a in chart(at, "embedding_chart")["layout"]["annotations"]}
    assert {"Ε", "민", "さ", "王", "␣"} <= labels  # few enough characters: every one labelled


def test_an_upload_with_capitals_offers_lower_casing_and_scoring_names_the_case():
    from mlp_core.data import builtin_words

    words = [w.capitalize() for w in builtin_words()[:400]]
    at = upload(app(), "Caps.txt", words)
    # Case doubles the alphabet: the sidebar says so and offers the lower-cased alphabet.
    n_caps = len(set("".join(words))) + 1
    captions = texts(at.sidebar.caption)
    assert f"{len(words):,} words · {n_caps} tokens" in captions
    assert f"alphabet has **{n_caps} tokens**" in captions and "Lower-cased it would have 27" in captions
    # Trained as written, scoring a lower-case name says why its first letter gets p ≈ 0.
    at = train_tiny(at, hp_steps=30, hp_eval_every=30)
    at.switch_page(SAMPLE).run()
    at.text_input(key=state.SCORE_WORD).set_value("anna").run()
    hint = texts(at.warning)
    assert "Case matters" in hint and "'Anna'" in hint and "lower-case the words at upload" in hint
    at.text_input(key=state.SCORE_WORD).set_value("Anna").run()
    assert "Case matters" not in texts(at.warning)
    # Lower-cased at upload: 27 tokens, the words the run trains on are lower-case.
    at.checkbox(key=sidebar.DATA_LOWERCASE).check().run()
    assert "(lower-cased) · 27 tokens" in texts(at.sidebar.caption)
    assert "`. a b c d e f g h i j k l m n o p q r s t u v w x y z`" in texts(at.sidebar.caption)
    assert run_of(at).upload[2][0] == words[0].lower()
    at = train_tiny(at, hp_steps=30, hp_eval_every=30)
    assert run_of(at).job.dataset.vocab.size == 27
    at.switch_page(SAMPLE).run()
    at.text_input(key=state.SCORE_WORD).set_value("anna").run()
    assert "Case matters" not in texts(at.warning)


def test_the_embedding_slider_follows_a_live_run_unless_moved_back():
    at = app()
    for key, value in {**TINY, "hp_steps": 64_000}.items():  # a snapshot every 1,000 steps
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    job = run_of(at).job

    def newest() -> int:
        return job.snapshot().embeddings[-1].step

    wait_for(lambda: newest() > 0)
    at.switch_page(EMBEDDINGS).run()
    shown = at.select_slider(key=state.EMB_STEP).value
    assert shown > 0 and "the slider follows the newest one" in texts(at.caption)
    # A newer snapshot arrives: the slider, left at the newest, moves on to it (and the chart with it).
    wait_for(lambda: newest() > shown)
    at.run()
    followed = at.select_slider(key=state.EMB_STEP).value
    assert followed > shown
    assert f"at step {followed:,}" in chart(at, "embedding_chart")["layout"]["title"]["text"]
    # Moved back to the start: it stays there while newer snapshots arrive.
    at.select_slider(key=state.EMB_STEP).set_value(0).run()
    wait_for(lambda: newest() > followed)
    at.run()
    assert at.select_slider(key=state.EMB_STEP).value == 0
    job.stop()
