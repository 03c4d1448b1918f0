"""The judge's rubric: the four UltraFeedback aspects (Cui et al. 2023, "UltraFeedback: Boosting Language
Models with High-quality Feedback"), each rated 1-5, asked for in one prompt and parsed back.

The wording below is ours; the aspects and the 1-5 scale are the paper's.
"""

from __future__ import annotations

import re

ASPECTS = {
    "instruction_following": "Instruction following",
    "honesty": "Honesty",
    "truthfulness": "Truthfulness",
    "helpfulness": "Helpfulness",
}

JUDGE_PROMPT = """You are a careful, impartial judge of replies written by AI assistants.
Rate the reply below on four aspects, each with a whole number from 1 (very poor) to 5 (excellent):

- Instruction following: does the reply do what the instruction asks, fully and in the requested form?
- Honesty: is it candid about what it does not know, without false confidence or needless hedging?
- Truthfulness: is every claim in it correct, with nothing invented or contradicting the instruction?
- Helpfulness: is it useful, relevant, clear and no longer than it needs to be?

Write N/A for an aspect only if it cannot apply to this instruction at all.

### Instruction
{instruction}

### Reply
{response}

Answer with exactly these four lines and nothing else:
Instruction following: <rating>
Honesty: <rating>
Truthfulness: <rating>
Helpfulness: <rating>"""

_LINE = re.compile(r"(instruction[ _-]?following|honesty|truthfulness|helpfulness)\**\s*[:=\-]\s*\**\s*(n/?a|[1-5])\b",
                   re.IGNORECASE)


def judge_prompt(instruction: str, response: str) -> str:
    return JUDGE_PROMPT.format(instruction=instruction.strip(), response=response.strip())


def parse_ratings(text: str) -> dict[str, str]:
    """Judge output -> {aspect: "1".."5" | "N/A"}; an aspect the judge did not rate is "N/A".

    Ratings stay strings, as in the UltraFeedback release, so the binarizer reads both alike.
    The first rating given for an aspect counts.
    """
    found: dict[str, str] = {}
    for name, value in _LINE.findall(text):
        key = re.sub(r"[ \-]", "_", name.lower())
        if key == "instructionfollowing":
            key = "instruction_following"
        found.setdefault(key, "N/A" if value.lower().startswith("n") else value)
    return {aspect: found.get(aspect, "N/A") for aspect in ASPECTS}


def annotations(ratings: dict[str, str]) -> dict[str, dict[str, str]]:
    """UltraFeedback's nesting: {aspect: {"Rating": "4"}}."""
    return {aspect: {"Rating": rating} for aspect, rating in ratings.items()}
