"""Rate (instruction, response) pairs with the rubric through a judge (`zephyr.judge`)."""

from __future__ import annotations

from typing import Sequence

from .rubric import judge_prompt, parse_ratings


def rate(judge, pairs: Sequence[tuple[str, str]]) -> list[tuple[dict[str, str], str]]:
    """[(instruction, response)] -> [(ratings, raw judge text)]."""
    texts = judge.complete([judge_prompt(instruction, response) for instruction, response in pairs], max_tokens=64)
    return [(parse_ratings(text), text) for text in texts]
