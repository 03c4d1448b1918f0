"""MT-Bench and AlpacaEval scoring on real benchmark files, with scripted models and judges."""

from __future__ import annotations

import json
import re

import pytest

from zephyr.eval import alpaca_eval, mt_bench
from zephyr.eval.cli import EvalConfig, run


class ScriptedJudge:
    name = "scripted"

    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def complete(self, prompts):
        self.prompts += prompts
        return [self.answer(p) for p in prompts]


def test_mt_bench_parse_score():
    assert mt_bench.parse_score("Good answer. Rating: [[7]]") == 7.0
    assert mt_bench.parse_score("[[8.5]]") == 8.5
    assert mt_bench.parse_score("Rating: 4") == 4.0
    assert mt_bench.parse_score("[[11]]") is None and mt_bench.parse_score("great") is None


def test_mt_bench_answers_two_turns_with_category_temperatures(shared_data):
    questions = mt_bench.load_questions(str(shared_data / "mt_bench" / "question.jsonl"))
    assert len(questions) == 80 and {q["category"] for q in questions} == set(mt_bench.TEMPERATURE)
    seen = []

    def generate(conversations, temperature):
        seen.append((temperature, conversations))
        return [f"answer to: {c[-1]['content'][:20]}" for c in conversations]

    answers = mt_bench.answer_questions(generate, questions)
    assert all(len(a) == 2 for a in answers.values())
    writing = next(q for q in questions if q["category"] == "writing")
    first_turn = [c for t, convs in seen for c in convs if len(c) == 1 and c[0]["content"] == writing["turns"][0]]
    assert first_turn and any(t == 0.7 for t, convs in seen if first_turn[0] in convs)
    second = [c for _, convs in seen for c in convs if len(c) == 3 and c[0]["content"] == writing["turns"][0]][0]
    assert second[1]["content"] == answers[writing["question_id"]][0]  # turn 2 sees our own first answer
    assert second[2]["content"] == writing["turns"][1]
    math_temps = {t for t, convs in seen for c in convs for q in questions
                  if q["category"] == "math" and c[0]["content"] == q["turns"][0]}
    assert math_temps == {0.0}


def test_mt_bench_judging_and_report(shared_data):
    every = mt_bench.load_questions(str(shared_data / "mt_bench" / "question.jsonl"))
    # two questions of each of the 8 categories, so math, reasoning and coding (graded with references) are in
    questions = [q for category in mt_bench.TEMPERATURE
                 for q in [q for q in every if q["category"] == category][:2]]
    references = mt_bench.load_references(str(shared_data / "mt_bench" / "reference_answer" / "gpt-4.jsonl"))
    answers = {q["question_id"]: ["short", "a longer second answer"] for q in questions}
    # the judge gives 6 to first-turn grades and 8 to second-turn ones, and fails on question 81's turn 2
    judge = ScriptedJudge(lambda p: "meh" if "User question 2" in p and questions[0]["turns"][1] in p
                          else ("Rating: [[8]]" if "second question" in p else "Rating: [[6]]"))
    judgements, report = mt_bench.judge_answers(judge, questions, answers, references)
    assert len(judgements) == 32 and report["unparsable"] == 1 and report["judged"] == 31
    assert report["turn_1"] == 6.0 and report["turn_2"] == 8.0
    assert report["score"] == round((16 * 6 + 15 * 8) / 31, 3)
    with_reference = [p for p in judge.prompts if "### Reference answer" in p]
    needs = [q for q in questions if q["category"] in mt_bench.NEEDS_REFERENCE and q["question_id"] in references]
    assert len(needs) == 6 and len(with_reference) == 2 * len(needs)
    for q in needs:  # each reference-graded prompt carries that question's own reference answer
        assert sum(references[q["question_id"]][0] in p for p in with_reference) == 2


def test_alpaca_eval_win_rate_is_position_fair(shared_data):
    rows = alpaca_eval.load_instructions(str(shared_data / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json"))
    assert len(rows) == 805
    rows = rows[:40]
    outputs = ["x" * (len(r["output"]) + 1) if i % 4 == 0 else "no" for i, r in enumerate(rows)]

    def longer(prompt):
        a = re.search(r"### Output \(A\)\n(.*)\n\n### Output \(B\)", prompt, re.S).group(1)
        b = re.search(r"### Output \(B\)\n(.*)\n\nWhich output", prompt, re.S).group(1)
        return "A" if len(a) > len(b) else "B"

    results, report = alpaca_eval.judge_outputs(ScriptedJudge(longer), rows, outputs, seed=1)
    assert report["n_wins"] == 10 and report["n_losses"] == 30 and report["win_rate"] == 25.0
    assert {r["ours_shown_first"] for r in results} == {True, False}
    expected_se = 100 * ((0.25 * 0.75 * 40 / 39) / 40) ** 0.5
    assert report["standard_error"] == round(expected_se, 2)
    _, ties = alpaca_eval.judge_outputs(ScriptedJudge(lambda p: "I cannot decide"), rows[:4], outputs[:4])
    assert ties["n_ties"] == 4 and ties["win_rate"] == 50.0
    assert alpaca_eval.parse_preference("Output (B)") == "B" and alpaca_eval.parse_preference("A") == "A"


def test_eval_command_errors(tmp_path):
    from zephyr.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'"):
        run(EvalConfig(benchmark="mmlu"), generate=lambda c, t=None: [])
    with pytest.raises(ConfigError, match="exactly one of --judge"):
        run(EvalConfig(benchmark="mt_bench"), generate=lambda c, t=None: [])


def test_lm_eval_uses_our_chat_template(tiny_model_dir, tmp_path):
    pytest.importorskip("lm_eval")
    from zephyr.eval.lm_eval_tasks import evaluate, summarize
    from zephyr.models import ModelConfig, load_tokenizer

    model_dir = tmp_path / "model"
    source = tiny_model_dir("llama")
    model_dir.mkdir()
    for item in source.iterdir():
        (model_dir / item.name).write_bytes(item.read_bytes())
    load_tokenizer(ModelConfig(model=str(model_dir), chat_template="zephyr")).save_pretrained(model_dir)
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a}+{b}?", "choices": [str(a + b), str(a + b + 1)],
                                        "label": 0}) + "\n" for a, b in [(1, 2), (3, 4), (5, 6)]))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "sums.yaml").write_text(
        "task: zephyr_sums\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + str(data) +
        "\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\nmetric_list:\n  - metric: acc\n"
        "    aggregation: mean\n    higher_is_better: true\n")
    results = evaluate(str(model_dir), ["zephyr_sums"], batch_size=2, include_path=str(tasks), log_samples=True)
    context, choice = results["samples"]["zephyr_sums"][0]["arguments"][0]
    assert context == "<|user|>\nQuestion: What is 1+2?\nAnswer:</s>\n<|assistant|>\n" and choice.strip() == "3"
    accuracy = summarize(results)["zephyr_sums"]["acc"]
    per_sample = [s["acc"] for s in results["samples"]["zephyr_sums"]]
    assert len(per_sample) == 3 and accuracy == pytest.approx(sum(per_sample) / 3)
