"""zephyr's batched decoder (the transformers engine's core): batching must not change what a request gets.

Greedy replies of requests that share decode steps (joining at different times, with different prompt
lengths, so rows are left-padded differently) must equal `model.generate` on each prompt alone; the decoder
must really put several requests in one forward; sampling must keep exactly the tokens transformers' top-k
and top-p warpers keep; seeds, stop ids, max_tokens, cancellation and the KV budget must hold.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from zephyr.serve.batched_decoder import (PREFILL_PADDING, PREFILL_TOKENS, BatchedDecoder, Request, _prefill_groups,
                                          nucleus, sample_rows)


@pytest.fixture(scope="module", params=["mistral", "gemma3"])  # gemma3: sliding window 16 < prompt + reply
def model(request, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir(request.param)).eval()


def prompts(count: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 40, (count,), generator=generator)
    return [torch.randint(4, 500, (int(n),), generator=generator).tolist() for n in lengths]


class Collector:
    """Tokens and finish reason of one request, filled in by the decoder's thread."""

    def __init__(self):
        self.tokens: list[int] = []
        self.logprobs: list[tuple] = []
        self.finish = self.error = None
        self.done = threading.Event()

    def __call__(self, token, finish, error, logprobs=None):
        if error is not None:
            self.error = error
        else:
            self.tokens.append(token)
            self.logprobs.append(logprobs)
            self.finish = finish
        if finish or error is not None:
            self.done.set()


def request(prompt, max_tokens, collector, temperature=0.0, top_k=0, top_p=1.0, stop_ids=(), seed=None):
    return Request(prompt, max_tokens, temperature, top_k, top_p, frozenset(stop_ids), collector, seed=seed)


def run(decoder: BatchedDecoder, requests: list[Request], stagger: float = 0.0) -> None:
    for r in requests:
        decoder.submit(r)
        time.sleep(stagger)
    for r in requests:
        assert r.emit.done.wait(60), "a request never finished"
        assert r.emit.error is None, r.emit.error


def greedy_reference(model, prompt: list[int], max_tokens: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_tokens,
                         min_new_tokens=max_tokens, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def test_prefill_groups_sort_by_length_and_bound_padding():
    # prompt lengths of the first 16 UltraFeedback prompts with a principle, as the AIF pool step sends them
    lengths = [62, 243, 190, 143, 87, 83, 992, 129, 73, 74, 106, 169, 74, 59, 140, 275]
    requests = [request([1] * n, 4, Collector()) for n in lengths]
    groups = _prefill_groups(requests)
    flat = [r for g in groups for r in g]
    assert sorted(map(id, flat)) == sorted(map(id, requests))  # each request exactly once
    assert [len(r.prompt) for r in flat] == sorted(lengths)
    for group in groups:
        padded, real = len(group) * max(len(r.prompt) for r in group), sum(len(r.prompt) for r in group)
        assert len(group) == 1 or (padded <= PREFILL_TOKENS and padded <= (1 + PREFILL_PADDING) * real)
    padded = sum(len(g) * max(len(r.prompt) for r in g) for g in groups)
    assert padded <= 1.15 * sum(lengths)  # in arrival order under the token cap alone: 4,900 for 2,899 real
    assert len(groups) < len(lengths) / 2  # still batched


@pytest.mark.parametrize("stagger", [0.0, 0.01])  # all at once (one padded prefill), or joining mid-decode
def test_concurrent_greedy_equals_generate_alone(model, stagger):
    texts = prompts(8)
    decoder = BatchedDecoder(model, max_num_seqs=8)
    try:
        batch = [request(p, 20, Collector()) for p in texts]
        run(decoder, batch, stagger)
        assert decoder.max_batch_seen > 1, "requests were not co-scheduled"
        alone = []
        for p in texts:
            r = request(p, 20, Collector())
            run(decoder, [r])
            alone.append(r.emit.tokens)
    finally:
        decoder.close()
    for p, batched, single in zip(texts, batch, alone):
        expected = greedy_reference(model, p, 20)
        assert batched.emit.tokens == single == expected
        assert batched.emit.finish == "length"


def test_nucleus_keeps_what_transformers_warpers_keep():
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(1)
    for temperature, top_k, top_p in [(0.7, 50, 0.95), (1.3, 5, 0.5), (0.7, 0, 0.9), (1.0, 1000, 1.0)]:
        logits = torch.randn(1000, generator=generator) * 3
        probs, ids = nucleus(logits, temperature, top_k, top_p)
        scores = TemperatureLogitsWarper(temperature)(None, logits[None].clone())
        if top_k:
            scores = TopKLogitsWarper(top_k)(None, scores)
        scores = TopPLogitsWarper(top_p)(None, scores)
        oracle = scores.softmax(-1)[0]
        assert set(ids.tolist()) == set(oracle.nonzero().flatten().tolist())
        torch.testing.assert_close(probs, oracle[ids])


def test_nucleus_by_hand():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    probs, ids = nucleus(logits, 1.0, 0, 0.6)  # 0.5 < 0.6 so a second token is needed; 0.8 >= 0.6 stops
    assert ids.tolist() == [0, 1]
    torch.testing.assert_close(probs, torch.tensor([0.5, 0.3]) / 0.8)
    assert nucleus(logits, 1.0, 1, 1.0)[1].tolist() == [0]  # top-k 1 is argmax


def test_sample_rows_greedy_and_sampled_rows_in_one_batch():
    """Greedy rows take their own row's argmax (bf16 logits, a tie goes to the first index); a sampled row
    draws from its own nucleus: with top-k 1 that is its argmax too, with top-k 2 one of its two best."""
    def request(temperature, top_k=0):
        return Request([1], 4, temperature, top_k, 1.0, frozenset(), lambda *event: None, seed=0)

    logits = torch.tensor([[0.0, 3.0, 1.0, 3.0],    # tie between 1 and 3: the first
                           [5.0, 0.0, 1.0, 2.0],
                           [0.0, 1.0, 4.0, 2.0],
                           [0.0, 0.0, 9.0, 8.5]], dtype=torch.bfloat16)
    tokens = sample_rows(logits, [request(0), request(0), request(0.7, top_k=1), request(1.0, top_k=2)])
    assert tokens[:3] == [1, 0, 2] and tokens[3] in (2, 3)
    assert sample_rows(logits[2:3], [request(0.7, top_k=1)]) == [2]  # no greedy row in the batch


def test_seed_gives_the_same_sample_alone_or_batched(model):
    texts = prompts(4, seed=2)
    decoder = BatchedDecoder(model, max_num_seqs=8)
    try:
        alone = request(texts[0], 16, Collector(), temperature=1.0, top_k=50, top_p=0.95, seed=7)
        run(decoder, [alone])
        crowd = [request(p, 16, Collector(), temperature=1.0, top_k=50, top_p=0.95, seed=7 + i)
                 for i, p in enumerate(texts)]
        run(decoder, crowd)
    finally:
        decoder.close()
    assert crowd[0].emit.tokens == alone.emit.tokens
    other_seed = request(texts[0], 16, Collector(), temperature=1.0, top_k=50, top_p=0.95, seed=8)
    decoder = BatchedDecoder(model)
    try:
        run(decoder, [other_seed])
    finally:
        decoder.close()
    assert other_seed.emit.tokens != alone.emit.tokens


def test_stop_id_and_max_tokens(model):
    text = prompts(1, seed=3)[0]
    expected = greedy_reference(model, text, 10)
    stop = expected[4]
    decoder = BatchedDecoder(model)
    try:
        stopped = request(text, 10, Collector(), stop_ids=[stop])
        short = request(text, 3, Collector())
        run(decoder, [stopped, short])
    finally:
        decoder.close()
    cut = expected.index(stop) + 1
    assert stopped.emit.tokens == expected[:cut] and stopped.emit.finish == "stop"  # the stop id is counted
    assert short.emit.tokens == expected[:3] and short.emit.finish == "length"


def test_cancelled_request_leaves_and_others_finish(model):
    texts = prompts(3, seed=4)
    decoder = BatchedDecoder(model)
    try:
        leaving = request(texts[0], 2000, Collector())  # would run long: only cancellation ends it
        staying = [request(p, 12, Collector()) for p in texts[1:]]
        decoder.submit(leaving)
        while len(leaving.emit.tokens) < 3:
            time.sleep(0.005)
        run(decoder, staying)
        decoder.cancel(leaving)
        deadline = time.time() + 10
        while decoder.rows and time.time() < deadline:
            time.sleep(0.01)
        assert not decoder.rows, "the cancelled row stayed in the batch"
        assert not leaving.emit.done.is_set()
    finally:
        decoder.close()
    for r, p in zip(staying, texts[1:]):
        assert r.emit.tokens == greedy_reference(model, p, 12)


def test_kv_budget_queues_instead_of_batching(model):
    texts = prompts(3, seed=5)
    decoder = BatchedDecoder(model, kv_cache_tokens=60)  # any two rows of (prompt + 16) x 2 exceed 60
    try:
        batch = [request(p, 16, Collector()) for p in texts if len(p) + 16 > 30]
        run(decoder, batch)
        assert decoder.max_batch_seen == 1
    finally:
        decoder.close()
    for r in batch:
        assert r.emit.tokens == greedy_reference(model, r.prompt, 16)


def test_engine_streams_share_forward_passes(tiny_model_dir):
    from zephyr.sampling import Sampling
    from zephyr.serve.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_model_dir("mistral")), "tiny", chat_template="zephyr", context_length=256)
    questions = ["How do I bake bread?", "What is 17 times 23?", "Explain gravity simply.", "Count to five.",
                 "Why is the sky blue?", "What is a zephyr?", "Say hello in Japanese.", "Give me a river poem."]
    chats = [engine.chat_prompt([{"role": "user", "content": q}]) for q in questions]

    greedy = Sampling(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=12)

    async def reply(prompt):
        steps = [s async for s in engine.stream(prompt, greedy, [])]
        return "".join(s.text for s in steps), steps[-1]

    async def together():
        return await asyncio.gather(*[reply(p) for p in chats])

    try:
        alone = [asyncio.run(reply(p)) for p in chats]
        assert engine.decoder.max_batch_seen == 1
        concurrent = asyncio.run(together())
        assert engine.decoder.max_batch_seen > 1  # 8 clients shared forward passes
    finally:
        engine.close()
    assert [text for text, _ in concurrent] == [text for text, _ in alone]
    for (text, last), prompt in zip(concurrent, chats):
        assert last.finish_reason == "length" and last.tokens == 12
        assert text == engine.tokenizer.decode(greedy_reference(engine.model, prompt.ids, 12))


def test_failed_forward_fails_its_requests_and_the_decoder_keeps_serving(model):
    text = prompts(1, seed=6)[0]
    real_forward = model.forward

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    decoder = BatchedDecoder(model)
    try:
        model.forward = broken
        failed = request(text, 8, Collector())
        decoder.submit(failed)
        assert failed.emit.done.wait(30)
        assert "simulated" in str(failed.emit.error) and not failed.emit.tokens
        del model.forward  # back to the class's forward
        assert model.forward == real_forward
        healthy = request(text, 8, Collector())
        run(decoder, [healthy])
    finally:
        model.__dict__.pop("forward", None)
        decoder.close()
    assert healthy.emit.tokens == greedy_reference(model, text, 8)


def test_client_that_hangs_up_frees_its_row(tiny_model_dir):
    import http.client
    import json
    from urllib.parse import urlparse

    from zephyr.sampling import Sampling
    from zephyr.serve.app import build_app
    from zephyr.serve.transformers_engine import TransformersEngine

    from .conftest import running

    engine = TransformersEngine(str(tiny_model_dir("mistral")), "tiny", chat_template="zephyr", context_length=256)
    real_forward = engine.model.forward

    def slow_forward(*args, **kwargs):  # ~200 tokens take seconds: the hang-up comes long before the end
        time.sleep(0.02)
        out = real_forward(*args, **kwargs)
        out.logits[..., engine.tokenizer.eos_token_id] = -float("inf")  # no early end of text either
        return out

    engine.model.forward = slow_forward
    body = json.dumps({"model": "tiny", "prompt": "The quick brown fox", "max_tokens": 200, "stream": True,
                       "temperature": 0})
    defaults = Sampling(temperature=0.7, top_k=50, top_p=0.95)
    try:
        with running(build_app(engine, defaults, max_tokens_limit=256)) as url:
            where = urlparse(url)
            connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
            connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            events = 0
            while events < 3:  # a few tokens have arrived: the request is decoding in the batch
                events += response.fp.readline().startswith(b"data: ")
            assert len(engine.decoder.rows) == 1
            connection.sock.shutdown(2)
            connection.close()
            deadline = time.time() + 3  # far less than the ~4 s the remaining tokens need
            while engine.decoder.rows and time.time() < deadline:
                time.sleep(0.01)
            assert not engine.decoder.rows, "the disconnected client's row is still decoding"
    finally:
        engine.close()


def test_log_probabilities_are_the_models_own_in_a_shared_batch(model):
    texts = prompts(4)
    decoder = BatchedDecoder(model, max_num_seqs=4)
    try:
        batch = [Request(p, 6, 0.0, 0, 1.0, frozenset(), Collector(), top_logprobs=3) for p in texts]
        run(decoder, batch, stagger=0.01)
        plain = request(texts[0], 6, Collector())
        run(decoder, [plain])
    finally:
        decoder.close()
    assert plain.emit.logprobs == [None] * 6  # not asked for, not computed
    for p, r in zip(texts, batch):
        out = model.generate(torch.tensor([p]), do_sample=False, max_new_tokens=6, min_new_tokens=6, pad_token_id=0,
                             output_logits=True, return_dict_in_generate=True)
        assert r.emit.tokens == out.sequences[0, len(p):].tolist()
        for step, (token, (chosen, top)) in enumerate(zip(r.emit.tokens, r.emit.logprobs)):
            expected = out.logits[step][0].float().log_softmax(-1)
            assert chosen == pytest.approx(float(expected[token]), abs=1e-4)
            assert [i for i, _ in top] == expected.topk(3).indices.tolist()
            assert [lp for _, lp in top] == pytest.approx(expected.topk(3).values.tolist(), abs=1e-4)
            assert top[0][0] == token  # greedy: the chosen token is the most likely one
