"""Raw UltraFeedback rows -> preference pairs, as in the Zephyr paper (Tunstall et al. 2023, sec. 3 / 4).

Input (openbmb/UltraFeedback): `instruction`, `completions[]{response, annotations{instruction_following,
honesty, truthfulness, helpfulness: {Rating: "1".."5" | "N/A", ...}}}`. An aspect may also be a one-element
list of such objects (some re-exports wrap it); the first element is used.

Rule:
  * score of a completion = mean of its aspect ratings, ignoring "N/A" and missing aspects; a completion with
    no usable rating, or with an empty response, is not a candidate.
  * chosen = the candidate with the highest score; rejected = a uniformly random one of the candidates that
    score strictly lower (the paper: "one of the remaining three at random").
  * ties: if several candidates share the best score, chosen is drawn uniformly among them and rejected among
    the strictly lower ones (a tied partner would be a zero-margin pair that teaches DPO nothing). If every
    candidate has the same score there is no preference: the row is dropped.
  * fewer than two candidates: dropped.
  * randomness: one `random.Random` per row seeded with sha256(seed, instruction), so a row binarizes the same
    way whatever its position in the file or the number of workers.
Scores are kept on the 1-5 rating scale as `score_chosen` / `score_rejected`.
Every drop and tie is counted in the report (keys `binarize_*`).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any

from .io import Where

ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
NOT_RATED = ("n/a", "na", "none", "")


def row_rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def rating(value: Any, where: Where, field: str) -> float | None:
    """"4" / 4 -> 4.0; "N/A", None -> None; anything else is a DataError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise where.error(f"expected a rating 1-5 or 'N/A', got {value!r}", field)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value.strip().lower() in NOT_RATED:
            return None
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise where.error(f"expected a rating 1-5 or 'N/A', got {value!r}", field)


def completion_score(completion: Any, where: Where, field: str, counts: Counter) -> float | None:
    """Mean of the usable aspect ratings of one completion, or None when it has none."""
    if not isinstance(completion, dict):
        raise where.error(f"expected an object, got {type(completion).__name__}", field)
    annotations = completion.get("annotations")
    if annotations is None:
        counts["binarize_unannotated_completions"] += 1
        return None
    if not isinstance(annotations, dict):
        raise where.error(f"expected an object of aspect ratings, got {type(annotations).__name__}",
                          f"{field}.annotations")
    ratings = []
    for aspect in ASPECTS:
        entry = annotations.get(aspect)
        aspect_field = f"{field}.annotations.{aspect}"
        if isinstance(entry, list):
            entry = entry[0] if entry else None
        if entry is None:
            counts["binarize_na_ratings"] += 1
            continue
        if not isinstance(entry, dict):
            raise where.error(f"expected an object with 'Rating', got {type(entry).__name__}", aspect_field)
        value = rating(entry.get("Rating"), where, f"{aspect_field}.Rating")
        if value is None:
            counts["binarize_na_ratings"] += 1
        else:
            ratings.append(value)
    return sum(ratings) / len(ratings) if ratings else None


def binarize_row(row: dict, where: Where, seed: int, counts: Counter) -> dict | None:
    """One raw UltraFeedback row -> a normalised pair, or None (dropped; the reason is counted)."""
    counts["binarize_rows"] += 1
    instruction = row.get("instruction")
    if not isinstance(instruction, str):
        raise where.error("missing" if instruction is None else
                          f"expected a string, got {type(instruction).__name__}", "instruction")
    if not instruction.strip():
        raise where.error("empty instruction", "instruction")
    completions = row.get("completions")
    if not isinstance(completions, (list, tuple)):
        raise where.error(f"expected a list of completions, got {type(completions).__name__}", "completions")

    candidates: list[tuple[float, str]] = []
    for i, completion in enumerate(completions):
        field = f"completions[{i}]"
        score = completion_score(completion, where, field, counts)
        response = completion.get("response")
        if not isinstance(response, str):
            raise where.error("missing" if response is None else
                              f"expected a string, got {type(response).__name__}", f"{field}.response")
        if not response.strip():
            counts["binarize_empty_responses"] += 1
            continue
        if score is None:
            counts["binarize_unrated_completions"] += 1
            continue
        candidates.append((score, response))

    if len(candidates) < 2:
        counts["binarize_dropped_fewer_than_2_rated"] += 1
        return None
    best = max(score for score, _ in candidates)
    top = [c for c in candidates if c[0] == best]
    lower = [c for c in candidates if c[0] < best]
    if not lower:
        counts["binarize_dropped_all_tied"] += 1
        return None
    rng = row_rng(seed, instruction)
    if len(top) > 1:
        counts["binarize_best_tied"] += 1
    chosen = rng.choice(top)
    rejected = rng.choice(lower)
    counts["binarize_pairs"] += 1
    return {"prompt": [{"role": "user", "content": instruction}], "chosen": chosen[1], "rejected": rejected[1],
            "score_chosen": chosen[0], "score_rejected": rejected[0]}
