"""A live `zephyr serve` app on 127.0.0.1 (random free port) in a background thread, for the openai client."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("uvicorn", reason="zephyr[serve] is not installed (uvicorn)")
pytest.importorskip("starlette", reason="zephyr[serve] is not installed (starlette)")


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


@pytest.fixture(scope="module")
def transformers_server(tiny_model_dir):
    """(base_url, engine) for the fallback engine on a tiny Mistral, with an API key."""
    from zephyr.serve.app import build_app
    from zephyr.serve.protocol import Sampling
    from zephyr.serve.transformers_engine import TransformersEngine

    model = tiny_model_dir("mistral")
    engine = TransformersEngine(str(model), "tiny", chat_template="zephyr", context_length=256,
                                kv_cache_tokens=4096, max_num_seqs=16)
    app = build_app(engine, Sampling(None, 0.7, 0.95, 50), max_tokens_limit=64, api_key="sk-test")
    with running(app) as url:
        yield url, engine
    engine.close()
