"""IFEval (Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models"): 541 prompts with
verifiable instructions ("no commas", "at least 300 words", ...), checked by code, no judge.

The checkers are the benchmark's own, from the `if-verifiable` package (extra `[eval]`). Each instruction is
checked on its own, so one checker that cannot run (e.g. NLTK's 'punkt' data missing for sentence counts)
marks only that instruction unscored, and the report says how many.
"""

from __future__ import annotations

from ..data.io import read_hub, read_objects

HUB_ID = "google/IFEval"


def load_prompts(path: str | None = None) -> list[dict]:
    """input_data.jsonl rows (key, prompt, instruction_id_list, kwargs), from `path` or the hub copy."""
    rows = list(read_objects(path) if path else read_hub(HUB_ID, "train"))
    for where, row in rows:
        if len(row["instruction_id_list"]) != len(row["kwargs"]):
            raise where.error("instruction_id_list and kwargs differ in length", "kwargs")
    return [row for _, row in rows]


def check(row: dict, response: str) -> list[dict]:
    """[{instruction_id, strict, loose}] for one response; strict/loose are None when the checker failed."""
    try:
        from if_verifiable.common import evaluate_instructions
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as err:
        raise RuntimeError("IFEval needs the checkers: pip install 'zephyr[eval]' (if-verifiable)") from err
    results = []
    for instruction_id, kwargs in zip(row["instruction_id_list"], row["kwargs"]):
        strict = loose = False  # an empty response follows nothing
        if response.strip():
            try:
                found, _ = evaluate_instructions(response, [instruction_id], [kwargs or {}], row["prompt"],
                                                 INSTRUCTION_DICT)
            except LookupError:  # NLTK data missing for this checker
                found = []
            # an unknown instruction id, or a checker that could not run, is unscored rather than failed
            strict, loose = (found[0].strict_pass, found[0].loose_pass) if found else (None, None)
        results.append({"instruction_id": instruction_id, "strict": strict, "loose": loose})
    return results


def summarize(checked: list[list[dict]]) -> dict:
    """Prompt-level (all instructions followed) and instruction-level accuracy, strict and loose, in %."""
    def pct(values):
        return round(100 * sum(values) / len(values), 2) if values else None

    scorable = [c for c in checked if all(i["strict"] is not None for i in c)]
    instructions = [i for c in checked for i in c if i["strict"] is not None]
    return {"prompt_level_strict": pct([all(i["strict"] for i in c) for c in scorable]),
            "prompt_level_loose": pct([all(i["loose"] for i in c) for c in scorable]),
            "instruction_level_strict": pct([i["strict"] for i in instructions]),
            "instruction_level_loose": pct([i["loose"] for i in instructions]),
            "prompts": len(checked), "prompts_unscored": len(checked) - len(scorable),
            "instructions_unscored": sum(i["strict"] is None for c in checked for i in c)}
