"""UltraFeedback's judge requests, filled and parsed as its annotation scripts do (src/data_annotation/ at the
pinned commit, see ultrafeedback.py); the texts themselves come from `ultrafeedback.load`.

  * aspect call (annotate_preference.py): system = the annotation system prompt; user = the aspect's template
    with the instruction and the 4 completions as text_1..text_4 in a random order (one permutation per
    aspect); truthfulness gets the with-answer template and the prompt's world knowledge when it has some.
    Parsing: the reply split on blank lines into exactly 4 blocks; in each, `Rating: (.+?)\\nRationale: (.+)`
    (instruction following, honesty) or `Type: ...\\nRationale: ...\\nRating: ...\\nRationale: ...`
    (truthfulness, helpfulness); the rating is "N/A" or the first integer. A reply that does not parse, or a
    rating off the 1-5 scale, makes the call unparsable (None): counted, never defaulted.
  * critique call (annotate_critique.py): one per completion; the instruction gets "\\nNote: " and the
    completion's principle prompt (a verbalized-calibration prompt cut before "For instance, "). The stripped
    reply split on "\\nOverall Score: " into exactly 2 parts; the score is the text before the first "." (for
    "x/y", x). Scale 1-10.
  * rescore call (fix_overall_score_issue.py, the 2023-12-29 fix the H4 release used): an overall_score of
    10 whose mean aspect rating is <= 2 becomes 1; in (2, 4] it is asked again with the rescore template
    (max_tokens 1); above 4 it stays.
Settings as UltraFeedback's: temperature 0, top_p 0.6, max_tokens 500 (aspects), 1024 (critique), 1 (rescore).

A small judge rarely writes these shapes on its own (gemma-3-270m: no aspect call or critique of 32 parsed).
`*_grammar` give each call's shape as a GBNF grammar for a llama.cpp judge (`zephyr aif --judge_grammar`): the
prompts stay UltraFeedback's, the reply is held to the format its parser reads, every rationale is one line of
at most `chars` characters (so that four of them fit the call's max_tokens), and the ratings and scores are
the judge's own choice among the allowed tokens.
"""

from __future__ import annotations

import re

ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
TEXTS_PER_CALL = 4  # the templates have slots text_1..text_4
JUDGE_SAMPLING = {"temperature": 0, "top_p": 0.6}  # every UltraFeedback judge call (annotate_preference.py, annotate_critique.py)
ASPECT_MAX_TOKENS, CRITIQUE_MAX_TOKENS, RESCORE_MAX_TOKENS = 500, 1024, 1

_SHORT = re.compile(r"Rating: (.+?)\nRationale: (.+)", re.DOTALL)
_TYPED = re.compile(r"Type: (.+?)\nRationale: (.+?)\nRating: (.+?)\nRationale: (.+)", re.DOTALL)
_INTEGER = re.compile(r"\b\d+\b")


def instruction_text(messages: list[dict]) -> str:
    """What fills {instruction}: a lone user turn as it is; a conversation with a system message or earlier
    turns as a transcript ("Role: text" blocks), so that the judge sees the whole context."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def aspect_template(texts, aspect: str, world_knowledge: str | None) -> str:
    if aspect == "truthfulness":
        return texts["truthfulness_template_with_answer" if world_knowledge else "truthfulness_template_without_answer"]
    if aspect == "helpfulness":
        return texts["helpfulness_template_without_answer"]
    return texts[f"{aspect}_template"]


def with_grammar(request: dict, grammar: str | None) -> dict:
    return {**request, "grammar": grammar} if grammar else request


def aspect_request(texts, aspect: str, instruction: str, responses: list[str], world_knowledge: str | None,
                   max_tokens: int = ASPECT_MAX_TOKENS) -> dict:
    """`responses` already in the order they are shown (text_1..text_4)."""
    fill = {"instruction": instruction, **{f"text_{i + 1}": r for i, r in enumerate(responses)}}
    if aspect == "truthfulness" and world_knowledge:
        fill["world_knowledge"] = world_knowledge
    return {"messages": [{"role": "system", "content": texts["annotation_system_prompt"]},
                         {"role": "user", "content": aspect_template(texts, aspect, world_knowledge).format(**fill)}],
            "max_tokens": max_tokens, **JUDGE_SAMPLING}


def _gbnf_line(chars: int) -> str:
    return f"[^\\n]{{1,{chars}}}"


def aspect_grammar(aspect: str, chars: int) -> str:
    """GBNF for an aspect call's reply: the 4 blocks `parse_aspect` reads, headed as the templates show them."""
    short = aspect in ("instruction_following", "honesty")
    body = ('"Rating: " rating "\\nRationale: " line' if short else
            '"Type: " types "\\nRationale: " line "\\nRating: " rating "\\nRationale: " line')
    blocks = ' "\\n\\n" '.join(f'"####" "#"? " Output for Text {i}\\n" body' for i in range(1, TEXTS_PER_CALL + 1))
    rules = [f"root ::= {blocks}", f"body ::= {body}", 'rating ::= [1-5]' + (' | "N/A"' if aspect == "honesty" else "")]
    if not short:
        rules.append('types ::= "None" | [1-3] (", " [1-3]){0,2}')
    return "\n".join(rules + [f"line ::= {_gbnf_line(chars)}"]) + "\n"


def critique_grammar(chars: int) -> str:
    """GBNF for a critique reply: one line of feedback, then the score line `parse_critique` reads."""
    return f'root ::= {_gbnf_line(chars)} "\\nOverall Score: " ([1-9] | "10")\n'


RESCORE_GRAMMAR = 'root ::= [1-9] | "10"\n'


def _rating(text: str) -> str | None:
    if text == "N/A":
        return "N/A"
    found = _INTEGER.findall(text)
    return found[0] if found and 1 <= int(found[0]) <= 5 else None


def parse_aspect(reply: str, aspect: str) -> list[dict] | None:
    """The 4 annotations in the order shown, or None when the reply does not parse."""
    blocks = reply.split("\n\n")
    if len(blocks) != TEXTS_PER_CALL:
        return None
    annotations = []
    for block in blocks:
        if aspect in ("instruction_following", "honesty"):
            match = _SHORT.search(block)
            if not match:
                return None
            annotation = {"Rating": _rating(match.group(1)), "Rationale": match.group(2)}
        else:
            match = _TYPED.search(block)
            if not match:
                return None
            kind = match.group(1)
            annotation = {"Type": _INTEGER.findall(kind) if kind != "None" else "None",
                          "Rationale": match.group(2), "Rating": _rating(match.group(3)),
                          "Rationale For Rating": match.group(4)}
            if annotation["Rating"] == "N/A":  # only honesty may be N/A
                return None
        if annotation["Rating"] is None:
            return None
        annotations.append(annotation)
    return annotations


def principle_note(principle: str, system_prompt: str) -> str:
    if principle == "verbalized_calibration":
        return system_prompt.split("For instance, ")[0].strip()
    return system_prompt


def critique_request(texts, instruction: str, principle: str, system_prompt: str, response: str,
                     max_tokens: int = CRITIQUE_MAX_TOKENS) -> dict:
    filled = texts["critique_feedback_template"].format(
        instruction="\n".join([instruction, "Note: " + principle_note(principle, system_prompt)]), completion=response)
    return {"messages": [{"role": "system", "content": texts["critique_system_prompt"]},
                         {"role": "user", "content": filled}], "max_tokens": max_tokens, **JUDGE_SAMPLING}


def _score(text: str) -> float | None:
    if "/" in text:
        text = text.split("/")[0].strip()
    try:
        score = float(text)
    except ValueError:
        return None
    return score if 1 <= score <= 10 else None


def parse_critique(reply: str) -> tuple[str, float] | None:
    parts = reply.strip().split("\nOverall Score: ")
    if len(parts) != 2:
        return None
    score = _score(parts[1].split(".")[0].strip())
    return None if score is None else (parts[0].strip(), score)


def fine_grained_score(annotations: dict) -> float | None:
    """Mean of the aspect ratings that are not N/A (fix_overall_score_issue.py's calculate_average_rating)."""
    ratings = [int(a["Rating"]) for a in annotations.values() if a and a.get("Rating") not in (None, "N/A")]
    return sum(ratings) / len(ratings) if ratings else None


def rescore_action(overall_score: float | None, fine_grained: float | None) -> str:
    """keep, flip (to 1) or rescore, by the 2023-12-29 fix."""
    if overall_score != 10 or fine_grained is None or fine_grained > 4:
        return "keep"
    return "flip" if fine_grained <= 2 else "rescore"


def rescore_request(texts, instruction: str, principle: str, system_prompt: str, response: str, critique: str,
                    max_tokens: int = RESCORE_MAX_TOKENS) -> dict:
    filled = texts["critique_rescore_template"].format(
        instruction="\n".join([instruction, "Note: " + principle_note(principle, system_prompt)]), completion=response,
        critique=critique)
    return {"messages": [{"role": "system", "content": texts["critique_system_prompt"]},
                         {"role": "user", "content": filled}], "max_tokens": max_tokens, **JUDGE_SAMPLING}


def parse_rescore(reply: str) -> float | None:
    return _score(reply.strip())
