"""Completions from the pool through batched engines: local models through `zephyr serve`'s engines
(continuous batching on transformers, llama.cpp for GGUF, vLLM), all of a model's requests in flight together;
endpoints through the shared HTTP client (`zephyr.judge.HTTPJudge`: bounded concurrency, retries).

Answerers that share a model, engine and template share one loaded engine whatever their sampling settings.
Each request carries its own seed, so a reply does not depend on what else shares the batch. Replies are
stripped and cut at the first blank run of four newlines (UltraFeedback's post-processing).
`Engines.new_tokens` counts the tokens each local completion generated; `ignore_end_of_turn` lets every local
reply run to its max_new_tokens (benchmarks/aif_throughput.py: every path generates the same number of tokens).
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from ..sampling import Sampling
from ..serve.offline import answer_all
from .pool import Answerer


@dataclasses.dataclass
class Job:
    index: int  # the completion's slot id in completions.jsonl
    answerer: Answerer
    messages: list[dict]
    seed: int


def clean(text: str) -> str:
    return text.strip().split("\n\n\n\n")[0].strip()


def engine_key(answerer: Answerer) -> tuple:
    return ("url", answerer.url, answerer.model) if answerer.url else \
        ("local", answerer.model, answerer.engine, answerer.chat_template)


class Engines:
    """Loaded engines and endpoint clients, by `engine_key`; closed together."""

    def __init__(self, max_num_seqs: int = 32, concurrency: int = 8, api_key_env: str = "OPENAI_API_KEY",
                 allow_insecure: bool = False, threads: int = 0, ignore_end_of_turn: bool = False):
        self.max_num_seqs, self.concurrency, self.threads = max_num_seqs, concurrency, threads
        self.api_key_env, self.allow_insecure = api_key_env, allow_insecure
        self.ignore_end_of_turn = ignore_end_of_turn
        self.open: dict[tuple, object] = {}
        self.new_tokens: dict[int, int] = {}  # job index -> tokens its local completion generated

    def get(self, answerer: Answerer):
        key = engine_key(answerer)
        if key not in self.open:
            self.open[key] = self._make(answerer)
        return self.open[key]

    def _make(self, answerer: Answerer):
        if answerer.url:
            from ..judge import HTTPJudge

            return HTTPJudge(answerer.url, answerer.model, self.api_key_env, concurrency=self.concurrency,
                             allow_insecure=self.allow_insecure)
        from ..serve.cli import ServeConfig, load_engine
        from ..serve.engine_choice import choose_for_pool

        try:
            name, model, _ = choose_for_pool(answerer.model, answerer.engine)
        except ValueError as err:
            raise ConfigError(f"--pool: {answerer.name}: {err}") from err
        config = ServeConfig(model=model, engine=name, chat_template=answerer.chat_template,
                             max_num_seqs=self.max_num_seqs, threads=self.threads,
                             served_model_name=answerer.model)
        return load_engine(config, name)

    def close(self) -> None:
        for engine in self.open.values():
            getattr(engine, "close", lambda: None)()
        self.open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def replies(engines: Engines, jobs: list[Job]) -> dict[int, str]:
    """{job.index: cleaned reply}; one engine (or endpoint) at a time, all its jobs together."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(engine_key(job.answerer), []).append(job)
    out: dict[int, str] = {}
    for group in groups.values():
        engine = engines.get(group[0].answerer)
        if group[0].answerer.url:
            texts = [r.text for r in engine.chat([
                {"messages": j.messages, "max_tokens": j.answerer.max_new_tokens,
                 "temperature": j.answerer.temperature, "top_p": j.answerer.top_p} for j in group])]
        else:
            samplings = [Sampling(temperature=j.answerer.temperature, top_k=j.answerer.top_k, top_p=j.answerer.top_p,
                                  max_new_tokens=j.answerer.max_new_tokens, seed=j.seed) for j in group]
            done = answer_all(engine, [j.messages for j in group], samplings,
                              [f"completion {j.index} ({j.answerer.name})" for j in group], engines.ignore_end_of_turn)
            texts = [text for text, _ in done]
            engines.new_tokens.update((job.index, tokens) for job, (_, tokens) in zip(group, done))
        out.update((job.index, clean(text)) for job, text in zip(group, texts))
    return out
