"""AlpacaEval (Li et al. 2023; Dubois et al. 2024): 805 instructions; a judge compares our output with a
reference model's output, and the win rate is the share of comparisons we win (ties count one half).

The two outputs are shown in a random order per instruction (seeded) because judges favour a position.
"""

from __future__ import annotations

import math
import random
import re

from ..data.io import read_hub, read_objects

HUB_ID = "tatsu-lab/alpaca_eval"

COMPARE = """You are comparing two AI assistant outputs for the same instruction. Pick the one a careful human
would prefer: the more helpful, accurate and relevant, following the instruction best. Do not let length or
order sway you.

### Instruction
{instruction}

### Output (A)
{a}

### Output (B)
{b}

Which output is better? Answer with a single letter: A or B."""


def load_instructions(path: str | None = None) -> list[dict]:
    """Rows with `instruction`, the reference `output` and its `generator` (AlpacaEval's json layout)."""
    rows = list(read_objects(path) if path else read_hub(HUB_ID, "eval", "alpaca_eval"))
    for where, row in rows:
        if not isinstance(row.get("instruction"), str) or not isinstance(row.get("output"), str):
            raise where.error("needs string 'instruction' and 'output' fields", "instruction")
    return [row for _, row in rows]


def parse_preference(text: str) -> str | None:
    """'A' / 'B' from the judge's answer (first standalone letter), None if neither."""
    match = re.search(r"\b([AB])\b", text.strip().replace("Output (", "").replace(")", " "))
    return match.group(1) if match else None


def judge_outputs(judge, rows: list[dict], outputs: list[str], seed: int = 0) -> tuple[list[dict], dict]:
    """-> (per-instruction results, report: win_rate %, standard error, wins/losses/ties, lengths)."""
    rng = random.Random(seed)
    prompts, ours_first = [], []
    for row, output in zip(rows, outputs):
        first = rng.random() < 0.5
        ours_first.append(first)
        a, b = (output, row["output"]) if first else (row["output"], output)
        prompts.append(COMPARE.format(instruction=row["instruction"], a=a, b=b))
    results = []
    for row, output, first, text in zip(rows, outputs, ours_first, judge.complete(prompts)):
        pick = parse_preference(text)
        if pick is None:
            win = 0.5
        else:
            win = 1.0 if (pick == "A") == first else 0.0
        results.append({"instruction": row["instruction"], "output": output, "reference": row["output"],
                        "ours_shown_first": first, "preference": pick, "win": win, "judgment": text})
    return results, summarize(results)


def summarize(results: list[dict]) -> dict:
    n = len(results)
    wins = [r["win"] for r in results]
    mean = sum(wins) / n if n else 0.0
    variance = sum((w - mean) ** 2 for w in wins) / (n - 1) if n > 1 else 0.0
    return {"win_rate": round(100 * mean, 2), "standard_error": round(100 * math.sqrt(variance / n), 2) if n else 0,
            "n_wins": sum(w == 1.0 for w in wins), "n_losses": sum(w == 0.0 for w in wins),
            "n_ties": sum(w == 0.5 for w in wins), "n_total": n,
            "avg_length": round(sum(len(r["output"]) for r in results) / n) if n else 0}
