"""llama.cpp continuous batching (zephyr/serve/llamacpp_batched.py): requests that share `llama_decode` calls get
the greedy replies llama.cpp gives each prompt alone (its own `Llama.generate`), several requests really share
a step, finished and abandoned requests give their sequence back, and the KV budget is respected."""

from __future__ import annotations

import time

import pytest
import torch

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (zephyr[gguf])")
pytestmark = pytest.mark.slow  # a GGUF conversion per module

from zephyr.serve.llamacpp_batched import LlamaCppBatcher  # noqa: E402

from .test_batched_decoder import Collector, request, run  # noqa: E402


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab
    from zephyr.quantize.gguf import write_gguf

    folder = tiny_gemma3_real_vocab(tmp_path_factory.getbasetemp() / "tiny-gemma3-real-peaked", embedding_scale=4.0)
    path, _ = write_gguf(folder, tmp_path_factory.mktemp("gguf"), "f16", "zephyr")
    return str(path)


@pytest.fixture(scope="module")
def llm(gguf):
    model = llama_cpp.Llama(model_path=gguf, n_ctx=512, verbose=False)
    yield model
    model.close()


def prompts(count: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 40, (count,), generator=generator)
    return [[2] + torch.randint(1000, 200000, (int(n),), generator=generator).tolist() for n in lengths]


def alone(llm, prompt: list[int], max_tokens: int) -> list[int]:
    out = []
    for token in llm.generate(prompt, temp=0.0, reset=True):
        out.append(token)
        if len(out) == max_tokens:
            return out


@pytest.mark.parametrize("stagger", [0.0, 0.01])  # all admitted together, or joining while others decode
def test_concurrent_greedy_equals_llama_alone(llm, stagger):
    texts = prompts(8)
    batcher = LlamaCppBatcher(llm, kv_cache_tokens=2048, max_num_seqs=8)
    try:
        batch = [request(p, 16, Collector()) for p in texts]
        run(batcher, batch, stagger)
        assert batcher.max_batch_seen > 1, "requests were not co-scheduled"
        assert sorted(batcher.free_seqs) == list(range(8)) and not batcher.live  # every sequence given back
    finally:
        batcher.close()
    for p, r in zip(texts, batch):
        assert r.emit.tokens == alone(llm, p, 16)
        assert r.emit.finish == "length"


def test_stop_ids_cancel_and_budget(llm):
    batcher = LlamaCppBatcher(llm, kv_cache_tokens=128, max_num_seqs=4)
    try:
        first = alone(llm, prompts(1)[0], 8)
        stop = next((t for i, t in enumerate(first) if i and t not in first[:i]), first[0])
        stopped = request(prompts(1)[0], 16, Collector(), stop_ids=[stop])
        run(batcher, [stopped])
        assert stopped.emit.tokens == first[:first.index(stop) + 1] and stopped.emit.finish == "stop"
        # two requests of 40 + 60 tokens cannot both reserve room in 128 cells: the second waits its turn
        a, b = request(prompts(1, 1)[0][:40], 60, Collector()), request(prompts(1, 2)[0][:40], 60, Collector())
        run(batcher, [a, b])
        assert batcher.max_batch_seen == 1 and len(a.emit.tokens) == len(b.emit.tokens) == 60
        # a client that leaves: its sequence is freed and the next request still runs
        gone = request(prompts(1, 3)[0], 60, Collector())
        batcher.submit(gone)
        while not gone.emit.tokens:
            time.sleep(0.01)
        batcher.cancel(gone)
        after = request(prompts(1, 4)[0], 5, Collector())
        run(batcher, [after])
        assert len(after.emit.tokens) == 5 and len(gone.emit.tokens) < 60
        assert sorted(batcher.free_seqs) == list(range(4)) and not batcher.live
    finally:
        batcher.close()


@pytest.mark.parametrize("threads", [0, 1])
def test_threads_zero_means_every_usable_core(llm, threads):
    import os

    import llama_cpp

    batcher = LlamaCppBatcher(llm, kv_cache_tokens=128, max_num_seqs=2, threads=threads)
    try:
        expected = threads or len(os.sched_getaffinity(0))
        assert llama_cpp.llama_n_threads(batcher.ctx) == expected
        assert llama_cpp.llama_n_threads_batch(batcher.ctx) == expected
    finally:
        batcher.close()


def test_ultrafeedback_grammars_give_replies_its_parser_reads(llm):
    """`zephyr aif --judge_grammar`'s grammars on a random tiny model, greedy and sampled, all in one batch:
    every reply ends on its own and parses as UltraFeedback's annotation scripts parse it."""
    from zephyr.aif import rubric
    from zephyr.serve.batched_decoder import Request

    batcher = LlamaCppBatcher(llm, kv_cache_tokens=4096, max_num_seqs=8)
    eog = batcher.end_of_generation_ids()
    grammars = {"honesty": rubric.aspect_grammar("honesty", 8),
                "truthfulness": rubric.aspect_grammar("truthfulness", 8), "critique": rubric.critique_grammar(8)}
    try:
        with pytest.raises(ValueError, match="GBNF"):
            batcher.grammar("root ::= [")
        batch = [(kind, Request(prompts(1, seed)[0], 300, temperature, 0, 1.0, eog, Collector(), seed=seed,
                                grammar=batcher.grammar(grammar)))
                 for kind, grammar in grammars.items() for temperature, seed in ((0.0, 0), (1.0, 7))]
        run(batcher, [r for _, r in batch])
    finally:
        batcher.close()
    for kind, r in batch:
        assert r.emit.finish == "stop"
        text = llm.detokenize([t for t in r.emit.tokens if t not in eog]).decode()
        parsed = rubric.parse_critique(text) if kind == "critique" else rubric.parse_aspect(text, kind)
        assert parsed is not None, text
