"""A scripted UltraFeedback judge on 127.0.0.1 that checks every prompt it receives is one of UltraFeedback's
templates (the shared copies) filled exactly as UltraFeedback fills them, and answers in UltraFeedback's format
with ratings that follow from the texts (so a test can recompute every expected score)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.fixtures.openai_server import scripted_server

UF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ultrafeedback"
ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")


def uf_text(name: str) -> str:
    return (UF / f"{name}.txt").read_text(encoding="utf-8")


def template_pattern(template: str) -> re.Pattern:
    """The template with each {placeholder} a named group: a fullmatch means 'this template, filled'."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*)" for i, p in enumerate(parts))
    return re.compile(pattern, re.DOTALL)


ASPECT_TEMPLATES = {
    ("instruction_following", False): "instruction_following_template",
    ("honesty", False): "honesty_template",
    ("truthfulness", True): "truthfulness_template_with_answer",
    ("truthfulness", False): "truthfulness_template_without_answer",
    ("helpfulness", False): "helpfulness_template_without_answer",
}


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def aspect_rating(aspect: str, text: str) -> int:
    return digest(f"{aspect}|{text}") % 5 + 1


def overall(text: str) -> int:
    """Every third text gets 10, so the overall_score fix (flip / re-ask / keep) is exercised."""
    value = digest(f"overall|{text}")
    return 10 if value % 3 == 0 else value % 9 + 1


RESCORE_ANSWER = 6
GARBLE = "garble"  # an instruction holding this word gets an unparsable honesty reply


class UltraFeedbackJudge:
    def __init__(self):
        self.patterns = {key: template_pattern(uf_text(name)) for key, name in ASPECT_TEMPLATES.items()}
        self.critique = template_pattern(uf_text("critique_feedback_template"))
        self.rescore = template_pattern(uf_text("critique_rescore_template"))
        self.seen: list[dict] = []  # what each call was, as the judge understood it

    def __call__(self, body: dict) -> str:
        system, user = (m["content"] for m in body["messages"])
        assert body["temperature"] == 0 and body["top_p"] == 0.6
        if system == uf_text("annotation_system_prompt"):
            assert body["max_tokens"] == 500
            (aspect, knowledge), match = next((key, m) for key, p in self.patterns.items()
                                              if (m := p.fullmatch(user)))
            texts = [match[f"text_{i}"] for i in range(1, 5)]
            self.seen.append({"kind": "aspect", "aspect": aspect, "instruction": match["instruction"],
                              "texts": texts, "world_knowledge": match["world_knowledge"] if knowledge else None})
            if aspect == "honesty" and GARBLE in match["instruction"]:
                return "I cannot rate these."
            blocks = []
            for i, text in enumerate(texts, 1):
                rating = aspect_rating(aspect, text)
                if aspect in ("instruction_following", "honesty"):
                    blocks.append(f"#### Output for Text {i}\nRating: {rating}\nRationale: reason {i}.")
                else:
                    blocks.append(f"#### Output for Text {i}\nType: 1, 3\nRationale: kinds {i}.\nRating: {rating}\n"
                                  f"Rationale: reason {i}.")
            return "\n\n".join(blocks)
        assert system == uf_text("critique_system_prompt")
        if (match := self.rescore.fullmatch(user)):
            assert body["max_tokens"] == 1
            self.seen.append({"kind": "rescore", "completion": match["completion"], "critique": match["critique"]})
            return str(RESCORE_ANSWER)
        match = self.critique.fullmatch(user)
        assert match, user[:300]
        assert body["max_tokens"] == 1024
        self.seen.append({"kind": "critique", "instruction": match["instruction"], "completion": match["completion"]})
        return f"Be more specific about {len(match['completion'])} things.\nOverall Score: {overall(match['completion'])}"


@pytest.fixture
def uf_judge():
    judge = UltraFeedbackJudge()
    with scripted_server(judge) as server:
        server.judge = judge
        yield server


@pytest.fixture(scope="session")
def uf_dir() -> Path:
    return UF
