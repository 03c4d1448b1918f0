"""MT-Bench's files in FastChat's layouts: where they come from, and a check of every row before any model loads.

The benchmark's texts (questions, judge prompts, GPT-4 reference answers) are FastChat's data: read from a local
copy the user names, or downloaded once from FastChat's repository pinned to the v0.2.36 release commit, checked
against their sha256, and cached under the zephyr cache. Nothing of them lives in this project.

Layouts (FastChat's `fastchat/llm_judge/data/`):
  question.jsonl               {question_id, category, turns: [q1, q2], reference?}
  judge_prompts.jsonl          {name, type, system_prompt, prompt_template, output_format, ...}
  reference_answer/gpt-4.jsonl {question_id, model_id, choices: [{index, turns: [a1, a2]}], ...}
  model_answer/<model>.jsonl   {question_id, answer_id, model_id, choices: [{index, turns}], tstamp}
  model_judgment/<judge>_single.jsonl
                               {question_id, model, judge: [judge, prompt name], user_prompt, judgment, score,
                                turn, tstamp}
"""

from __future__ import annotations

import hashlib
import string
import urllib.request
from pathlib import Path

from ..cache import cache_root
from ..data.io import Where, read_objects
from ..errors import DataError, ZephyrError

FASTCHAT_COMMIT = "b21d0f780ca4472a13714262a0790f2ee1ade659"  # lm-sys/FastChat tag v0.2.36
FASTCHAT_RAW = f"https://raw.githubusercontent.com/lm-sys/FastChat/{FASTCHAT_COMMIT}/fastchat/llm_judge/data/"
PINNED = {  # path under FASTCHAT_RAW -> sha256 (also the digests of ../shared/data/mt_bench, see its PROVENANCE)
    "mt_bench/question.jsonl": "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    "judge_prompts.jsonl": "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
    "mt_bench/reference_answer/gpt-4.jsonl": "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
}
# the single-answer grading prompts (gen_judgment.py's make_judge_single) and what each template may refer to
SINGLE_PROMPTS = {
    "single-v1": {"question", "answer"},
    "single-math-v1": {"question", "answer", "ref_answer_1"},
    "single-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2"},
    "single-math-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2", "ref_answer_1",
                                  "ref_answer_2"},
}


def pinned_file(name: str) -> Path:
    """A FastChat data file from the cache, downloaded (pinned commit, sha256 checked) on first use."""
    target = cache_root() / "fastchat" / FASTCHAT_COMMIT / name
    if target.is_file() and _sha256(target.read_bytes()) == PINNED[name]:
        return target
    url = FASTCHAT_RAW + name
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except OSError as err:
        raise ZephyrError(f"could not download {url} ({err}); give a local copy of FastChat's "
                          f"llm_judge/data/{name} with the matching flag (--data, --judge_prompts, --references)"
                          ) from None
    if _sha256(payload) != PINNED[name]:
        raise ZephyrError(f"{url} does not have the pinned sha256 {PINNED[name]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(payload)
    partial.replace(target)
    return target


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _rows(path: str | Path) -> list[tuple[Where, dict]]:
    rows = list(read_objects(path))
    if not rows:
        raise DataError("the file has no rows", str(path))
    return rows


def _text_list(where: Where, row: dict, key: str, length: int | None = None, label: str = "") -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise where.error("must be a non-empty list of strings", label or key)
    if length is not None and len(value) != length:
        raise where.error(f"must hold {length} turns, has {len(value)}", label or key)
    return value


def _question_id(where: Where, row: dict) -> int:
    value = row.get("question_id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error("must be an integer", "question_id")
    return value


def load_questions(path: str | Path) -> list[dict]:
    """question.jsonl: every row a two-turn question with an integer id (unique) and a category."""
    questions, seen = [], set()
    for where, row in _rows(path):
        qid = _question_id(where, row)
        if qid in seen:
            raise where.error(f"question {qid} appears twice", "question_id")
        seen.add(qid)
        if not isinstance(row.get("category"), str) or not row["category"]:
            raise where.error("must be a category name", "category")
        _text_list(where, row, "turns", 2)
        questions.append(row)
    return questions


def load_judge_prompts(path: str | Path) -> dict[str, dict]:
    """judge_prompts.jsonl by name; the four single-answer prompts must be there, each a template that refers
    only to the fields FastChat fills for it and whose output format is "[[rating]]"."""
    prompts = {}
    for where, row in _rows(path):
        for key in ("name", "type", "system_prompt", "prompt_template", "output_format"):
            if not isinstance(row.get(key), str):
                raise where.error("must be a string", key)
        allowed = SINGLE_PROMPTS.get(row["name"])
        if allowed is not None:
            if row["output_format"] != "[[rating]]":
                raise where.error(f"single-answer grading reads '[[rating]]', not {row['output_format']!r}",
                                  "output_format")
            try:
                used = {name for _, name, _, _ in string.Formatter().parse(row["prompt_template"]) if name is not None}
            except ValueError as err:
                raise where.error(f"not a format template ({err})", "prompt_template") from None
            if not used <= allowed:
                raise where.error(f"refers to {sorted(used - allowed)}; {row['name']} is given only "
                                  f"{sorted(allowed)}", "prompt_template")
        prompts[row["name"]] = row
    missing = [name for name in SINGLE_PROMPTS if name not in prompts]
    if missing:
        raise DataError(f"has no judge prompt named {', '.join(missing)} (FastChat's single-answer grading)",
                        str(path))
    return prompts


def load_answers(path: str | Path, turns: int | None = None) -> dict[int, dict]:
    """Answers (model_answer/*.jsonl, reference_answer/*.jsonl) by question id, as FastChat's
    load_model_answers keeps them: the last row of an id wins."""
    answers = {}
    for where, row in _rows(path):
        qid = _question_id(where, row)
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise where.error("must be a list of {index, turns}", "choices")
        _text_list(where, choices[0], "turns", turns, label="choices[0].turns")
        answers[qid] = row
    return answers


def check_references(references: dict[int, dict], questions: list[dict], needs_reference, path: str) -> None:
    """Every reference-graded question has a two-turn reference answer (FastChat's check_data asserts it)."""
    for q in questions:
        if q["category"] in needs_reference:
            turns = references.get(q["question_id"], {}).get("choices", [{}])[0].get("turns", [])
            if len(turns) < 2:
                raise DataError(f"no two-turn reference answer for question {q['question_id']} "
                                f"({q['category']})", path)


def load_judgments(path: str | Path) -> list[dict]:
    """model_judgment/*_single.jsonl rows: the fields show_result.py reads (model, score, turn) and the id."""
    rows = []
    for where, row in _rows(path):
        _question_id(where, row)
        if not isinstance(row.get("model"), str):
            raise where.error("must be the model's name", "model")
        score = row.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise where.error("must be a number (-1: the judge gave no rating)", "score")
        if row.get("turn") not in (1, 2):
            raise where.error("must be 1 or 2", "turn")
        rows.append(row)
    return rows
