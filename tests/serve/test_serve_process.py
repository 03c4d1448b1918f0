"""`zephyr serve` as a user runs it: a real process, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="zephyr[serve] is not installed (uvicorn)")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.slow  # a fresh interpreter imports torch and loads the model
def test_sigterm_stops_the_server_even_with_a_request_in_flight(tiny_model_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "zephyr", "serve", str(tiny_model_dir("mistral")), "--port",
                               str(port), "--engine", "transformers", "--chat_template", "zephyr",
                               "--served_model_name", "tiny", "--max_num_seqs", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not healthy(port):
            assert server.poll() is None, server.stderr.read().decode()
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.5)
        body = (b'{"model": "tiny", "stream": true, "max_tokens": 2000, "temperature": 1, '
                b'"messages": [{"role": "user", "content": "hi"}]}')
        opened = threading.Event()

        def slow_client():  # a streaming reply it never reads past the first bytes
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read(16)
                    opened.set()
                    time.sleep(60)
            except OSError:
                opened.set()

        threading.Thread(target=slow_client, daemon=True).start()
        assert opened.wait(60)
        started = time.time()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        assert time.time() - started < 20
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
