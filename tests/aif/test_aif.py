"""AI feedback: the rubric parser, the HTTP judge protocol, and prompts -> completions -> ratings -> pairs."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zephyr.aif.cli import AIFConfig, run
from zephyr.judge import HTTPJudge, JudgeError
from zephyr.aif.rubric import judge_prompt, parse_ratings
from zephyr.errors import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("Instruction following: 4\nHonesty: 5\nTruthfulness: 3\nHelpfulness: 2", ("4", "5", "3", "2")),
    ("**Instruction Following**: 5\n**Honesty**: N/A\nTruthfulness = 1\nHelpfulness - 4", ("5", "N/A", "1", "4")),
    ("instruction_following: 3, honesty: 3. Helpfulness: 5", ("3", "3", "N/A", "5")),
    ("I think it is good. 10/10", ("N/A", "N/A", "N/A", "N/A")),
    ("Honesty: 2\nHonesty: 5\nHelpfulness: 7", ("N/A", "2", "N/A", "N/A")),  # first counts; 7 is off the scale
])
def test_parse_ratings(text, expected):
    ratings = parse_ratings(text)
    assert tuple(ratings[a] for a in ("instruction_following", "honesty", "truthfulness", "helpfulness")) == expected


def test_judge_prompt_holds_instruction_and_reply():
    prompt = judge_prompt("  Name a prime.  ", "Seven.")
    assert "### Instruction\nName a prime.\n" in prompt and "### Reply\nSeven.\n" in prompt
    for aspect in ("Instruction following:", "Honesty:", "Truthfulness:", "Helpfulness:"):
        assert aspect in prompt


class FakeJudge(BaseHTTPRequestHandler):
    """Rates a reply by its length (score = len % 5 + 1), after failing `fail_first` times with 503."""

    requests: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append((dict(self.headers), body))
        if FakeJudge.fail_first > 0:
            FakeJudge.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        if body.get("model") == "bad":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "unknown model"}}')
            return
        reply = re.search(r"### Reply\n(.*)\n\nAnswer with", body["messages"][0]["content"], re.S).group(1)
        score = len(reply) % 5 + 1
        text = "\n".join(f"{a}: {score}" for a in ("Instruction following", "Honesty", "Truthfulness",
                                                     "Helpfulness"))
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    FakeJudge.requests, FakeJudge.fail_first = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_http_judge_protocol_retry_and_errors(judge_url, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    monkeypatch.setattr("zephyr.judge.time.sleep", lambda s: None)
    FakeJudge.fail_first = 2
    judge = HTTPJudge(judge_url, "gpt-4-0613", api_key_env="JUDGE_KEY")
    (text,) = judge.complete([judge_prompt("Say hi", "hi!")])
    assert parse_ratings(text)["helpfulness"] == str(len("hi!") % 5 + 1)
    assert len(FakeJudge.requests) == 3  # two 503s retried
    headers, body = FakeJudge.requests[-1]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["temperature"] == 0 and body["model"] == "gpt-4-0613"
    with pytest.raises(JudgeError, match="HTTP 400"):
        HTTPJudge(judge_url, "bad").complete(["x"])
    with pytest.raises(JudgeError, match="unreachable"):
        HTTPJudge("http://127.0.0.1:9/v1", "m", retries=0, timeout=2).complete(["x"])


def test_aif_end_to_end_and_resume(judge_url, tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about topic {i}."}) + "\n" for i in range(4)))
    # two different models: a tiny llama and a tiny mistral of the same size give the same replies (all ties)
    models = [str(tiny_model_dir("llama")), str(tiny_model_dir("mistral", layers=1))]
    config = AIFConfig(prompts=str(prompts), models=models,
                       judge_url=judge_url, judge_model="judge", output_dir=str(tmp_path / "aif"),
                       max_new_tokens=8, batch_size=2)
    report = run(config)
    rated = [json.loads(line) for line in (tmp_path / "aif" / "rated.jsonl").read_text().splitlines()]
    assert len(rated) == 4 and all(len(row["completions"]) == 2 for row in rated)
    pairs = [json.loads(line) for line in (tmp_path / "aif" / "pairs.jsonl").read_text().splitlines()]
    expected = 0
    for row in rated:
        scores = [len(c["response"]) % 5 + 1 for c in row["completions"]]
        if len(set(scores)) == 2 and all(c["response"].strip() for c in row["completions"]):
            expected += 1
            pair = next(p for p in pairs if p["prompt"][0]["content"] == row["instruction"])
            best = max(row["completions"], key=lambda c: len(c["response"]) % 5)
            assert pair["chosen"] == best["response"] and pair["score_chosen"] > pair["score_rejected"]
    assert report["aif_pairs_written"] == len(pairs) == expected
    assert expected >= 1  # at least one real pair was checked above, not only ties
    assert report["aif_prompts"] == 4
    calls = len(FakeJudge.requests)
    assert run(config)["aif_pairs_written"] == len(pairs)  # resumed: nothing re-generated or re-judged
    assert len(FakeJudge.requests) == calls


def test_aif_config_errors(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    with pytest.raises(ConfigError, match="at least two answering models"):
        run(AIFConfig(prompts=str(prompts), models=["a"], judge="j"))
    with pytest.raises(ConfigError, match="exactly one of --judge"):
        run(AIFConfig(prompts=str(prompts), models=["a", "b"]))
