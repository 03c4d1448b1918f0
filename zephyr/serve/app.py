"""The HTTP routes: OpenAI's /v1/chat/completions, /v1/completions, /v1/models, plus /health.

Starlette + uvicorn, nothing more: the engine does the work. Every failure is JSON in OpenAI's shape;
a user's mistake is a 4xx, and an error after a stream has started is sent as a final SSE event so the
client is never left hanging.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import time
import uuid
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ..sampling import Sampling
from .engine import Engine, Prompt, Step, check_limits, generate
from .protocol import ApiError, GenerationRequest, decode_json, parse_chat, parse_completion

MAX_BODY_BYTES = 8 << 20


def _error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def build_app(engine: Engine, defaults: Sampling, max_tokens_limit: int, api_key: str | None = None) -> Starlette:
    served = {engine.model_id}
    created = int(time.time())

    def authorize(request: Request) -> None:
        if not api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'.",
                           code="invalid_api_key")

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES >> 20} MiB")
        return decode_json(raw)

    def check_model(name: str) -> None:
        if name not in served:
            raise ApiError(404, f"The model '{name}' does not exist on this server; it serves: {', '.join(served)}.",
                           param="model", code="model_not_found")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "engine": engine.name, "model": engine.model_id})

    async def models(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse({"object": "list", "data": [
            {"id": engine.model_id, "object": "model", "created": created, "owned_by": "zephyr",
             "max_model_len": engine.context_length, "engine": engine.name}]})

    async def parsed(request: Request, parse):
        authorize(request)
        call = parse(await body_of(request), defaults)
        check_model(call.model)
        return call

    # tokenizing runs in a worker thread: a multi-megabyte prompt must not stall the event loop (and /health)
    async def chat_completions(request: Request):
        chat = await parsed(request, parse_chat)
        if chat.top_logprobs is not None and not engine.supports_logprobs:
            raise ApiError(400, f"logprobs: the {engine.name} engine of this server does not return "
                                "log-probabilities; serve the model with --engine transformers", param="logprobs")
        return await reply(chat, await run_in_threadpool(engine.chat_prompt, chat.messages), engine.chat_stop_ids())

    async def completions(request: Request):
        completion = await parsed(request, parse_completion)
        return await reply(completion, await run_in_threadpool(engine.text_prompt, completion.prompt),
                           engine.text_stop_ids())

    async def reply(call: GenerationRequest, prompt: Prompt, stop_ids: list[int]):
        max_new_tokens = check_limits(len(prompt.ids), call.max_tokens, engine.context_length, max_tokens_limit)
        sampling = dataclasses.replace(call.sampling, max_new_tokens=max_new_tokens)
        grammar = engine.grammar(call.grammar) if call.grammar is not None else None
        steps = generate(engine, prompt, sampling, stop_ids, call.stop, call.top_logprobs, grammar)
        head = {"id": f"{call.id_prefix}{uuid.uuid4().hex}", "object": call.chunk_object, "created": int(time.time()),
                "model": engine.model_id}
        if call.stream:
            return _stream(steps, call, head, len(prompt.ids))
        text, step, logprobs = await _collect(steps)
        choice = _choice(call.whole(text), step.finish_reason, logprobs)
        return JSONResponse({**head, "object": call.object, "choices": [choice],
                             "usage": _usage(len(prompt.ids), step.tokens)})

    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err)

    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        kind = "not_found" if err.status_code == 404 else "invalid_request_error"
        message = {404: f"no route {request.url.path}; see /v1/models, /v1/chat/completions, /v1/completions",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(err.status_code, str(err.detail))
        return _error(ApiError(err.status_code, message, type=kind))

    async def server_error(request: Request, err: Exception) -> JSONResponse:
        return _error(ApiError(500, f"internal error: {type(err).__name__}: {err}", type="server_error"))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                       Exception: server_error})
    app.state.engine = engine
    return app


async def _collect(steps: AsyncIterator[Step]) -> tuple[str, Step, list[dict] | None]:
    parts, last, logprobs = [], Step("", 0, "length"), None
    async for step in steps:
        parts.append(step.text)
        if step.logprobs is not None:
            logprobs = (logprobs or []) + step.logprobs
        last = step
        if step.finish_reason:
            break
    return "".join(parts), last, logprobs


def _choice(content: dict[str, Any], finish: str | None, logprobs: list[dict] | None = None) -> dict[str, Any]:
    return {"index": 0, **content, "logprobs": None if logprobs is None else {"content": logprobs},
            "finish_reason": finish}


def _stream(steps: AsyncIterator[Step], call: GenerationRequest, head: dict, prompt_tokens: int) -> StreamingResponse:
    def chunk(content: dict[str, Any], finish: str | None = None, logprobs: list[dict] | None = None) -> bytes:
        return _sse({**head, "choices": [_choice(content, finish, logprobs)]})

    async def events() -> AsyncIterator[bytes]:
        tokens = 0
        try:
            if call.opening() is not None:
                yield chunk(call.opening())
            async for step in steps:
                tokens = step.tokens
                if step.text or step.logprobs:
                    yield chunk(call.piece(step.text), logprobs=step.logprobs)
                if step.finish_reason:
                    yield chunk(call.closing(), step.finish_reason)
                    break
            if call.include_usage:
                yield _sse({**head, "choices": [], "usage": _usage(prompt_tokens, tokens)})
            yield b"data: [DONE]\n\n"
        except Exception as err:  # the status line is already sent: report in-band, then end the stream
            failure = err if isinstance(err, ApiError) else ApiError(500, f"generation failed: {err}",
                                                                     type="server_error")
            yield _sse(failure.body())
            yield b"data: [DONE]\n\n"
        finally:
            await steps.aclose()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
