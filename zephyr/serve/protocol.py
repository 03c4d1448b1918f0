"""The OpenAI wire format: request bodies validated into dataclasses that also know their reply's shape,
errors as OpenAI-style JSON.

Every user mistake becomes an `ApiError` with a 4xx status and the body OpenAI's clients expect,
`{"error": {"message", "type", "param", "code"}}`, so the official `openai` client raises its typed
exceptions (BadRequestError, NotFoundError, AuthenticationError) instead of a 500 or a hang.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..sampling import Sampling

MAX_STOP_SEQUENCES = 4  # OpenAI's limit
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
MAX_GRAMMAR_CHARS = 65536
INT32, SEED_END = 2**31 - 1, 2**63 - 1  # bounds of the integer fields (a seed is a signed 64-bit number)


def _number(low=None, high=None, default=None, **bounds):
    """A JSON number field: booleans and numeric strings are refused, and every number is bounded."""
    return Field(default, strict=True, **({"ge": low} if low is not None else {}),
                 **({"le": high} if high is not None else {}), **bounds)


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    # unknown OpenAI fields (presence_penalty, logit_bias, user, ...) are accepted and ignored, as vLLM does
    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float | None = _number(0.0, 2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0, strict=True)
    top_k: int | None = _number(-1, INT32)  # an extension (vLLM, llama.cpp): -1 or 0 = off
    stop: str | list[str] | None = None
    stream: bool = Field(False, strict=True)
    stream_options: dict[str, Any] | None = None
    n: int = _number(1, 1, default=1)
    seed: int | None = _number(0, SEED_END)
    # an extension (llama.cpp's server): a GBNF grammar the reply must follow; the llama.cpp engine only
    grammar: str | None = Field(None, min_length=1, max_length=MAX_GRAMMAR_CHARS, strict=True)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences may not be empty")
        return stops


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class _ChatBody(_Request):
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = _number(1, INT32)
    max_completion_tokens: int | None = _number(1, INT32)
    logprobs: bool = Field(False, strict=True)
    top_logprobs: int | None = _number(0, MAX_TOP_LOGPROBS)


class _CompletionBody(_Request):
    prompt: str | list[str]
    max_tokens: int | None = _number(1, INT32, default=16)  # OpenAI's default for /v1/completions
    echo: bool = Field(False, strict=True)
    logprobs: int | None = None  # refused in parse_completion: only chat completions return log-probabilities

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value):
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("exactly one prompt per request is supported (n=1, no batches)")
            value = value[0]
        if not value:
            raise ValueError("the prompt is empty")
        return value


@dataclass
class GenerationRequest:
    """What both routes ask for. `sampling.max_new_tokens` is set by the route once the prompt's length is known."""

    model: str
    sampling: Sampling
    max_tokens: int | None  # as asked; None: as many as the context and the server's limit allow
    stop: list[str]
    stream: bool
    include_usage: bool
    # None: no log-probabilities; k: the chosen token's and its k most likely alternatives
    top_logprobs: int | None = dataclasses.field(default=None, kw_only=True)
    grammar: str | None = dataclasses.field(default=None, kw_only=True)  # GBNF the reply must follow


@dataclass
class ChatRequest(GenerationRequest):
    """/v1/chat/completions: a conversation in, an assistant message out (streamed as deltas)."""

    messages: list[dict[str, str]]

    id_prefix: ClassVar[str] = "chatcmpl-"
    object: ClassVar[str] = "chat.completion"
    chunk_object: ClassVar[str] = "chat.completion.chunk"

    def opening(self) -> dict[str, Any] | None:
        return {"delta": {"role": "assistant", "content": ""}}

    def piece(self, text: str) -> dict[str, Any]:
        return {"delta": {"content": text}}

    def closing(self) -> dict[str, Any]:
        return {"delta": {}}

    def whole(self, text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}


@dataclass
class CompletionRequest(GenerationRequest):
    """/v1/completions: a text in, its continuation out (after the prompt itself when `echo`)."""

    prompt: str
    echo: bool

    id_prefix: ClassVar[str] = "cmpl-"
    object: ClassVar[str] = "text_completion"
    chunk_object: ClassVar[str] = "text_completion"

    def opening(self) -> dict[str, Any] | None:
        return {"text": self.prompt} if self.echo else None

    def piece(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def closing(self) -> dict[str, Any]:
        return {"text": ""}

    def whole(self, text: str) -> dict[str, Any]:
        return {"text": (self.prompt if self.echo else "") + text}


def decode_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from err
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    try:  # JSON's \ud800 escapes decode to lone surrogates, which no tokenizer (and no UTF-8) can encode
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        bad = err.object[err.start:err.end]
        raise ApiError(400, f"the request holds a lone UTF-16 surrogate ({ascii(bad)}), which is not text: escape "
                            "characters outside the Basic Multilingual Plane as surrogate pairs", code="invalid_json")
    return body


def _validated(cls: type[BaseModel], body: dict[str, Any]):
    try:
        return cls.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"{param}: {message}" if param else message, param=param) from err


def _common(body: _Request, max_tokens: int | None, defaults: Sampling) -> dict[str, Any]:
    """The GenerationRequest fields, with the server's defaults where the body leaves sampling out."""
    sampling = dataclasses.replace(
        defaults, temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        top_k=defaults.top_k if body.top_k is None else max(body.top_k, 0), seed=body.seed)
    include_usage = bool(body.stream and body.stream_options and body.stream_options.get("include_usage"))
    return dict(model=body.model, sampling=sampling, max_tokens=max_tokens, stop=list(body.stop or []),
                stream=body.stream, include_usage=include_usage, grammar=body.grammar)


def parse_chat(body: dict[str, Any], defaults: Sampling) -> ChatRequest:
    chat = _validated(_ChatBody, body)
    try:
        messages = [{"role": m.role, "content": m.text()} for m in chat.messages]
    except ValueError as err:
        raise ApiError(400, str(err), param="messages") from err
    if chat.top_logprobs is not None and not chat.logprobs:
        raise ApiError(400, "top_logprobs: needs logprobs: true", param="top_logprobs")
    top_logprobs = (chat.top_logprobs or 0) if chat.logprobs else None
    return ChatRequest(**_common(chat, chat.max_completion_tokens or chat.max_tokens, defaults), messages=messages,
                       top_logprobs=top_logprobs)


def parse_completion(body: dict[str, Any], defaults: Sampling) -> CompletionRequest:
    completion = _validated(_CompletionBody, body)
    if completion.logprobs is not None:
        raise ApiError(400, "logprobs: not supported on /v1/completions; /v1/chat/completions returns them",
                       param="logprobs")
    return CompletionRequest(**_common(completion, completion.max_tokens, defaults), prompt=completion.prompt,
                             echo=completion.echo)
