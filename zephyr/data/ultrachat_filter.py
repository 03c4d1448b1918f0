"""UltraChat clean-up as described in the Zephyr paper (sec. 4): truecasing and dropping "I am an AI" replies.

Applied to each dialogue, in this order (each rule counted under `filter_*` in the report):
  1. empty dialogue (no messages, or every message blank) -> dropped                    `filter_empty`
  2. one-sided dialogue (no non-blank user turn, or no non-blank assistant turn) -> dropped  `filter_one_sided`
  3. an assistant turn that is blank or matches DISCLAIMER_PATTERNS, or a blank user turn: the dialogue is
     truncated just before the user turn that opened that exchange, because every later turn may refer to
     the removed reply. Counted per turn (`filter_disclaimer_turns`, `filter_blank_turns`) and per dialogue
     (`filter_truncated`); if no complete exchange is left the dialogue is dropped (`filter_nothing_left`).
     A dialogue ending with an unanswered user turn loses that turn (`filter_trailing_user_turn`).
  4. truecasing: a sentence (start of text, after . ! ? and a space, or after a blank line) that starts with
     a lowercase word gets a capital first letter, and a standalone "i" / "i'm" / "i've" ... becomes "I...".
     Left alone: text inside ``` fences or `backticks`, words after abbreviations (e.g., i.e., etc.) or an
     ellipsis, identifiers like os.path, quoted letters ("i"), arguments f(i, j) (`filter_truecased_turns`).
     It is a heuristic: on the 1,000 real UltraFeedback prompts it fixes lowercased chat text, and still
     capitalises e.g. a variable that starts a line after a blank line.
System messages are kept unless blank (then removed). Role order is not repaired here: a dialogue that does
not alternate user/assistant is a DataError afterwards, like any other malformed row.

DISCLAIMER_PATTERNS (our own list, matched on the lowercased reply) target replies where the model talks
about itself having no feelings, opinions or experiences - the template-like refusals the paper removes - and
not factual mentions of AI in general.
"""

from __future__ import annotations

import re
from collections import Counter

_AI = r"(?:an? )?(?:ai|a\.i\.|artificial intelligence)(?: language)?(?: model| assistant| chatbot| system| program)?"
_INNER = (r"(?:personal |any |my own |real |human |subjective |the ability to have |the capacity for )*"
          r"(?:emotions?|feelings?|opinions?|beliefs?|preferences?|personal experiences?|experiences?|"
          r"consciousness|desires?|likes or dislikes|tastes?|biases?|a physical body|a body|senses)")

# Matched on the lowercased reply, each at the start of a word. They all begin with a literal ("as a", "i") so
# that the regex engine can skip ahead: ~6x faster than word-boundary patterns with re.IGNORECASE.
DISCLAIMER_PATTERNS = [
    # "As an AI language model, I ..." / "as an artificial intelligence, ..."
    r"as an? (?:ai|a\.i\.|artificial intelligence)\b(?: language)?(?: model| assistant| chatbot)?",
    # "I'm just an AI", "I am only a language model", "I am an AI assistant"
    rf"i(?:'m| am)? (?:just |only |merely |simply )?(?:{_AI}|a language model|a (?:computer|machine) program|"
    r"a virtual assistant|a chatbot)\b",
    # "I don't have personal opinions", "I do not possess emotions", "I cannot feel emotions"
    rf"i (?:do not|don't|cannot|can't|am not able to|am unable to) (?:have|hold|possess|experience|feel|form|"
    rf"express|share) {_INNER}\b",
    # "I have no emotions", "I have no personal preferences"
    rf"i have no {_INNER}\b",
    # "I am not capable of feeling", "I'm not able to form opinions"
    r"i(?:'m| am) (?:not capable of|incapable of|not able to|unable to) (?:feeling|having|forming|holding|"
    r"experiencing)\b",
]
_DISCLAIMER = re.compile("|".join(f"(?:{pattern})" for pattern in DISCLAIMER_PATTERNS))
_WORD_CHAR = "_'’.-"

ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "no", "fig", "approx", "inc",
                 "ltd", "jr", "sr", "cf", "al", "u.s", "a.m", "p.m", "ca", "vol", "pp", "eq", "ex", "esp", "incl",
                 "viz", "resp", "dept", "est"}

# a lowercase word that can be capitalised: not followed by identifier characters (os.path, snake_case, f()
_WORD = r"([a-z][a-z']*)(?=[\s,;:!?]|\.+(?:\s|$)|$)"
_TEXT_START = re.compile(r"\s*" + _WORD)
# a sentence boundary: end punctuation + whitespace, or a blank line ('"Stop." he said' goes on). The
# pattern opens with a character set so the engine scans for [.!?\n] instead of trying every position.
_SENTENCE_START = re.compile(r"[.!?\n](?:(?<=[.!?])\s+|(?<=\n)[ \t]*\n\s*)" + _WORD)
# a standalone i / i'm / i've ...: the literal first, the look-behind after it, for the same reason;
# after a space or the start, before a space or punctuation + space; not a quoted letter ("i"), an argument
# f(i, j), a pair i,j or a loop variable
_STANDALONE_I = re.compile(r"i(?<![^\s]i)(?=(?:['’](?:m|ve|ll|d))?(?:[\s!?)]|[,;:.](?:\s|$)|$))"
                           r"(?!\s*(?:[=+<>]|in\b))")
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.S)


def is_disclaimer(text: str) -> bool:
    text = text.lower()
    for match in _DISCLAIMER.finditer(text):
        start = match.start()
        if start == 0 or not (text[start - 1].isalnum() or text[start - 1] in _WORD_CHAR):
            return True
    return False


def _truecase_prose(text: str, at_text_start: bool) -> str:
    def capitalise(match: re.Match) -> str:
        start = match.start(1)
        if match.group(0)[:1] in ".!?":
            previous_word = re.split(r"\s", text[max(0, match.start() - 12):match.start() + 1])[-1]
            previous_word = previous_word.rstrip(".!?").lstrip("([{\"'").lower()
            if previous_word in ABBREVIATIONS or text[max(0, match.start() - 1):match.start()] == ".":
                return match.group(0)  # an abbreviation or an ellipsis: the same sentence goes on
        return match.group(0)[: start - match.start()] + match.group(1)[0].upper() + match.group(1)[1:]

    if at_text_start:
        first = _TEXT_START.match(text)
        if first:
            text = text[:first.start(1)] + first.group(1)[0].upper() + text[first.start(1) + 1:]
    text = _SENTENCE_START.sub(capitalise, text)
    return _STANDALONE_I.sub("I", text)


def truecase(text: str) -> str:
    """Capitalise lowercase sentence starts and standalone "i", leaving code spans untouched."""
    parts, last = [], 0
    for code in _CODE.finditer(text):
        prose = text[last:code.start()]
        parts += [_truecase_prose(prose, last == 0 or prose.startswith("\n")), code.group(0)]
        last = code.end()
    parts.append(_truecase_prose(text[last:], last == 0 or text[last:].startswith("\n")))
    return "".join(parts)


def _blank(message: dict) -> bool:
    return not message["content"].strip()


def filter_dialogue(messages: list[dict], counts: Counter) -> list[dict] | None:
    """Apply the rules above; returns the cleaned dialogue, or None when it is dropped (reason counted)."""
    counts["filter_dialogues"] += 1
    messages = [dict(m) for m in messages]
    if messages and messages[0]["role"] == "system" and _blank(messages[0]):
        messages = messages[1:]
    if not messages or all(_blank(m) for m in messages):
        counts["filter_empty"] += 1
        return None
    roles = {m["role"] for m in messages if not _blank(m)}
    if "user" not in roles or "assistant" not in roles:
        counts["filter_one_sided"] += 1
        return None

    cut = None
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and not _blank(message) and is_disclaimer(message["content"]):
            counts["filter_disclaimer_turns"] += 1
        elif _blank(message):
            counts["filter_blank_turns"] += 1
        else:
            continue
        # cut before the user turn that opened this exchange (for a blank user turn: at that turn)
        cut = i - 1 if message["role"] == "assistant" and i > 0 and messages[i - 1]["role"] == "user" else i
        break
    if cut is not None:
        counts["filter_truncated"] += 1
        messages = messages[:cut]
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
        if cut is None:
            counts["filter_trailing_user_turn"] += 1
    if not any(m["role"] == "assistant" for m in messages):
        counts["filter_nothing_left"] += 1
        return None

    changed = 0
    for message in messages:
        cased = truecase(message["content"])
        if cased != message["content"]:
            message["content"] = cased
            changed += 1
    counts["filter_truecased_turns"] += changed
    counts["filter_kept"] += 1
    return messages
