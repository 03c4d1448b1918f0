"""MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena"): 80 two-turn
questions in 8 categories; a judge grades each answer 1-10, math/reasoning/coding against a reference answer.

Sampling temperatures per category follow the benchmark's defaults (creative 0.7, STEM/humanities 0.1,
the rest greedy).
"""

from __future__ import annotations

import re
from collections import defaultdict

from ..data.io import read_hub, read_objects

HUB_ID = "HuggingFaceH4/mt_bench_prompts"
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "stem": 0.1, "humanities": 0.1,
               "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0}
NEEDS_REFERENCE = ("math", "reasoning", "coding")

GRADE = """Act as an impartial judge of an AI assistant's answer. Consider helpfulness, relevance, accuracy, depth,
creativity and level of detail.{reference_note} Start with a short explanation, be as objective as possible,
then give a rating from 1 to 10 in exactly this form: "Rating: [[5]]".

{conversation}
{reference}
Grade the assistant's answer to the {which} question."""


def load_questions(path: str | None = None) -> list[dict]:
    """question.jsonl rows: question_id, category, turns[2], optional reference[2]; from `path` or the hub."""
    rows = list(read_objects(path) if path else read_hub(HUB_ID, "train"))
    for where, row in rows:
        row.setdefault("turns", row.get("prompt"))  # the hub copy names them `prompt`
        if len(row.get("turns") or []) != 2:
            raise where.error(f"MT-Bench question {row.get('question_id')} must have two turns", "turns")
    return [row for _, row in rows]


def load_references(path: str | None) -> dict[int, list[str]]:
    """Reference answers (FastChat layout: {question_id, choices[0].turns}) by question id."""
    refs = {}
    for where, row in read_objects(path) if path else ():
        try:
            refs[int(row["question_id"])] = row["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise where.error("expected FastChat's {question_id, choices: [{turns}]}", "choices") from None
    return refs


def grading_prompt(question: dict, answers: list[str], turn: int, reference: list[str] | None) -> str:
    """The judge's prompt for `turn` (0 or 1); turn 1 shows the whole conversation."""
    lines = []
    for t in range(turn + 1):
        lines += [f"### User question {t + 1}\n{question['turns'][t]}", f"### Assistant answer {t + 1}\n{answers[t]}"]
    ref_text = ""
    if reference:
        ref_text = "\n" + "\n".join(f"### Reference answer {t + 1}\n{reference[t]}" for t in range(turn + 1)) + "\n"
    return GRADE.format(
        reference_note=" Compare the answer with the reference answer and count every mistake." if reference else "",
        conversation="\n\n".join(lines), reference=ref_text, which="first" if turn == 0 else "second")


def parse_score(text: str) -> float | None:
    """'Rating: [[7]]' (or '[[7.5]]') -> 7.0; None when the judge gave no usable rating."""
    match = re.search(r"\[\[(\d+(?:\.\d+)?)\]\]", text) or re.search(r"[Rr]ating:\s*(\d+(?:\.\d+)?)", text)
    if not match:
        return None
    value = float(match.group(1))
    return value if 1 <= value <= 10 else None


def answer_questions(generate, questions: list[dict]) -> dict[int, list[str]]:
    """Two passes (turn 1 for all, then turn 2 with the first exchange), grouped by category temperature.

    `generate(conversations, temperature) -> replies` is supplied by the caller.
    """
    answers: dict[int, list[str]] = {q["question_id"]: [] for q in questions}
    for turn in (0, 1):
        by_temperature = defaultdict(list)
        for q in questions:
            by_temperature[TEMPERATURE.get(q["category"], 0.7)].append(q)
        for temperature, group in sorted(by_temperature.items()):
            conversations = []
            for q in group:
                messages = [{"role": "user", "content": q["turns"][0]}]
                if turn == 1:
                    first = answers[q["question_id"]][0] or "(no answer)"
                    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": q["turns"][1]}]
                conversations.append(messages)
            for q, reply in zip(group, generate(conversations, temperature)):
                answers[q["question_id"]].append(reply)
    return answers


def judge_answers(judge, questions: list[dict], answers: dict[int, list[str]],
                  references: dict[int, list[str]]) -> tuple[list[dict], dict]:
    """-> (per-turn judgements, report with mean score per turn, per category and overall)."""
    prompts, keys = [], []
    for q in questions:
        reference = references.get(q["question_id"]) or q.get("reference")
        reference = reference if q["category"] in NEEDS_REFERENCE and reference else None
        for turn in (0, 1):
            prompts.append(grading_prompt(q, answers[q["question_id"]], turn, reference))
            keys.append((q, turn))
    judgements = []
    for (q, turn), text in zip(keys, judge.complete(prompts)):
        judgements.append({"question_id": q["question_id"], "category": q["category"], "turn": turn + 1,
                           "score": parse_score(text), "judgment": text})
    return judgements, summarize(judgements)


def summarize(judgements: list[dict]) -> dict:
    def mean(values):
        return round(sum(values) / len(values), 3) if values else None

    scored = [j for j in judgements if j["score"] is not None]
    report = {"score": mean([j["score"] for j in scored]),
              "turn_1": mean([j["score"] for j in scored if j["turn"] == 1]),
              "turn_2": mean([j["score"] for j in scored if j["turn"] == 2]),
              "judged": len(scored), "unparsable": len(judgements) - len(scored), "categories": {}}
    for category in sorted({j["category"] for j in scored}):
        report["categories"][category] = mean([j["score"] for j in scored if j["category"] == category])
    return report
