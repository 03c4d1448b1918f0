"""UltraFeedback's pieces one by one: loading its texts (a folder copy, a clone, the pinned download, cached),
the pool and principle draws, filling and parsing the judge's replies, the overall_score fix."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.aif.conftest import uf_text
from zephyr.aif import rubric, ultrafeedback
from zephyr.aif.pool import draw_answerers, draw_principle, parse_answerer, parse_pool, with_system_prompt
from zephyr.errors import ConfigError

DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 1024}


def fake_clone(root, uf_dir):
    """A folder laid out as the official repository, its strings assigned in Python files (never run)."""
    texts = ultrafeedback.load(str(uf_dir))
    files: dict[str, list[str]] = {}
    for name, (path, variable) in ultrafeedback.SOURCES.items():
        files.setdefault(path, ["import os  # code around the strings is never executed", "os.abort()"])
        files[path].append(f"{variable} = {texts[name]!r}")
    for path, lines in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("\n".join(lines) + "\n")
    return texts


def test_texts_from_a_folder_a_clone_and_the_pinned_download(uf_dir, tmp_path, monkeypatch):
    texts = ultrafeedback.load(str(uf_dir))
    assert texts["honesty_template"] == uf_text("honesty_template")
    assert len(texts["principles"]["helpfulness"]) == 11
    clone = tmp_path / "clone"
    expected = fake_clone(clone, uf_dir)
    assert ultrafeedback.load(str(clone)).strings == expected.strings

    fetched = []

    class Response:
        def __init__(self, url):
            fetched.append(url)
            self.data = (clone / url.removeprefix(ultrafeedback.RAW_URL)).read_bytes()

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ultrafeedback.urllib.request, "urlopen", lambda url, timeout: Response(url))
    downloaded = ultrafeedback.load()
    assert downloaded.strings == expected.strings
    assert downloaded.origin == f"OpenBMB/UltraFeedback@{ultrafeedback.COMMIT}"
    assert all(url.startswith(f"https://raw.githubusercontent.com/OpenBMB/UltraFeedback/{ultrafeedback.COMMIT}/")
               for url in fetched) and len(fetched) == 4
    assert ultrafeedback.load().strings == expected.strings and len(fetched) == 4  # cached: no new download
    with pytest.raises(ConfigError, match="is missing"):
        ultrafeedback.load(str(tmp_path))


def test_pool_specs():
    local = parse_answerer("embedded,temperature=0.5,name=cool", DEFAULTS)
    assert (local.model, local.name, local.temperature, local.top_p, local.url) == ("embedded", "cool", 0.5, 1.0, "")
    api = parse_answerer("url=https://api.openai.com/v1,model=gpt-4", DEFAULTS)
    assert api.url == "https://api.openai.com/v1" and api.model == "gpt-4" and api.max_new_tokens == 1024
    for bad, match in (("a,temperature=hot", "must be a float"), ("a,top_p=0", "top_p"), ("name=x", "no model"),
                       ("a,b", "not key=value"), ("url=http://127.0.0.1:1/v1,model=m,top_k=5", "no top_k")):
        with pytest.raises(ConfigError, match=match):
            parse_answerer(bad, DEFAULTS)
    with pytest.raises(ConfigError, match="same name"):
        parse_pool(["a", "a"], DEFAULTS)


def test_draws_are_seeded_per_prompt_and_distinct():
    pool = parse_pool(list("abcdefg"), DEFAULTS)
    first = [draw_answerers(pool, 4, 42, i) for i in range(200)]
    assert first == [draw_answerers(pool, 4, 42, i) for i in range(200)]
    assert all(len({a.name for a in drawn}) == 4 for drawn in first)
    assert first != [draw_answerers(pool, 4, 43, i) for i in range(200)]
    counts = Counter(a.name for drawn in first for a in drawn)
    assert all(abs(n / 800 - 1 / 7) < 0.04 for n in counts.values()), counts


@pytest.mark.parametrize("source, expected", [
    ("sharegpt", {"helpfulness": 0.6, "truthfulness": 0.2, "honesty": 0.18, "verbalized_calibration": 0.02}),
    ("ultrachat", {"helpfulness": 0.6, "truthfulness": 0.2, "honesty": 0.18, "verbalized_calibration": 0.02}),
    ("flan", {"helpfulness": 0.8, "verbalized_calibration": 0.2}),
    ("evol_instruct", {"helpfulness": 1.0}),
    ("false_qa", {"truthfulness": 0.5, "honesty": 0.45, "verbalized_calibration": 0.05}),
    ("something_else", {"helpfulness": 1.0}),
])
def test_principles_by_source_in_ultrafeedbacks_proportions(uf_dir, source, expected):
    principles = json.loads((uf_dir / "principles.json").read_text())
    n = 6000
    draws = [draw_principle(source, principles, 0, i, s) for i in range(n // 4) for s in range(4)]
    counts = Counter(p for p, _ in draws)
    assert set(counts) == set(expected)
    for principle, share in expected.items():
        assert abs(counts[principle] / n - share) < 0.025, (principle, counts)
    assert all(prompt in principles[p] for p, prompt in draws)
    assert "harmlessness" not in counts


def test_principle_goes_into_the_system_message():
    assert with_system_prompt([{"role": "user", "content": "q"}], "Be honest.") == [
        {"role": "system", "content": "Be honest."}, {"role": "user", "content": "q"}]
    assert with_system_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}],
                              "Be honest.")[0] == {"role": "system", "content": "Be brief. Be honest."}


def uf_block(i, rating, typed=False):
    if typed:
        return f"#### Output for Text {i}\nType: 1, 2\nRationale: kinds.\nRating: {rating}\nRationale: why {i}."
    return f"#### Output for Text {i}\nRating: {rating}\nRationale: why {i}.\nMore of why."


def test_aspect_replies_parsed_as_ultrafeedback():
    reply = "\n\n".join(uf_block(i, r) for i, r in enumerate(["4", "N/A", "5 (good)", "1"], 1))
    parsed = rubric.parse_aspect(reply, "honesty")
    assert [a["Rating"] for a in parsed] == ["4", "N/A", "5", "1"]
    assert parsed[0]["Rationale"] == "why 1.\nMore of why."
    typed = rubric.parse_aspect("\n\n".join(uf_block(i, 3, typed=True) for i in range(1, 5)), "helpfulness")
    assert typed[0] == {"Type": ["1", "2"], "Rationale": "kinds.", "Rating": "3", "Rationale For Rating": "why 1."}
    assert rubric.parse_aspect("\n\n".join(uf_block(i, 3) for i in range(1, 4)), "honesty") is None  # 3 blocks
    assert rubric.parse_aspect("\n\n".join(uf_block(i, 3) for i in range(1, 6)), "honesty") is None  # 5 blocks
    assert rubric.parse_aspect("\n\n".join(uf_block(i, r) for i, r in enumerate("1237", 1)), "honesty") is None
    assert rubric.parse_aspect("\n\n".join(uf_block(i, "N/A", True) for i in range(1, 5)), "truthfulness") is None
    assert rubric.parse_aspect("\n\n".join(uf_block(i, "good") for i in range(1, 5)), "honesty") is None


def test_filled_requests(uf_dir):
    texts = ultrafeedback.load(str(uf_dir))
    request = rubric.aspect_request(texts, "truthfulness", "Q?", ["a", "b", "c", "d"], "ref")
    assert request["messages"][0]["content"] == uf_text("annotation_system_prompt")
    assert request["messages"][1]["content"] == uf_text("truthfulness_template_with_answer").format(
        instruction="Q?", text_1="a", text_2="b", text_3="c", text_4="d", world_knowledge="ref")
    assert (request["temperature"], request["max_tokens"]) == (0, 500)
    plain = rubric.aspect_request(texts, "truthfulness", "Q?", list("abcd"), None)
    assert plain["messages"][1]["content"].startswith(uf_text("truthfulness_template_without_answer")[:200])
    calibration = texts["principles"]["verbalized_calibration"][0]
    critique = rubric.critique_request(texts, "Q?", "verbalized_calibration", calibration, "ans")
    note = calibration.split("For instance, ")[0].strip()
    assert critique["messages"][1]["content"] == uf_text("critique_feedback_template").format(
        instruction=f"Q?\nNote: {note}", completion="ans")
    assert critique["max_tokens"] == 1024 and critique["messages"][0]["content"] == uf_text("critique_system_prompt")


@pytest.mark.parametrize("reply, expected", [
    ("Good work.\nOverall Score: 7", ("Good work.", 7.0)),
    ("  Fine.\nOverall Score: 8/10\n", ("Fine.", 8.0)),
    ("Ok.\nOverall Score: 6. Because", ("Ok.", 6.0)),
    ("No score here.", None),
    ("a\nOverall Score: 5\nOverall Score: 6", None),
    ("a\nOverall Score: eleven", None),
    ("a\nOverall Score: 12", None),
])
def test_critique_parsing(reply, expected):
    assert rubric.parse_critique(reply) == expected


def test_overall_score_fix():
    assert rubric.rescore_action(10, 2.0) == "flip"
    assert rubric.rescore_action(10, 2.25) == "rescore" and rubric.rescore_action(10, 4.0) == "rescore"
    assert rubric.rescore_action(10, 4.25) == "keep" and rubric.rescore_action(9, 1.0) == "keep"
    assert rubric.fine_grained_score({"a": {"Rating": "4"}, "b": {"Rating": "N/A"}, "c": {"Rating": "1"}}) == 2.5
    assert rubric.parse_rescore(" 7/10") == 7.0 and rubric.parse_rescore("x") is None


def test_instruction_text_keeps_the_context():
    assert rubric.instruction_text([{"role": "user", "content": "Hi"}]) == "Hi"
    text = rubric.instruction_text([{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                                    {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}])
    assert text == "System: S\n\nUser: U1\n\nAssistant: A1\n\nUser: U2"
