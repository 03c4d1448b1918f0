"""Which engine the pool loads for an answerer, and the pool step's token accounting (no model loaded)."""

from __future__ import annotations

from typing import AsyncIterator, Sequence

import pytest

from zephyr.aif.answer import Engines, Job, replies
from zephyr.aif.pool import parse_answerer
from zephyr.errors import ConfigError
from zephyr.serve import engine_choice
from zephyr.serve.engine import Engine, Prompt, Step
from zephyr.serve.engine_choice import choose_for_pool

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 8}


@pytest.fixture
def everything_installed(monkeypatch):
    monkeypatch.setattr(engine_choice, "installed", lambda engine: True)


@pytest.fixture
def fake_gguf(monkeypatch, tmp_path):
    from zephyr import embedded

    path = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setattr(embedded, "gguf_path", lambda: path)
    return path


def test_auto_never_picks_vllm_for_a_checkpoint(everything_installed, tmp_path):
    # `zephyr serve` would pick vLLM here; the pool must not
    assert engine_choice.choose(str(tmp_path))[0] == "vllm"
    assert choose_for_pool(str(tmp_path))[:2] == ("transformers", str(tmp_path))
    assert choose_for_pool("embedded")[:2] == ("transformers", "embedded")


def test_auto_on_a_gguf_file_follows_serve(monkeypatch):
    monkeypatch.setattr(engine_choice, "installed", lambda engine: engine != "vllm")
    assert choose_for_pool("m.gguf")[:2] == ("llama.cpp", "m.gguf")
    monkeypatch.setattr(engine_choice, "installed", lambda engine: engine == "transformers")
    assert choose_for_pool("m.gguf")[:2] == ("transformers", "m.gguf")


def test_embedded_on_llama_cpp_loads_its_gguf_file(everything_installed, fake_gguf):
    assert choose_for_pool("embedded", "llama.cpp")[:2] == ("llama.cpp", str(fake_gguf))
    assert choose_for_pool("embedded", "transformers")[:2] == ("transformers", "embedded")
    assert choose_for_pool("embedded", "vllm")[:2] == ("vllm", "embedded")


def test_refusals(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_choice, "installed", lambda engine: engine == "transformers")
    with pytest.raises(ValueError, match="not installed"):
        choose_for_pool("embedded", "llama.cpp")
    with pytest.raises(ValueError, match="unknown engine"):
        choose_for_pool("embedded", "tgi")
    monkeypatch.setattr(engine_choice, "installed", lambda engine: True)
    with pytest.raises(ValueError, match="serves .gguf files"):
        choose_for_pool(str(tmp_path), "llama.cpp")


def test_engines_load_what_the_pool_choice_says(everything_installed, fake_gguf, monkeypatch):
    from zephyr.serve import cli as serve_cli

    loaded = []
    monkeypatch.setattr(serve_cli, "load_engine", lambda config, name: loaded.append((name, config)) or name)
    with Engines(max_num_seqs=7, threads=3) as engines:
        engines.get(parse_answerer("embedded", SAMPLING))
        engines.get(parse_answerer("embedded,engine=llama.cpp,name=g", SAMPLING))
    (first, plain), (second, gguf) = loaded
    assert (first, plain.model, plain.served_model_name) == ("transformers", "embedded", "embedded")
    assert (second, gguf.model, gguf.served_model_name) == ("llama.cpp", str(fake_gguf), "embedded")
    assert (gguf.max_num_seqs, gguf.threads) == (7, 3)
    with Engines() as engines, pytest.raises(ConfigError, match="--pool: bad: unknown engine"):
        engines.get(parse_answerer("embedded,engine=tgi,name=bad", SAMPLING))


class ScriptedEngine(Engine):
    """Replies with tokens 10, 11, 1 (end of turn), 12, 13, ...: a reply stops at 1 unless 1 is no stop id."""

    name, model_id, context_length, template = "scripted", "scripted", 4096, "zephyr"
    special_tokens = ("<s>", "</s>")

    def tokenize(self, text: str) -> list[int]:
        return [2] * len(text.split())

    def token_id(self, text: str) -> int | None:
        return 1 if text == "</s>" else None

    async def _stream(self, sampling, stop_ids) -> AsyncIterator[Step]:
        script = [10, 11, 1] + list(range(12, 12 + sampling.max_new_tokens))
        for count, token in enumerate(script[:sampling.max_new_tokens], 1):
            if token in stop_ids:
                yield Step("", count, "stop")
                return
            yield Step(f"t{token} ", count, "length" if count == sampling.max_new_tokens else None)

    def stream(self, prompt: Prompt, sampling, stop_ids: Sequence[int], top_logprobs=None):
        return self._stream(sampling, stop_ids)


@pytest.mark.parametrize("ignore, tokens, text", [(False, 3, "t10 t11"), (True, 6, "t10 t11 t1 t12 t13 t14")])
def test_ignore_end_of_turn_runs_every_reply_to_max_new_tokens(monkeypatch, ignore, tokens, text):
    monkeypatch.setattr(Engines, "_make", lambda self, answerer: ScriptedEngine())
    answerer = parse_answerer("embedded,max_new_tokens=6", SAMPLING)
    jobs = [Job(i, answerer, [{"role": "user", "content": "hi there"}], seed=i) for i in (4, 9)]
    with Engines(ignore_end_of_turn=ignore) as engines:
        out = replies(engines, jobs)
    assert out == {4: text, 9: text}
    assert engines.new_tokens == {4: tokens, 9: tokens}
