"""MT-Bench (Zheng et al. 2023) as FastChat's llm_judge runs it with single-answer grading (gen_model_answer.py,
gen_judgment.py --mode single, show_result.py), so that a score here compares with the published ones.

Protocol, point by point:
- answers: two turns per question, the second seeing the model's own first answer; sampling temperature by
  category (FastChat's temperature_config, 0.7 for a category it does not list), up to 1024 new tokens, top_p 1.0
  and top_k 50 (the transformers defaults FastChat's generate ran with); the model's own chat template.
- judge: FastChat's judge prompts (single-v1, and single-math-v1 with GPT-4 reference answers for math,
  reasoning and coding; their -multi-turn forms for turn 2), each prompt's system message, temperature 0,
  max_tokens 2048.
- rating: the first "[[N]]" in the judgment, else the first "[N]"; -1 when there is none. Any number read is
  kept (FastChat does not clamp to 1-10); show_result drops the -1 rows and averages the rest, per turn and
  over both turns together.
- files: model_answer/<model_id>.jsonl and model_judgment/<judge>_single.jsonl in FastChat's schemas, so
  FastChat's own scripts read them (see fastchat_data.py for the layouts).
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from ..data.io import write_rows
from ..errors import DataError
from . import fastchat_data

# FastChat's llm_judge/common.py constants
NEEDS_REFERENCE = ("math", "reasoning", "coding", "arena-hard-200")
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
               "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0}
DEFAULT_TEMPERATURE = 0.7
ANSWER_MAX_NEW_TOKENS = 1024
ANSWER_TOP_P, ANSWER_TOP_K = 1.0, 50
JUDGE_MAX_TOKENS = 2048
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
SHORTUUID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def temperature(category: str) -> float:
    return TEMPERATURE.get(category, DEFAULT_TEMPERATURE)


def judge_prompt_name(category: str, turn: int) -> str:
    """Which of FastChat's single-answer prompts grades this category's `turn` (1 or 2)."""
    name = "single-math-v1" if category in NEEDS_REFERENCE else "single-v1"
    return name + ("-multi-turn" if turn == 2 else "")


def judge_request(prompts: dict[str, dict], question: dict, answer: Sequence[str], turn: int,
                  reference: Sequence[str] | None = None) -> dict:
    """The chat request FastChat's run_judge_single sends for `turn` (1 or 2), with the prompt's name and the
    user prompt it records. `reference` (the GPT-4 reference turns) is used by the math prompts only."""
    name = judge_prompt_name(question["category"], turn)
    template = prompts[name]
    fields = {}
    if name.startswith("single-math"):
        fields["ref_answer_1"] = reference[0]
        if turn == 2:
            fields["ref_answer_2"] = reference[1]
    if turn == 1:
        fields.update(question=question["turns"][0], answer=answer[0])
    else:
        fields.update(question_1=question["turns"][0], question_2=question["turns"][1],
                      answer_1=answer[0], answer_2=answer[1])
    user_prompt = template["prompt_template"].format(**fields)
    system = [{"role": "system", "content": template["system_prompt"]}] if template["system_prompt"] else []
    return {"prompt_name": name, "user_prompt": user_prompt, "temperature": 0, "max_tokens": JUDGE_MAX_TOKENS,
            "messages": system + [{"role": "user", "content": user_prompt}]}


def parse_rating(judgment: str) -> int | float:
    """FastChat's rating: "[[N]]", else "[N]"; an int or float as written; -1 when the judge gave none."""
    match = RATING.search(judgment) or RATING_BACKUP.search(judgment)
    if not match:
        return -1
    text = match.group(1)
    return float(text) if "." in text else int(text)


def answer_questions(generate: Callable, questions: list[dict]) -> dict[int, list[str]]:
    """Both turns of every question; `generate(conversations, temperature) -> replies`. Turn 1 for all questions,
    then turn 2 with the model's own first answer, each pass grouped by category temperature."""
    answers: dict[int, list[str]] = {q["question_id"]: [] for q in questions}
    for turn in (0, 1):
        by_temperature = defaultdict(list)
        for q in questions:
            by_temperature[temperature(q["category"])].append(q)
        for temp, group in sorted(by_temperature.items()):
            conversations = []
            for q in group:
                messages = [{"role": "user", "content": q["turns"][0]}]
                if turn == 1:
                    messages += [{"role": "assistant", "content": answers[q["question_id"]][0]},
                                 {"role": "user", "content": q["turns"][1]}]
                conversations.append(messages)
            for q, reply in zip(group, generate(conversations, temp)):
                answers[q["question_id"]].append(reply)
    return answers


def short_uuid() -> str:
    """An id like shortuuid.uuid(), which FastChat writes as answer_id: a uuid4 in 22 base-57 digits."""
    number, digits = uuid.uuid4().int, []
    while len(digits) < 22:
        number, digit = divmod(number, len(SHORTUUID_ALPHABET))
        digits.append(SHORTUUID_ALPHABET[digit])
    return "".join(reversed(digits))


def answer_rows(answers: dict[int, list[str]], model_id: str) -> list[dict]:
    """model_answer/<model_id>.jsonl rows, sorted by question id (as FastChat's reorg_answer_file leaves them)."""
    return [{"question_id": qid, "answer_id": short_uuid(), "model_id": model_id,
             "choices": [{"index": 0, "turns": list(turns)}], "tstamp": time.time()}
            for qid, turns in sorted(answers.items())]


def judge_answers(judge, judge_name: str, prompts: dict[str, dict], questions: list[dict],
                  answers: dict[int, list[str]], references: dict[int, dict], model_id: str) -> list[dict]:
    """Grade every turn; the judgment rows in gen_judgment.py's order (turn 1: general then reference-graded
    questions; then turn 2 alike)."""
    general = [q for q in questions if q["category"] not in NEEDS_REFERENCE]
    graded = [q for q in questions if q["category"] in NEEDS_REFERENCE]
    keys, requests = [], []
    for turn in (1, 2):
        for q in general + graded:
            graded_by_reference = q["category"] in NEEDS_REFERENCE
            reference = references[q["question_id"]]["choices"][0]["turns"] if graded_by_reference else None
            request = judge_request(prompts, q, answers[q["question_id"]], turn, reference)
            keys.append((q["question_id"], turn, request))
            requests.append({k: request[k] for k in ("messages", "max_tokens", "temperature")})
    rows = []
    for (qid, turn, request), reply in zip(keys, judge.chat(requests)):
        rows.append({"question_id": qid, "model": model_id, "judge": [judge_name, request["prompt_name"]],
                     "user_prompt": request["user_prompt"], "judgment": reply.text,
                     "score": parse_rating(reply.text), "turn": turn, "tstamp": time.time()})
    return rows


def write_judgments(path: Path, rows: list[dict], model_id: str) -> None:
    """FastChat appends every model's judgments to one file per judge; a model judged again replaces its rows."""
    kept = [r for r in fastchat_data.load_judgments(path) if r["model"] != model_id] if path.is_file() else []
    write_rows(kept + rows, path)


def summarize(rows: list[dict], questions: list[dict] | None = None) -> dict:
    """The mean score over turn 1, turn 2 and both (rows scored -1 left out, as show_result does), per
    category when the questions are given, and how many turns the judge did not rate."""
    def mean(values):
        return round(sum(values) / len(values), 4) if values else None

    rated = [r for r in rows if r["score"] != -1]
    report = {"score": mean([r["score"] for r in rated]),
              "turn_1": mean([r["score"] for r in rated if r["turn"] == 1]),
              "turn_2": mean([r["score"] for r in rated if r["turn"] == 2]),
              "judged": len(rated), "unrated": len(rows) - len(rated)}
    if questions:
        category = {q["question_id"]: q["category"] for q in questions}
        report["categories"] = {c: mean([r["score"] for r in rated if category.get(r["question_id"]) == c])
                                for c in sorted({q["category"] for q in questions})}
    return report


def show_result(rows: list[dict]) -> str:
    """The three tables FastChat's show_result.py --mode single prints (first turn, second turn, average), one
    row per model, best first."""
    import pandas as pd

    out = io.StringIO()
    df = pd.DataFrame(rows)[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    print("\n########## First turn ##########", file=out)
    first = df[df["turn"] == 1].groupby(["model", "turn"]).mean()
    print(first.sort_values(by="score", ascending=False), file=out)
    print("\n########## Second turn ##########", file=out)
    second = df[df["turn"] == 2].groupby(["model", "turn"]).mean()
    print(second.sort_values(by="score", ascending=False), file=out)
    print("\n########## Average ##########", file=out)
    average = df[["model", "score"]].groupby(["model"]).mean()
    print(average.sort_values(by="score", ascending=False), file=out)
    return out.getvalue()


def load_inputs(config) -> tuple[list[dict], dict[str, dict], dict[int, dict]]:
    """Questions, judge prompts and reference answers (local copies the config names, else FastChat's pinned
    files), every row checked: a bad file stops the run before any model loads."""
    questions = fastchat_data.load_questions(config.data or fastchat_data.pinned_file("mt_bench/question.jsonl"))
    questions = questions[:config.limit or None]
    prompts = fastchat_data.load_judge_prompts(config.judge_prompts or
                                               fastchat_data.pinned_file("judge_prompts.jsonl"))
    references_path = config.references or fastchat_data.pinned_file("mt_bench/reference_answer/gpt-4.jsonl")
    references = fastchat_data.load_answers(references_path)
    fastchat_data.check_references(references, questions, NEEDS_REFERENCE, str(references_path))
    return questions, prompts, references


def load_given_answers(path: str, questions: list[dict]) -> dict[int, list[str]]:
    """Both turns of every question from a FastChat model_answer file (its first choice, as gen_judgment
    grades); a question without an answer is an error, as in FastChat's check_data."""
    rows = fastchat_data.load_answers(path, turns=2)
    missing = [q["question_id"] for q in questions if q["question_id"] not in rows]
    if missing:
        raise DataError(f"no answer to question {missing[0]} ({len(missing)} missing)", path)
    return {q["question_id"]: rows[q["question_id"]]["choices"][0]["turns"] for q in questions}


def file_name(name: str) -> str:
    """A judge or model name as FastChat's file names hold it (a local folder: its last part)."""
    return Path(name.rstrip("/")).name or name


def run(config, make_generate: Callable[[], Callable], make_judge: Callable) -> dict:
    """`zephyr eval mt_bench`: answer, judge, write FastChat's files, print show_result's tables.
    With `config.answers`, the answers of that FastChat model_answer file are judged (no model);
    with `config.judgments`, only the tables and report of that judgments file (no model, no judge)."""
    out = Path(config.output_dir)
    if config.judgments:
        rows = fastchat_data.load_judgments(config.judgments)
        print(show_result(rows))
        return {"benchmark": "mt_bench", "judgments": config.judgments,
                "models": {model: summarize([r for r in rows if r["model"] == model])
                           for model in sorted({r["model"] for r in rows})}}
    questions, prompts, references = load_inputs(config)
    given = load_given_answers(config.answers, questions) if config.answers else None
    judge = make_judge(config)
    model_id = config.model_id or (Path(config.answers).stem if given else file_name(config.model))
    judge_name = file_name(judge.name)
    if given is None:
        answers = answer_questions(make_generate(), questions)
        write_rows(answer_rows(answers, model_id), out / "model_answer" / f"{model_id}.jsonl")
    else:
        answers = given
    rows = judge_answers(judge, judge_name, prompts, questions, answers, references, model_id)
    judgments_path = out / "model_judgment" / f"{judge_name}_single.jsonl"
    write_judgments(judgments_path, rows, model_id)
    print(show_result(rows))
    return {"benchmark": "mt_bench", "model": config.model, "model_id": model_id, "judge": judge_name,
            **summarize(rows, questions), "judgments": str(judgments_path)}
