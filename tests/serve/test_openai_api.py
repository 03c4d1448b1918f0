"""The official `openai` client against `zephyr serve`, for each engine installed (conftest.py).

Greedy replies are checked against an oracle outside the server (transformers' `generate`, llama.cpp's own
sampler, vLLM's own endpoint) on the ids that zephyr's chat template renders. Sampling, streaming, stop strings,
concurrency and errors are then checked against those greedy replies.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai", reason="the openai client is not installed (pip install openai)")

from zephyr.chat_template import prompt_ids, render_text  # noqa: E402

from .raw_http import request  # noqa: E402

QUESTIONS = ["How do I bake bread?", "What is 17 times 23?", "Write a haiku about autumn.", "Explain gravity simply.",
             "Translate good morning into French.", "Summarise a story in two sentences.", "What is a zephyr?",
             "Name a quick brown animal.", "Why is the sky blue?", "Count to five.", "Say hello in Japanese.",
             "What does a user ask?", "How does yeast work?", "Tell me about the lazy dog.", "What is unicode?",
             "Give me a river poem."]


@pytest.fixture(scope="module")
def server(served):
    return served


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=120)


def ask(client, question, **kwargs):
    kwargs = {"max_tokens": 12, "temperature": 0, **kwargs}
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": question}], **kwargs)


def test_health_and_models(server, client):
    health = request("GET", server.url + "/health")[1]  # no key needed: load balancers probe it
    assert health == {"status": "ok", "engine": server.engine.name, "model": "tiny"}
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_greedy_chat_matches_the_oracle(server, client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTIONS[0]}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    ids = prompt_ids(messages, server.tokenizer, "zephyr")
    assert reply.choices[0].message.content == server.oracle(ids, 12)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.choices[0].finish_reason in ("stop", "length")
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_chat_template_applied_exactly(server, client, monkeypatch):
    given = []  # the prompts the engine is asked to continue
    engine_stream = server.engine.stream

    def recording_stream(prompt, *args):
        given.append(prompt)
        return engine_stream(prompt, *args)

    monkeypatch.setattr(server.engine, "stream", recording_stream)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": QUESTIONS[1]}]
    client.chat.completions.create(model="tiny", messages=messages, max_tokens=2)
    (seen,) = given
    tok = server.tokenizer
    assert seen.text == render_text(messages, "zephyr", tok.bos_token, tok.eos_token, add_generation_prompt=True).text
    assert seen.text.endswith("<|user|>\n" + QUESTIONS[1] + tok.eos_token + "\n<|assistant|>\n")
    assert seen.ids == prompt_ids(messages, tok, "zephyr")  # the engine's ids are the Hugging Face tokenizer's


def test_streaming_equals_non_streaming(client):
    whole = ask(client, QUESTIONS[2]).choices[0].message.content
    chunks = list(ask(client, QUESTIONS[2], stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_stop_sequence_cuts_the_reply(client):
    whole = ask(client, QUESTIONS[3], max_tokens=16).choices[0].message.content
    assert len(whole) > 4, "the tiny model should say something to cut"
    stop = whole[len(whole) // 2: len(whole) // 2 + 2]
    expected = whole[: whole.index(stop)]
    reply = ask(client, QUESTIONS[3], max_tokens=16, stop=[stop, "never-appears"])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, QUESTIONS[3], max_tokens=16, stop=stop,
                                                                     stream=True) if c.choices)
    assert streamed == expected


def test_sampling_defaults_and_seedless_sampling_vary(client):
    # with the card's defaults (T=0.7, top-k 50, top-p 0.95) a random tiny model gives different replies
    replies = {client.chat.completions.create(model="tiny", max_tokens=8, messages=[
        {"role": "user", "content": QUESTIONS[4]}]).choices[0].message.content for _ in range(4)}
    assert len(replies) > 1


def test_sixteen_concurrent_clients(client):
    expected = {q: ask(client, q).choices[0].message.content for q in QUESTIONS}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda q: ask(client, q).choices[0].message.content, QUESTIONS))
    # a batch changes the kernels' summation order (llama.cpp's differ between batch sizes on some CPUs), and
    # the tiny random model's logits are near ties, so a greedy reply may turn late; a reply crossed with
    # another client's, or corrupted by the batch, differs from the start
    for question, answer in zip(QUESTIONS, answers):
        agreed = len(os.path.commonprefix([answer, expected[question]]))
        assert agreed >= len(expected[question]) // 2, (question, answer, expected[question])


def test_completions_endpoint(client):
    reply = client.completions.create(model="tiny", prompt="The quick brown fox", max_tokens=5, temperature=0,
                                      stop=None)
    assert reply.object == "text_completion"
    text = reply.choices[0].text
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 5
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="The quick brown fox", max_tokens=5, temperature=0, stream=True))
    assert streamed == text


# ---- every bad request gets OpenAI-style JSON with a 4xx, and the server keeps serving ----

def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"


def test_max_tokens_over_limit_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", max_tokens=65)  # the fixture's limit is 64
    assert err.value.body["param"] == "max_tokens"


def test_prompt_over_context_is_400(server, client):
    engine = server.engine
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "bread " * 400, max_tokens=4)
    assert err.value.body["code"] == "context_length_exceeded"
    words = 1
    while len(engine.chat_prompt([{"role": "user", "content": "bread " * words}]).ids) < 230:
        words += 1
    prompt_len = len(engine.chat_prompt([{"role": "user", "content": "bread " * words}]).ids)
    assert prompt_len < engine.context_length == 256
    with pytest.raises(openai.BadRequestError) as err:  # the prompt fits, prompt + max_tokens does not
        ask(client, "bread " * words, max_tokens=256 - prompt_len + 1)
    assert err.value.body["code"] == "context_length_exceeded"
    reply = ask(client, "bread " * words, max_tokens=256 - prompt_len)  # exactly full is allowed
    assert reply.usage.prompt_tokens == prompt_len


@pytest.mark.parametrize("body, param", [
    (b'{"model": "tiny", "messages": [', None),
    (b"[1, 2]", None),
    (b"", None),
    (b'{"model": "tiny"}', "messages"),
    (b'{"model": "tiny", "messages": []}', "messages"),
    (b'{"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}', "messages.0.role"),
    (b'{"model": "tiny", "messages": [{"role": "assistant", "content": "hi"}]}', "messages"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}', "n"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}', "temperature"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": ["a","b","c","d","e"]}', "stop"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": true}', "max_tokens"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2.0}', "max_tokens"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4294967296}', "max_tokens"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": 18446744073709551616}', "seed"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": -1}', "seed"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "0.5"}', "temperature"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": false}', "top_p"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_k": 1e30}', "top_k"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": 1}', "stream"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "logprobs": "yes"}', "logprobs"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}', "top_logprobs"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 21}',
     "top_logprobs"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}', None),
])
def test_malformed_requests_are_400(server, body, param):
    status, reply = request("POST", server.url + "/v1/chat/completions", body, key="sk-test")
    assert status == 400, reply
    error = reply["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param
    if b"ud800" in body:
        assert "surrogate" in error["message"]


GRAMMAR = 'root ::= "Rating: " [1-5] "\\n" [a-z ]{1,12}\n'


def test_grammar_holds_the_reply_to_its_shape(server, client):
    """`grammar` (GBNF, as llama.cpp's server takes it): the llama.cpp engine's replies, greedy or sampled, are
    sentences of the grammar and end once it is complete; other engines and bad grammars get a 400."""
    if server.engine.name != "llama.cpp":
        with pytest.raises(openai.BadRequestError, match="--engine llama.cpp"):
            ask(client, QUESTIONS[0], extra_body={"grammar": GRAMMAR})
        return
    for temperature in (0, 1.0, 1.0):
        reply = ask(client, QUESTIONS[0], max_tokens=40, temperature=temperature, extra_body={"grammar": GRAMMAR})
        assert re.fullmatch(r"Rating: [1-5]\n[a-z ]{1,12}", reply.choices[0].message.content), reply
        assert reply.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError, match="grammar"):
        ask(client, QUESTIONS[0], extra_body={"grammar": "root ::= ["})


def test_completions_refuse_logprobs(server):
    status, reply = request("POST", server.url + "/v1/completions",
                            b'{"model": "tiny", "prompt": "hi", "logprobs": 2}', key="sk-test")
    assert status == 400 and reply["error"]["param"] == "logprobs"


def test_chat_logprobs_as_openai_returns_them(server, client):
    if not server.engine.supports_logprobs:
        with pytest.raises(openai.BadRequestError, match="does not return log-probabilities"):
            ask(client, QUESTIONS[1], logprobs=True, top_logprobs=2)
        return
    reply = ask(client, QUESTIONS[1], max_tokens=6, logprobs=True, top_logprobs=4)
    content = reply.choices[0].logprobs.content
    shown = reply.usage.completion_tokens - (reply.choices[0].finish_reason == "stop")  # the end-of-turn is not
    assert len(content) == shown and "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:  # greedy: the chosen token is the most likely alternative
        assert len(entry.top_logprobs) == 4 and entry.top_logprobs[0].token == entry.token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob) and entry.logprob <= 0
        assert [a.logprob for a in entry.top_logprobs] == sorted((a.logprob for a in entry.top_logprobs), reverse=True)
        assert bytes(entry.bytes).decode() == entry.token
    if server.engine.name == "transformers":  # the first token's log-probability is the model's own on the prompt
        import torch

        ids = prompt_ids([{"role": "user", "content": QUESTIONS[1]}], server.tokenizer, "zephyr")
        with torch.no_grad():
            expected = server.engine.model(torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
        assert content[0].logprob == pytest.approx(float(expected.max()), abs=1e-4)
    streamed = ask(client, QUESTIONS[1], max_tokens=6, logprobs=True, top_logprobs=4, stream=True)
    pieces = [e for chunk in streamed if chunk.choices and chunk.choices[0].logprobs
              for e in chunk.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in pieces] == [(e.token, round(e.logprob, 4)) for e in content]
    assert ask(client, QUESTIONS[1], max_tokens=2).choices[0].logprobs is None  # only when asked for
    only_chosen = ask(client, QUESTIONS[1], max_tokens=2, logprobs=True).choices[0].logprobs.content
    assert only_chosen and all(e.top_logprobs == [] for e in only_chosen)


@pytest.mark.slow  # tokenizing 1.7 MB takes ~10 s on a shared 2-core machine
def test_tokenizing_a_huge_prompt_does_not_block_the_server(server):
    import threading
    import time

    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "bread and butter " * 100_000}],
                       "max_tokens": 1}).encode()  # 1.7 MB
    answer = {}
    worker = threading.Thread(target=lambda: answer.update(
        reply=request("POST", server.url + "/v1/chat/completions", body, key="sk-test", timeout=300)))
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert request("GET", server.url + "/health")[0] == 200
    health_seconds = time.monotonic() - started
    worker.join(300)
    status, reply = answer["reply"]
    assert status == 400 and reply["error"]["code"] == "context_length_exceeded"
    assert health_seconds < 3.0, f"/health took {health_seconds:.1f} s while a prompt was being tokenized"


def test_api_key_required(server):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    status, reply = request("POST", server.url + "/v1/completions", b'{"model": "tiny", "prompt": "hi"}')
    assert status == 401 and reply["error"]["code"] == "invalid_api_key"


def test_unknown_route_and_method_are_json(server):
    status, reply = request("GET", server.url + "/v1/nothing")
    assert status == 404 and reply["error"]["type"] == "not_found"
    status, reply = request("GET", server.url + "/v1/chat/completions")
    assert status == 405 and "error" in reply


def test_still_serving_after_errors(client):
    assert ask(client, QUESTIONS[0], max_tokens=3).choices[0].finish_reason in ("stop", "length")


def test_vllm_internal_server_needs_its_per_start_key(server):
    if server.engine.name != "vllm":
        pytest.skip("the vLLM engine's internal server only")
    internal = f"http://127.0.0.1:{server.engine.port}/v1/models"
    assert request("GET", internal)[0] == 401  # a local user without the key is refused
    assert request("GET", internal, key=server.engine.key)[0] == 200
    assert len(server.engine.key) >= 32
