"""Raw UltraFeedback rows -> preference pairs, by one of the two public rules.

Input (openbmb/UltraFeedback, and `zephyr aif`'s rated.jsonl): `instruction`, optionally `messages` (the whole
prompt conversation, system and earlier turns included; without it the prompt is the instruction as one user
turn), `completions[]{model, principle, response, overall_score (1-10), annotations{instruction_following,
honesty, truthfulness, helpfulness: {Rating: "1".."5" | "N/A", ...}}}`. An aspect may also be a one-element list
of such objects (UltraFeedback's annotation script stores one per shuffle); the first element is used.

Rules (`rule`):
  * overall_score -- HuggingFaceH4/ultrafeedback_binarized (the data zephyr-7b-beta was trained on; its
    `create_dataset.py`, see ../shared/data/ultrafeedback/PROVENANCE.md): candidates are the completions with
    an overall_score; chosen = the highest overall_score, the first in list order when several share it
    (Python's `max`); rejected = a random one of the other completions, whatever its score. A rejected that
    ties with the chosen is kept, as the release kept it, and counted (`binarize_tied_pairs`).
  * mean_rating -- Argilla's cleaned release (argilla/ultrafeedback-binarized-preferences-cleaned): score =
    mean of the aspect ratings, ignoring "N/A" and missing aspects; a completion with no usable rating or an
    empty response is no candidate. chosen = a random one of the best-scored; rejected = a random one of the
    strictly lower ones; a row whose candidates all tie is dropped (`binarize_dropped_all_tied`).
  * both: fewer than two candidates -> dropped. A rating that is not a number in range (1-5 for aspects, 1-10
    for overall_score, NaN included) is a DataError naming file, line and field.
  * randomness: one `random.Random` per row seeded with sha256(seed, instruction), so a row binarizes the same
    way whatever its position in the file or the number of workers.
`binarize_row` gives the normalised pair the training stages use (chosen/rejected as reply strings);
`binarized_record` gives the row written to files: prompt, chosen and rejected as full message lists,
score_chosen, score_rejected, and `provenance` (rule, seed, which completion, model and principle).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from typing import Any

from .io import Where
from .schemas import prompt_conversation

ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
NOT_RATED = ("n/a", "na", "none", "")
RULES = ("overall_score", "mean_rating")
DEFAULT_RULE = "overall_score"  # the release the zephyr-7b-beta recipes train on (zephyr data binarize, the mixer)
RANGES = {"rating": (1.0, 5.0), "overall_score": (1.0, 10.0)}


def row_rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def score_value(value: Any, where: Where, field: str, scale: str = "rating") -> float | None:
    """"4" / 4 -> 4.0; "N/A", None -> None; a non-number, NaN or a value off the scale is a DataError."""
    low, high = RANGES[scale]
    expected = f"expected a rating {low:g}-{high:g} or 'N/A'"
    if value is None:
        return None
    if isinstance(value, bool):
        raise where.error(f"{expected}, got {value!r}", field)
    number = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        if value.strip().lower() in NOT_RATED:
            return None
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise where.error(f"{expected}, got {value!r}", field)
    return number


rating = score_value  # the name the aspect ratings were read with


def mean_rating(completion: dict, where: Where, field: str, counts: Counter) -> float | None:
    """Mean of the usable aspect ratings of one completion, or None when it has none."""
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
        value = score_value(entry.get("Rating"), where, f"{aspect_field}.Rating")
        if value is None:
            counts["binarize_na_ratings"] += 1
        else:
            ratings.append(value)
    return sum(ratings) / len(ratings) if ratings else None


def prompt_messages(row: dict, where: Where) -> list[dict]:
    """The prompt conversation: the row's `messages` (kept whole) or the instruction as one user turn."""
    instruction = row.get("instruction")
    if not isinstance(instruction, str):
        raise where.error("missing" if instruction is None else
                          f"expected a string, got {type(instruction).__name__}", "instruction")
    if not instruction.strip():
        raise where.error("empty instruction", "instruction")
    messages = row.get("messages")
    if messages is None:
        return [{"role": "user", "content": instruction}]
    prompt_conversation(messages, where, "messages")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _candidates(row: dict, where: Where, rule: str, counts: Counter) -> list[tuple[float, int, dict]]:
    completions = row.get("completions")
    if not isinstance(completions, (list, tuple)):
        raise where.error("missing" if completions is None else
                          f"expected a list of completions, got {type(completions).__name__}", "completions")
    candidates = []
    for i, completion in enumerate(completions):
        field = f"completions[{i}]"
        if not isinstance(completion, dict):
            raise where.error(f"expected an object, got {type(completion).__name__}", field)
        if rule == "overall_score":
            score = score_value(completion.get("overall_score"), where, f"{field}.overall_score", "overall_score")
        else:
            score = mean_rating(completion, where, field, counts)
        response = completion.get("response")
        if not isinstance(response, str):
            raise where.error("missing" if response is None else
                              f"expected a string, got {type(response).__name__}", f"{field}.response")
        if rule == "mean_rating" and not response.strip():
            counts["binarize_empty_responses"] += 1
            continue
        if score is None:
            counts["binarize_unrated_completions"] += 1
            continue
        candidates.append((score, i, completion))
    return candidates


def choose(row: dict, where: Where, seed: int, counts: Counter, rule: str):
    """-> (prompt messages, (score, index, completion) chosen, same rejected), or None (dropped; counted)."""
    if rule not in RULES:
        raise ValueError(f"unknown binarization rule {rule!r}; choose one of {', '.join(RULES)}")
    if not isinstance(row, dict):
        raise where.error(f"a row must be an object with named fields, got {type(row).__name__}")
    counts["binarize_rows"] += 1
    prompt = prompt_messages(row, where)
    candidates = _candidates(row, where, rule, counts)
    if len(candidates) < 2:
        counts["binarize_dropped_fewer_than_2_rated"] += 1
        return None
    rng = row_rng(seed, row["instruction"])
    if rule == "overall_score":
        chosen = max(candidates, key=lambda c: c[0])
        rejected = rng.choice([c for c in candidates if c is not chosen])
        if rejected[0] == chosen[0]:
            counts["binarize_tied_pairs"] += 1
    else:
        best = max(score for score, _, _ in candidates)
        top = [c for c in candidates if c[0] == best]
        lower = [c for c in candidates if c[0] < best]
        if not lower:
            counts["binarize_dropped_all_tied"] += 1
            return None
        if len(top) > 1:
            counts["binarize_best_tied"] += 1
        chosen = rng.choice(top)
        rejected = rng.choice(lower)
    counts["binarize_pairs"] += 1
    return prompt, chosen, rejected


def binarize_row(row: dict, where: Where, seed: int, counts: Counter, rule: str) -> dict | None:
    """One raw UltraFeedback row -> a normalised pair (reply strings), or None (dropped; the reason is counted)."""
    picked = choose(row, where, seed, counts, rule)
    if picked is None:
        return None
    prompt, chosen, rejected = picked
    return {"prompt": prompt, "chosen": chosen[2]["response"], "rejected": rejected[2]["response"],
            "score_chosen": chosen[0], "score_rejected": rejected[0]}


def _origin(pick: tuple[float, int, dict]) -> dict:
    completion = pick[2]
    return {"completion": pick[1], "model": completion.get("model"), "principle": completion.get("principle")}


def binarized_record(row: dict, where: Where, seed: int, counts: Counter, rule: str) -> dict | None:
    """One raw row -> the pair as written to files: full message lists, scores and what produced them."""
    picked = choose(row, where, seed, counts, rule)
    if picked is None:
        return None
    prompt, chosen, rejected = picked
    chosen_messages = [*prompt, {"role": "assistant", "content": chosen[2]["response"]}]
    return {"prompt": prompt, "chosen": chosen_messages,
            "rejected": [*prompt, {"role": "assistant", "content": rejected[2]["response"]}],
            "messages": chosen_messages, "score_chosen": chosen[0], "score_rejected": rejected[0],
            "provenance": {"rule": rule, "seed": seed, "chosen": _origin(chosen), "rejected": _origin(rejected)}}
