"""Live `zephyr serve` apps on 127.0.0.1 (random free port) in a background thread, one per engine.

Each engine serves a tiny model with an API key, a 256-token context and a 64-token max_tokens limit; the
fixture also hands the tests the model's Hugging Face tokenizer and an oracle for greedy replies computed
outside the server (transformers' `generate`, or llama.cpp's own `create_completion`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
import time
from contextlib import contextmanager
from typing import Callable

import pytest

pytest.importorskip("uvicorn", reason="zephyr[serve] is not installed (uvicorn)")
pytest.importorskip("starlette", reason="zephyr[serve] is not installed (starlette)")

CONTEXT, LIMIT, KEY = 256, 64, "sk-test"


@dataclasses.dataclass
class Served:
    url: str
    engine: object
    tokenizer: object  # the model's Hugging Face tokenizer, for checks outside the engine
    oracle: Callable[[list[int], int], str]  # greedy reply to prompt ids, computed without the server


@contextmanager
def running(app):
    """Serve `app` with uvicorn on a free port; yield its base URL; shut it down after."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(engine, tokenizer, oracle):
    from zephyr.sampling import Sampling
    from zephyr.serve.app import build_app

    app = build_app(engine, Sampling(temperature=0.7, top_k=50, top_p=0.95), max_tokens_limit=LIMIT, api_key=KEY)
    with running(app) as url:
        yield Served(url, engine, tokenizer, oracle)
    engine.close()


def transformers_served(tiny_model_dir):
    import torch

    from zephyr.serve.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_model_dir("mistral")), "tiny", chat_template="zephyr",
                                context_length=CONTEXT, kv_cache_tokens=4096, max_num_seqs=16)

    def oracle(ids: list[int], max_tokens: int) -> str:
        stops = engine.chat_stop_ids()
        out = engine.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=max_tokens,
                                    eos_token_id=stops, pad_token_id=engine.tokenizer.pad_token_id)
        return engine.tokenizer.decode([t for t in out[0, len(ids):].tolist() if t not in stops])

    yield from serve(engine, engine.tokenizer, oracle)


def llama_cpp_served(tmp_path_factory):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab
    from zephyr.quantize.gguf import write_gguf
    from zephyr.serve.llamacpp_engine import LlamaCppEngine

    # peaked logits: llama.cpp's batched kernels round differently from its one-sequence ones, which flips
    # the near-ties of a flat random model; replies must not depend on what else shares the batch
    folder = tiny_gemma3_real_vocab(tmp_path_factory.getbasetemp() / "tiny-gemma3-real-peaked", embedding_scale=4.0)
    path, _ = write_gguf(folder, tmp_path_factory.mktemp("gguf"), "f16", "zephyr")
    engine = LlamaCppEngine(str(path), "tiny", chat_template="auto", context_length=CONTEXT)
    reference = Llama(model_path=str(path), n_ctx=CONTEXT, verbose=False)

    def oracle(ids: list[int], max_tokens: int) -> str:
        stops = set(engine.chat_stop_ids())
        out = []
        for token in reference.generate(ids, temp=0.0, reset=True):
            if token in stops or len(out) == max_tokens:
                break
            out.append(token)
        return reference.detokenize(out).decode("utf-8", "replace")

    yield from serve(engine, AutoTokenizer.from_pretrained(folder), oracle)
    reference.close()


def vllm_served(tiny_model_dir):
    import json
    import urllib.request

    from zephyr.serve.vllm_engine import INTERNAL_NAME, VllmEngine

    # vLLM's CPU attention kernels need head_dim >= 32: hidden 256 / 4 heads
    engine = VllmEngine(str(tiny_model_dir("mistral", hidden=256)), "tiny", chat_template="zephyr",
                        context_length=CONTEXT, max_num_seqs=16, dtype="float32")

    def oracle(ids: list[int], max_tokens: int) -> str:  # vLLM's own endpoint, zephyr's layer bypassed
        body = json.dumps({"model": INTERNAL_NAME, "prompt": ids, "max_tokens": max_tokens, "temperature": 0,
                           "stop_token_ids": engine.chat_stop_ids()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{engine.port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {engine.key}"})
        with urllib.request.urlopen(req, timeout=120) as response:
            return json.loads(response.read())["choices"][0]["text"]

    yield from serve(engine, engine.tokenizer, oracle)


# llama.cpp converts a checkpoint to GGUF and vLLM starts a server process: both take tens of seconds, so
# they are in the full run only, not the `-m "not slow"` tier
@pytest.fixture(scope="module", params=["transformers", pytest.param("llama.cpp", marks=pytest.mark.slow),
                                        pytest.param("vllm", marks=pytest.mark.slow)])
def served(request, tiny_model_dir, tmp_path_factory):
    if request.param == "vllm":
        from zephyr.cache import VLLM

        if not VLLM.ready():
            pytest.skip("vLLM's managed environment is not set up (`zephyr serve --setup vllm` creates it, 2.5 GB)")
        yield from vllm_served(tiny_model_dir)
    elif request.param == "llama.cpp":
        if importlib.util.find_spec("llama_cpp") is None:
            pytest.skip("llama-cpp-python is not installed (pip install 'zephyr[gguf]', see docs/serving.md)")
        yield from llama_cpp_served(tmp_path_factory)
    else:
        yield from transformers_served(tiny_model_dir)
