"""Load test: N concurrent chat clients (1, 4, 16) against `zephyr serve` for each engine, on this machine.

    python benchmarks/serve_load.py [--engines transformers,llama.cpp] [--clients 1,4,16] [--max_tokens 64]

Each engine serves the embedded google/gemma-3-270m (llama.cpp: the Q4_K_M GGUF it ships as; transformers:
the float32 safetensors conversion) in its own `zephyr serve` process on 127.0.0.1. Every client streams
chat completions (the cards' sampling defaults) and records time to first token and total latency; output
tokens come from the server's usage counts. Traffic goes to loopback only, and every loop is bounded.
Writes benchmarks/results/serve_load.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = ["Explain why the sky is blue in a few sentences.", "Write a short poem about the sea.",
           "Give three tips for learning a new language.", "What is the difference between a virus and a bacterium?",
           "Describe how to make a cup of tea.", "Summarise the water cycle.", "Why do cats purr?",
           "List some uses of a paperclip."]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_for(engine: str) -> str:
    if engine == "llama.cpp":
        from zephyr.embedded import gguf_path

        return str(gguf_path())
    return "embedded"


def start_server(engine: str, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "zephyr", "serve", model_for(engine), "--engine", engine, "--port", str(port),
               "--served_model_name", "bench", "--context_length", "2048"]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    import urllib.request

    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{engine} server exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(1)
    process.terminate()
    raise RuntimeError(f"{engine} server did not come up in 10 minutes; see {log}")


def one_request(client, prompt: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    first = None
    usage = None
    stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            usage = chunk.usage
    total = time.perf_counter() - started
    return {"ttft": first if first is not None else total, "latency": total,
            "tokens": usage.completion_tokens if usage else 0}


def load(url: str, clients: int, requests_per_client: int, max_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    one_request(client, PROMPTS[0], 8)  # warm-up: first-call allocations are not part of the figure

    def worker(index: int) -> list[dict]:
        return [one_request(client, PROMPTS[(index + r) % len(PROMPTS)], max_tokens)
                for r in range(requests_per_client)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(worker, range(clients)) for r in batch]
    wall = time.perf_counter() - started
    latencies = sorted(r["latency"] for r in results)
    ttfts = sorted(r["ttft"] for r in results)
    tokens = sum(r["tokens"] for r in results)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    return {"clients": clients, "requests": len(results), "output_tokens": tokens, "wall_s": wall,
            "tokens_per_s": tokens / wall, "ttft_p50_s": statistics.median(ttfts), "ttft_p95_s": pct(ttfts, 0.95),
            "latency_p50_s": statistics.median(latencies), "latency_p95_s": pct(latencies, 0.95)}


def table(rows: list[dict]) -> str:
    lines = ["| Engine | Clients | Requests | Output tok/s | × 1 client | TTFT p50 (s) | TTFT p95 (s) | "
             "Latency p50 (s) | Latency p95 (s) |", "|---|---|---|---|---|---|---|---|---|"]
    single = {r["engine"]: r["tokens_per_s"] for r in rows if r["clients"] == 1}
    for r in rows:
        speedup = r["tokens_per_s"] / single[r["engine"]] if single.get(r["engine"]) else float("nan")
        lines.append(f"| {r['engine']} | {r['clients']} | {r['requests']} | {r['tokens_per_s']:.1f} | "
                     f"{speedup:.2f} | {r['ttft_p50_s']:.2f} | {r['ttft_p95_s']:.2f} | {r['latency_p50_s']:.2f} | "
                     f"{r['latency_p95_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="transformers,llama.cpp")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--requests_per_client", type=int, default=2)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[1]  # other work on a shared machine skews every figure: recorded with them
    rows = []
    for engine in args.engines.split(","):
        port = free_port()
        server = start_server(engine, port, RESULTS / f"serve_{engine}.log")
        try:
            for clients in [int(c) for c in args.clients.split(",")]:
                row = {"engine": engine, **load(f"http://127.0.0.1:{port}", clients, args.requests_per_client,
                                                 args.max_tokens)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            server.terminate()
            server.wait(timeout=60)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "model": "google/gemma-3-270m (embedded)",
            "max_tokens": args.max_tokens, "requests_per_client": args.requests_per_client,
            "sampling": "temperature 0.7, top_k 50, top_p 0.95", "date": time.strftime("%Y-%m-%d"),
            "load_average_5min": [round(load_before, 2), round(os.getloadavg()[1], 2)]}
    (RESULTS / "serve_load.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    text = table(rows)
    (RESULTS / "serve_load.md").write_text(f"# zephyr serve load test\n\n{json.dumps(meta)}\n\n{text}\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
