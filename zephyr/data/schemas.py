"""Recognise the row schemas people actually have and turn them into the two normalised forms.

Normalised forms (the API every later stage uses):
  conversation = [{"role": ..., "content": ...}, ...]   checked by `zephyr.chat_template.validate`
  pair = {"prompt": [messages ending with a user turn], "chosen": str, "rejected": str,
          "score_chosen": float (optional), "score_rejected": float (optional)}

Accepted rows:
  chat        `messages` list (ultrachat_200k: prompt, prompt_id, messages), or any preference row below
              (used as prompt + chosen reply).
  preference  `prompt`, `chosen`, `rejected` where each of chosen/rejected is a string (TRL's flattened form,
              scores at top level or under `metadata`), or a message list ending with the assistant reply
              (H4 ultrafeedback_binarized: chosen = [user, assistant], prompt str; the prompt is then the list
              minus its last turn, and must be the same for chosen and rejected), with `prompt` a string or a
              message list (or absent when the lists carry it);
              raw UltraFeedback (`instruction`, `completions`) -> binarized, see binarize.py.
Every problem raises DataError naming the file, line/row and field (`messages[2].role`, `chosen`, ...).
One exception: an empty *chosen* reply is well-formed but would train the model towards silence, so the row
raises `Dropped("pair_empty_chosen")` (counted, not an error). An empty *rejected* reply is kept: UltraFeedback
has empty completions rated 1, and "not that" is a fine thing to learn.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..chat_template import ConversationError, validate
from .io import Where

RAW_ULTRAFEEDBACK = "ultrafeedback_raw"


class Dropped(Exception):
    """A well-formed row that a documented rule removes; the mixer counts it under `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def detect(row: Any, where: Where, wanted: str = "messages") -> str:
    """-> "messages", "pair" or RAW_ULTRAFEEDBACK; otherwise a DataError on the `wanted` field."""
    if not isinstance(row, dict):
        raise where.error(f"a row must be an object with named fields, got {type(row).__name__}")
    if "messages" in row and row["messages"] is not None and not ("chosen" in row and "rejected" in row):
        return "messages"
    if "completions" in row and "instruction" in row:
        return RAW_ULTRAFEEDBACK
    if "chosen" in row or "rejected" in row:
        return "pair"
    if "messages" in row:
        return "messages"
    if ("instruction" in row) != ("completions" in row):  # half a raw UltraFeedback row: name the other half
        wanted = "completions" if "instruction" in row else "instruction"
    raise where.error("missing; expected 'messages', or 'prompt'/'chosen'/'rejected', or 'instruction'/"
                      "'completions' (raw UltraFeedback); the row has " + (", ".join(map(str, row)) or "no fields"),
                      wanted)


def message_list(value: Any, where: Where, field: str) -> list[dict]:
    """Type-check a message list (list of {role: str, content: str}); order and content are checked later."""
    if not isinstance(value, (list, tuple)):
        raise where.error(f"expected a list of {{role, content}} messages, got {type(value).__name__}", field)
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise where.error(f"expected an object with 'role' and 'content', got {type(message).__name__}",
                              f"{field}[{i}]")
        for key in ("role", "content"):
            if key not in message or message[key] is None:
                raise where.error("missing", f"{field}[{i}].{key}")
            if not isinstance(message[key], str):
                raise where.error(f"expected a string, got {type(message[key]).__name__}", f"{field}[{i}].{key}")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def check_conversation(messages: list[dict], where: Where, field: str = "messages",
                       require_assistant_last: bool = True) -> list[dict]:
    """`chat_template.validate` with the row number as index; its complaint becomes a DataError on the field."""
    try:
        validate(messages, index=where.number, require_assistant_last=require_assistant_last)
    except ConversationError as err:
        raise where.error(err.problem, _field_of(err.problem, field)) from None
    return messages


def prompt_conversation(messages: Any, where: Where, field: str = "messages") -> list[dict]:
    """A conversation for a model to reply to: valid (`check_conversation`) and ending with a user turn."""
    check_conversation(messages, where, field, require_assistant_last=False)
    if messages[-1]["role"] != "user":
        raise where.error("the prompt must end with a user turn", field)
    return messages


def _field_of(problem: str, field: str) -> str:
    match = re.match(r"message (\d+)", problem)
    if not match:
        return field
    if "role" in problem and "unknown" in problem:
        return f"{field}[{match.group(1)}].role"
    if "empty content" in problem:
        return f"{field}[{match.group(1)}].content"
    return f"{field}[{match.group(1)}]"


def conversation(row: Any, where: Where) -> list[dict]:
    """A chat row -> a validated conversation ending with an assistant reply."""
    return check_conversation(chat_messages(row, where), where)


def chat_messages(row: Any, where: Where) -> list[dict]:
    """A chat row's messages, type-checked but not yet validated (filters may still repair or drop them)."""
    kind = detect(row, where)
    if kind == "messages":
        return message_list(row["messages"], where, "messages")
    if kind == RAW_ULTRAFEEDBACK:
        raise where.error("raw UltraFeedback rows are preference data; load them with load_preference_splits",
                          "completions")
    found = pair(row, where)
    return found["prompt"] + [{"role": "assistant", "content": found["chosen"]}]


def pair(row: Any, where: Where, keep_empty_chosen: bool = False) -> dict:
    """A prompt/chosen/rejected row (strings or message lists) -> a normalised preference pair."""
    if detect(row, where, "chosen") == "messages":
        raise where.error("missing; a preference row needs 'chosen' and 'rejected'", "chosen")
    chosen, chosen_prefix = _reply(row, where, "chosen")
    rejected, rejected_prefix = _reply(row, where, "rejected")
    if chosen_prefix and rejected_prefix and chosen_prefix != rejected_prefix:
        raise where.error("the conversation before the reply differs from the one in 'chosen'", "rejected")
    prefix = chosen_prefix or rejected_prefix
    if prefix:  # the lists carry the full (possibly multi-turn) prompt; the `prompt` string is only its first turn
        prompt = prefix
        field = "chosen"
    else:
        prompt = _prompt(row, where)
        field = "prompt"
    prompt_conversation(prompt, where, field)
    result = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    for name in ("score_chosen", "score_rejected"):
        score = _score(row, where, name)
        if score is not None:
            result[name] = score
    if not chosen.strip() and not keep_empty_chosen:
        raise Dropped("pair_empty_chosen")
    return result


def _reply(row: dict, where: Where, field: str) -> tuple[str, list[dict]]:
    """-> (reply text, messages before it) from a string or a message list ending with the assistant."""
    value = row.get(field)
    if value is None:
        raise where.error("missing", field)
    if isinstance(value, str):
        text, prefix = value, []
    elif isinstance(value, (list, tuple)):
        messages = message_list(value, where, field)
        if not messages or messages[-1]["role"] != "assistant":
            raise where.error("a message list must end with the assistant's reply", field)
        text, prefix = messages[-1]["content"], messages[:-1]
    else:
        raise where.error(f"expected a string or a message list, got {type(value).__name__}", field)
    return text, prefix


def _prompt(row: dict, where: Where) -> list[dict]:
    value = row.get("prompt")
    if value is None:
        raise where.error("missing (and 'chosen' is a bare reply, so there is no prompt)", "prompt")
    if isinstance(value, str):
        if not value.strip():
            raise where.error("empty prompt", "prompt")
        return [{"role": "user", "content": value}]
    if isinstance(value, (list, tuple)):
        return message_list(value, where, "prompt")
    raise where.error(f"expected a string or a message list, got {type(value).__name__}", "prompt")


def _score(row: dict, where: Where, name: str) -> float | None:
    value, field = row.get(name), name
    metadata = row.get("metadata")
    if value is None and isinstance(metadata, dict):  # the flattened TRL sample keeps scores under metadata
        value, field = metadata.get(name), f"metadata.{name}"
    if value is None or (isinstance(value, str) and not value.strip()):  # an empty CSV cell: no score
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise where.error(f"expected a number, got {type(value).__name__}", field)
    try:
        score = float(value)
    except ValueError:
        raise where.error(f"expected a number, got {value!r}", field) from None
    if not math.isfinite(score):
        raise where.error(f"expected a finite number, got {value!r}", field)
    return score


def user_turns(row: Any, where: Where) -> list[str]:
    """The user-written text of any accepted row (what decontamination compares with eval prompts)."""
    kind = detect(row, where)
    if kind == RAW_ULTRAFEEDBACK:
        instruction = row["instruction"]
        if not isinstance(instruction, str):
            raise where.error(f"expected a string, got {type(instruction).__name__}", "instruction")
        return [instruction]
    messages = conversation(row, where) if kind == "messages" else pair(row, where, keep_empty_chosen=True)["prompt"]
    return [m["content"] for m in messages if m["role"] == "user"]
