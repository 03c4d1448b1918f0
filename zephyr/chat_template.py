"""The two chat templates of the Zephyr family, rendered in Python and as Jinja for tokenizers.

zephyr  (zephyr-7b-alpha/beta):   <|system|>\\n{sys}</s>\\n<|user|>\\n{msg}</s>\\n<|assistant|>\\n{reply}</s>\\n
chatml  (zephyr-7b-gemma):        <bos><|im_start|>user\\n{msg}<|im_end|>\\n<|im_start|>assistant\\n{reply}<|im_end|>\\n<eos>

`render_text` gives exactly what `tokenizer.apply_chat_template` gives with the published Jinja strings
(tests/test_chat_template.py checks it against them). Any other template a checkpoint carries (Llama-2's
`[INST]`, ...) is rendered by the tokenizer itself under the name `checkpoint`. `render_ids` turns a conversation into
`(input_ids, assistant_mask)`: the mask is 1 on each assistant reply and its end-of-turn token, 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ZephyrError

ROLES = ("system", "user", "assistant")
TEMPLATE_NAMES = ("zephyr", "chatml")
CHECKPOINT = "checkpoint"  # the tokenizer's own Jinja template (Llama-2 [INST], ...), rendered by apply_chat_template
TEMPLATE_HELP = ("zephyr (<|user|> ... </s>), chatml (<|im_start|> ... <|im_end|>), checkpoint (the tokenizer's own "
                 "Jinja template, e.g. Llama-2's [INST]), or auto (the checkpoint's own: by name when it is zephyr or "
                 "chatml, else checkpoint; zephyr when it has none)")

# Jinja equivalents of the published templates (authored here; the rendering is what is checked, not the text).
# trim_blocks/lstrip_blocks are how transformers renders templates, so no stray newlines from the tags.
JINJA = {
    "zephyr": (
        "{% for message in messages %}"
        "{% if message['role'] in ['system', 'user', 'assistant'] %}"
        "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
        "{% endif %}"
        "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
        "{% endfor %}"
    ),
    "chatml": (
        "{% if messages[0]['role'] in ['user', 'system'] %}{{ bos_token }}{% endif %}"
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
        "{% elif messages[-1]['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    ),
}


class ConversationError(ZephyrError):
    """A conversation that no template can render: says which conversation and what is wrong."""

    def __init__(self, problem: str, index: int | None = None):
        self.index, self.problem = index, problem
        where = f"conversation {index}: " if index is not None else ""
        super().__init__(where + problem)


@dataclass(frozen=True)
class Rendered:
    text: str
    assistant_spans: list[tuple[int, int]]  # [start, end) character spans: reply + end-of-turn marker


def validate(messages: Any, index: int | None = None, require_assistant_last: bool = False) -> None:
    """Raise ConversationError unless `messages` is [system?] user, assistant, user, ... with non-empty text."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ConversationError("a conversation must be a non-empty list of messages", index)
    expected = "user"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ConversationError(f"message {i} must be an object with 'role' and 'content'", index)
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ConversationError(f"message {i} has unknown role {role!r} (expected one of {', '.join(ROLES)})",
                                    index)
        if not isinstance(content, str) or not content.strip():
            raise ConversationError(f"message {i} ({role}) has empty content", index)
        if role == "system":
            if i != 0:
                raise ConversationError(f"message {i} is a system message; only the first message may be one",
                                        index)
            continue
        if role != expected:
            previous = messages[i - 1]["role"] if i else "start"
            raise ConversationError(
                f"message {i} has role {role!r} after {previous!r}; roles must alternate user/assistant", index)
        expected = "assistant" if role == "user" else "user"
    if messages[-1]["role"] == "system":
        raise ConversationError("the conversation has only a system message", index)
    if require_assistant_last and messages[-1]["role"] != "assistant":
        raise ConversationError("the last message must be the assistant's reply to train on", index)


def render_text(messages: Sequence[dict], template: str = "zephyr", bos_token: str = "<s>",
                eos_token: str = "</s>", add_generation_prompt: bool = False) -> Rendered:
    """Render a validated conversation; also return where each assistant reply (+ end-of-turn) sits."""
    if template not in TEMPLATE_NAMES:
        raise ValueError(f"unknown chat template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0

    def emit(text: str, assistant: bool = False) -> None:
        nonlocal length
        if assistant:
            spans.append((length, length + len(text)))
        parts.append(text)
        length += len(text)

    if template == "zephyr":
        for message in messages:
            emit(f"<|{message['role']}|>\n")
            is_reply = message["role"] == "assistant"
            emit(message["content"] + eos_token, assistant=is_reply)
            emit("\n")
        if add_generation_prompt and messages:
            emit("<|assistant|>\n")
    else:
        if messages and messages[0]["role"] in ("user", "system"):
            emit(bos_token)
        for message in messages:
            emit(f"<|im_start|>{message['role']}\n")
            emit(message["content"] + "<|im_end|>", assistant=message["role"] == "assistant")
            emit("\n")
        if add_generation_prompt:
            emit("<|im_start|>assistant\n")
        elif messages and messages[-1]["role"] == "assistant":
            emit(eos_token)
    return Rendered("".join(parts), spans)


def end_of_turn(template: str, eos_token: str) -> str:
    """The string that closes an assistant turn: generation stops on it."""
    return "<|im_end|>" if template == "chatml" else eos_token


def render_with_tokenizer(messages: Sequence[dict], tokenizer, add_generation_prompt: bool = False,
                          index: int | None = None) -> Rendered:
    """Render with the tokenizer's own template; each assistant reply's span runs from the end of the
    conversation before it (generation prompt included) to the end of the conversation through it, trailing
    whitespace excluded. A template that closes the last turn differently (an extra EOS) is cut where the two
    renderings part, never inside a special token."""
    if not tokenizer.chat_template:
        raise ConversationError("chat_template 'checkpoint': the tokenizer carries no chat template", index)

    def text(part: Sequence[dict], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(list(part), tokenize=False, add_generation_prompt=generation_prompt)

    full = text(messages, add_generation_prompt)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = text(messages[:i], True), text(messages[:i + 1], False)
        end = len(through)
        if not full.startswith(through):
            end = next((k for k, (a, b) in enumerate(zip(through, full)) if a != b), min(len(through), len(full)))
            for token in tokenizer.all_special_tokens:  # never end inside a special token's text
                for rendering in (through, full):
                    start = rendering.find(token, max(0, end - len(token) + 1))
                    if 0 <= start < end:
                        end = start
        end = len(through[:end].rstrip())
        if not (through.startswith(before) and full.startswith(before) and end > len(before)):
            raise ConversationError(f"the tokenizer's chat template does not render message {i} (assistant) after "
                                    "the conversation before it; choose chat_template zephyr or chatml", index)
        spans.append((len(before), end))
    return Rendered(full, spans)


def adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def encode_rendered(text: str, tokenizer) -> list[int]:
    """Ids of rendered chat text: the tokenizer's own encoding, with a BOS in front where the tokenizer adds
    one to plain text (Mistral, Gemma) and the template has not already put it there."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if adds_bos(tokenizer) and ids[:1] != [tokenizer.bos_token_id]:
        ids.insert(0, tokenizer.bos_token_id)
    return ids


def render_ids(messages: Sequence[dict], tokenizer, template: str = "zephyr", add_generation_prompt: bool = False,
               index: int | None = None) -> tuple[list[int], list[int]]:
    """Conversation -> (input_ids, assistant_mask).

    The ids are the tokenizer's own encoding of the rendered text (identical to
    `apply_chat_template(tokenize=True)`), with a BOS in front when the tokenizer itself adds one to text
    (Mistral, Gemma) and the template has not already put it there; with `checkpoint` (the tokenizer's own
    template) exactly `apply_chat_template`'s ids. The mask is 1 on every token that starts inside an assistant
    reply or its end-of-turn marker, so nothing of the prompt, role headers or next turn.
    """
    validate(messages, index)
    if template == CHECKPOINT:
        rendered = render_with_tokenizer(messages, tokenizer, add_generation_prompt, index)
    else:
        rendered = render_text(messages, template, tokenizer.bos_token or "", tokenizer.eos_token or "",
                               add_generation_prompt)
    encoding = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    mask = [0] * len(ids)
    spans = rendered.assistant_spans
    s = 0
    for t, (start, end) in enumerate(encoding["offset_mapping"]):
        while s < len(spans) and start >= spans[s][1]:
            s += 1
        if s < len(spans) and spans[s][0] <= start < spans[s][1]:
            mask[t] = 1
    if template != CHECKPOINT and adds_bos(tokenizer) and ids[:1] != [tokenizer.bos_token_id]:
        ids.insert(0, tokenizer.bos_token_id)
        mask.insert(0, 0)
    return ids, mask


def prompt_ids(messages: Sequence[dict], tokenizer, template: str = "zephyr") -> list[int]:
    """Ids of a conversation ready for the assistant's next reply (generation prompt appended)."""
    ids, _ = render_ids(messages, tokenizer, template, add_generation_prompt=True)
    return ids


def set_chat_template(tokenizer, template: str) -> None:
    """Install the Jinja template on a tokenizer so that saved checkpoints and servers render the same text
    (`checkpoint` keeps the tokenizer's own)."""
    if template != CHECKPOINT:
        tokenizer.chat_template = JINJA[template]
