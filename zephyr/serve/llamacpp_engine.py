"""llama.cpp (llama-cpp-python's `Llama`) for GGUF files, behind zephyr's own OpenAI routes.

One `Llama` holds one KV cache, so requests run one at a time on a single worker thread, in arrival order
(llama-cpp-python's own server does the same); consecutive requests that share a prompt prefix reuse its
cache. The prompt is rendered by zephyr's template and tokenized by llama.cpp with special tokens parsed,
exactly as `transformers` tokenizes it. A request's `seed` makes its sampling reproducible.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator, Sequence

from ..chat_template import JINJA
from .engine import Engine, IncrementalText, Prompt, Step
from .protocol import ApiError, Sampling


def template_in(metadata: dict[str, str], requested: str) -> str:
    """The requested template, or the one stored in the GGUF when it is one of zephyr's, else zephyr."""
    if requested != "auto":
        return requested
    stored = metadata.get("tokenizer.chat_template")
    return next((name for name, jinja in JINJA.items() if jinja == stored), "zephyr")


class LlamaCppEngine(Engine):
    name = "llama.cpp"

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", context_length: int = 0,
                 threads: int = 0):
        super().__init__()
        from llama_cpp import Llama

        path = Path(model)
        if path.suffix != ".gguf" or not path.is_file():
            raise ApiError(500, f"llama.cpp serves .gguf files; {model} is not one")
        probe = Llama(model_path=str(path), vocab_only=True, verbose=False)  # metadata only, no weights
        self.metadata = dict(probe.metadata)
        probe.close()
        architecture = self.metadata.get("general.architecture", "")
        trained = int(self.metadata.get(f"{architecture}.context_length", 0)) or 2048
        self.context_length = min(context_length or trained, trained)
        self.llm = Llama(model_path=str(path), n_ctx=self.context_length, n_threads=threads or None,
                         n_batch=min(512, self.context_length), verbose=False)
        self.model_id = model_id
        self.template = template_in(self.metadata, chat_template)
        self.add_bos = self.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama.cpp")

    @property
    def special_tokens(self) -> tuple[str, str]:
        def text(token: int) -> str:
            return self.llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

        return text(self.llm.token_bos()), text(self.llm.token_eos())

    def tokenize(self, text: str) -> list[int]:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self.llm.token_bos()
        if self.add_bos and bos >= 0 and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def token_id(self, text: str) -> int | None:
        if not text:
            return None
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    async def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int]) -> AsyncIterator[Step]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()
        stops = set(stop_ids)

        def emit(kind: str, value=None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        def work() -> None:
            try:
                if cancelled.is_set():  # the client left while queued
                    return
                if sampling.seed is not None:
                    self.llm.set_seed(sampling.seed)
                count = 0
                for token in self.llm.generate(prompt.ids, temp=sampling.temperature, top_k=sampling.top_k,
                                               top_p=sampling.top_p, min_p=0.0, repeat_penalty=1.0, reset=True):
                    if cancelled.is_set():
                        return
                    count += 1
                    emit("token", token)
                    if token in stops or count >= sampling.max_tokens:
                        return
            except Exception as err:  # reported to the client, never a hung connection
                emit("error", err)
            finally:
                emit("end")

        self.worker.submit(work)
        text = IncrementalText(lambda ids: self.llm.detokenize(ids))
        count, last = 0, None
        try:
            while True:
                kind, value = await events.get()
                if kind == "error":
                    raise ApiError(500, f"llama.cpp failed: {value}", type="server_error")
                if kind == "end":
                    reason = "stop" if last in stops else "length"
                    yield Step(text.finish(), count, reason)
                    return
                count, last = count + 1, value
                if value not in stops:
                    piece = text.add([value])
                    if piece:
                        yield Step(piece, count)
        finally:
            cancelled.set()

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)
        self.llm.close()
