"""What every engine provides, and what the server does the same way for all of them.

An engine turns a conversation or a text into prompt ids (rendered with zephyr's chat template, so the text
the model sees is exactly `chat_template.render_text`'s, or with the checkpoint's own template exactly as
training renders it) and streams sampled tokens as text.
Stop strings, token limits and context checks live here, once, so that every engine answers alike.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator, Sequence

from ..chat_template import (CHECKPOINT, ConversationError, encode_rendered, end_of_turn, prompt_ids, render_text,
                             render_with_tokenizer, validate)
from ..sampling import Sampling
from .protocol import ApiError


@dataclass
class Prompt:
    ids: list[int]
    text: str  # exactly the text that was tokenized into `ids`


@dataclass
class Step:
    """A piece of the reply. `tokens` counts generated tokens so far; the last step has a finish_reason."""

    text: str
    tokens: int
    finish_reason: str | None = None  # "stop" (end of turn or stop string) or "length"
    # when asked for: OpenAI's `logprobs.content` entries of the tokens this step brings
    logprobs: list[dict] | None = None


class Engine(abc.ABC):
    name: str = "?"
    model_id: str
    context_length: int
    template: str  # zephyr, chatml or checkpoint (the tokenizer's own; engines holding a transformers tokenizer)
    supports_logprobs: bool = False  # whether `stream` can return log-probabilities (`top_logprobs` not None)

    @property
    @abc.abstractmethod
    def special_tokens(self) -> tuple[str, str]:
        """(bos, eos) strings the chat template writes."""

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """The engine tokenizer's ids for `text`, special tokens parsed, BOS added when the model expects one."""

    @abc.abstractmethod
    def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int],
               top_logprobs: int | None = None, grammar: object | None = None) -> AsyncIterator[Step]:
        """Sample up to sampling.max_new_tokens tokens; end early on any of `stop_ids` (not shown in the text).
        With `top_logprobs` k (engines that support it), each step carries its tokens' log-probabilities and
        the k most likely alternatives. `grammar` (from `self.grammar`) constrains the reply."""

    def grammar(self, text: str) -> object:
        """A request's GBNF grammar made ready for `stream`, or an ApiError (400) when it cannot be used."""
        raise ApiError(400, f"grammar: the {self.name} engine does not constrain replies to a grammar; serve a "
                            "GGUF file with --engine llama.cpp", param="grammar")

    @abc.abstractmethod
    def token_id(self, text: str) -> int | None:
        """The id of a special token given as text, or None when the vocabulary lacks it."""

    def close(self) -> None:
        pass

    def chat_prompt(self, messages: list[dict[str, str]]) -> Prompt:
        try:
            validate(messages)
        except ConversationError as err:
            raise ApiError(400, str(err), param="messages") from err
        if messages[-1]["role"] != "user":
            raise ApiError(400, "the last message must be the user's (the assistant replies to it)", param="messages")
        return self.render_prompt(messages)

    def render_prompt(self, messages: list[dict[str, str]]) -> Prompt:
        """A valid conversation rendered with the engine's template, ready for the assistant's reply."""
        bos, eos = self.special_tokens
        text = render_text(messages, self.template, bos, eos, add_generation_prompt=True).text
        return Prompt(self.tokenize(text), text)

    def text_prompt(self, text: str) -> Prompt:
        return Prompt(self.tokenize(text), text)

    def chat_stop_ids(self) -> list[int]:
        """Token ids that end an assistant turn: the template's end-of-turn marker and the model's EOS."""
        bos, eos = self.special_tokens
        ids = {self.token_id(end_of_turn(self.template, eos)), self.token_id(eos)}
        return sorted(i for i in ids if i is not None)

    def text_stop_ids(self) -> list[int]:
        """Token ids that end a plain text completion: the model's EOS."""
        eos = self.token_id(self.special_tokens[1])
        return [] if eos is None else [eos]


def check_limits(prompt_tokens: int, requested: int | None, context_length: int, max_tokens_limit: int,
                 param: str = "max_tokens") -> int:
    """The number of tokens to generate, or a 400 that says which limit the request breaks."""
    if prompt_tokens >= context_length:
        raise ApiError(400, f"This model's maximum context length is {context_length} tokens, but the prompt has "
                            f"{prompt_tokens} tokens. Shorten the prompt.", param="messages",
                       code="context_length_exceeded")
    room = context_length - prompt_tokens
    if requested is None:
        return min(max_tokens_limit, room)
    if requested > max_tokens_limit:
        raise ApiError(400, f"max_tokens is {requested}, over this server's limit of {max_tokens_limit}",
                       param=param, code="max_tokens_exceeded")
    if requested > room:
        raise ApiError(400, f"This model's maximum context length is {context_length} tokens. However, you requested "
                            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} in the "
                            f"completion). Reduce the prompt or max_tokens.", param=param,
                       code="context_length_exceeded")
    return requested


class HFTokenizerEngine(Engine):
    """Tokenizer methods of an engine that holds a transformers tokenizer (`self.tokenizer`)."""

    tokenizer = None

    @property
    def special_tokens(self) -> tuple[str, str]:
        return self.tokenizer.bos_token or "", self.tokenizer.eos_token or ""

    def tokenize(self, text: str) -> list[int]:
        return encode_rendered(text, self.tokenizer)  # the same ids as chat_template.render_ids

    def render_prompt(self, messages: list[dict[str, str]]) -> Prompt:
        if self.template != CHECKPOINT:
            return super().render_prompt(messages)
        # the checkpoint's own template (Llama-2 [INST], ...): the tokenizer renders it, as in training
        text = render_with_tokenizer(messages, self.tokenizer, add_generation_prompt=True).text
        return Prompt(prompt_ids(messages, self.tokenizer, CHECKPOINT), text)

    def token_id(self, text: str) -> int | None:
        if not text:
            return None
        token = self.tokenizer.convert_tokens_to_ids(text)
        return None if token is None or token == self.tokenizer.unk_token_id else int(token)


class StopScanner:
    """Cuts the reply at the first stop string, holding back text that might be the start of one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """-> (text safe to emit now, whether a stop string was reached)."""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            at = min(i for i, _ in hits)
            out, self.pending = self.pending[:at], ""
            return out, True
        hold = 0
        for stop in self.stops:  # the longest tail of pending that begins some stop string
            for k in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


async def generate(engine: Engine, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int],
                   stops: Sequence[str] = (), top_logprobs: int | None = None,
                   grammar: object | None = None) -> AsyncIterator[Step]:
    """The engine's stream with the stop strings `stops` applied; the last step carries the finish reason."""
    scanner = StopScanner(stops)
    tokens, finish = 0, "length"
    pending: list[dict] | None = [] if top_logprobs is not None else None  # log-probabilities not yet sent

    def step(text: str, finish_reason: str | None = None) -> Step:
        nonlocal pending
        sent, pending = pending, ([] if pending is not None else None)
        return Step(text, tokens, finish_reason, sent)

    options = {k: v for k, v in (("top_logprobs", top_logprobs), ("grammar", grammar)) if v is not None}
    source = engine.stream(prompt, sampling, stop_ids, **options)
    try:
        async for piece in source:
            tokens = piece.tokens
            if pending is not None:
                pending += piece.logprobs or []
            text, stopped = scanner.feed(piece.text)
            if stopped:
                yield step(text, "stop")
                return
            if piece.finish_reason:
                finish = piece.finish_reason
                text += scanner.flush()
                yield step(text, finish)
                return
            if text:
                yield step(text)
    finally:
        await source.aclose()  # cancels the engine's request when the client left or a stop string hit
    yield step(scanner.flush(), finish)
