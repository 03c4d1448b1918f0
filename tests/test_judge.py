import threading
import time

import pytest

from tests.fixtures.openai_server import scripted_server
from zephyr.errors import ConfigError
from zephyr.judge import HTTPJudge, JudgeConfig, JudgeError, check_judge, endpoint


def test_replies_keep_request_order_under_concurrency():
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def respond(body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return body["messages"][-1]["content"].upper()

    with scripted_server(respond) as server:
        judge = HTTPJudge(server.url, "judge", concurrency=4)
        prompts = [f"q{i}" for i in range(12)]
        assert judge.complete(prompts, max_tokens=7) == [p.upper() for p in prompts]
    assert 1 < peak[0] <= 4
    assert all(r["body"]["max_tokens"] == 7 and r["body"]["temperature"] == 0 for r in server.requests)
    assert all("logprobs" not in r["body"] for r in server.requests)


def test_system_message_and_logprobs_pass_through():
    top = [{"m": -0.1, "M": -2.4}, {"\n": -0.01}]
    with scripted_server(lambda body: ("m", top)) as server:
        request = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                   "max_tokens": 1, "top_logprobs": 5, "top_p": 0.6, "seed": 3}
        (reply,) = HTTPJudge(server.url, "judge").chat([request])
    assert reply.text == "m" and reply.top_logprobs == top
    body = server.requests[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "S"}
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert body["top_p"] == 0.6 and body["seed"] == 3


def test_an_endpoint_without_logprobs_is_an_error_when_they_are_needed():
    with scripted_server(lambda body: "m") as server:
        with pytest.raises(JudgeError, match="no logprobs"):
            HTTPJudge(server.url, "judge").chat([{"messages": [], "top_logprobs": 2}])


def test_api_key_only_over_https_or_loopback(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000", "https://api.openai.com/v1"):
        check_judge(JudgeConfig(judge_url=url))
    with pytest.raises(ConfigError, match="clear text"):
        check_judge(JudgeConfig(judge_url="http://judge.example.com/v1"))
    check_judge(JudgeConfig(judge_url="http://judge.example.com/v1", allow_insecure_judge=True))
    with pytest.raises(ConfigError, match="not an http"):
        check_judge(JudgeConfig(judge_url="ftp://127.0.0.1/v1"))
    monkeypatch.delenv("OPENAI_API_KEY")
    check_judge(JudgeConfig(judge_url="http://judge.example.com/v1"))  # no key, nothing to leak


def test_endpoint_and_settings():
    assert endpoint("http://h:1") == endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    with pytest.raises(ConfigError, match="--judge_concurrency"):
        JudgeConfig(judge_url="http://127.0.0.1:1", judge_concurrency=0)
