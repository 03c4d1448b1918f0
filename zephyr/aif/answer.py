"""Completions from the pool through batched engines: local models through `zephyr serve`'s engines
(continuous batching on transformers, llama.cpp for GGUF, vLLM), all of a model's requests in flight together;
endpoints through the shared HTTP client (`zephyr.judge.HTTPJudge`: bounded concurrency, retries).

Answerers that share a model, engine and template share one loaded engine whatever their sampling settings.
Each request carries its own seed, so a reply does not depend on what else shares the batch. Replies are
stripped and cut at the first blank run of four newlines (UltraFeedback's post-processing).
"""

from __future__ import annotations

import asyncio
import dataclasses

from ..errors import ConfigError, ZephyrError
from ..sampling import Sampling
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
                 allow_insecure: bool = False):
        self.max_num_seqs, self.concurrency = max_num_seqs, concurrency
        self.api_key_env, self.allow_insecure = api_key_env, allow_insecure
        self.open: dict[tuple, object] = {}

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
        from ..serve.engine_choice import choose

        config = ServeConfig(model=answerer.model, engine=answerer.engine, chat_template=answerer.chat_template,
                             max_num_seqs=self.max_num_seqs)
        try:
            name, _ = choose(answerer.model, answerer.engine)
        except ValueError as err:
            raise ConfigError(f"--pool: {answerer.name}: {err}") from err
        return load_engine(config, name)

    def close(self) -> None:
        for engine in self.open.values():
            getattr(engine, "close", lambda: None)()
        self.open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def _local_reply(engine, job: Job) -> str:
    from ..serve.engine import generate
    from ..serve.protocol import ApiError

    answerer = job.answerer
    try:
        prompt = engine.chat_prompt(job.messages)
    except ApiError as err:
        raise ZephyrError(f"completion {job.index} ({answerer.name}): {err}") from err
    room = engine.context_length - len(prompt.ids)
    if room < 1:
        raise ZephyrError(f"completion {job.index} ({answerer.name}): the prompt has {len(prompt.ids)} tokens, "
                          f"the model's context is {engine.context_length}")
    sampling = Sampling(temperature=answerer.temperature, top_k=answerer.top_k, top_p=answerer.top_p,
                        max_new_tokens=min(answerer.max_new_tokens, room), seed=job.seed)
    parts = [step.text async for step in generate(engine, prompt, sampling, engine.chat_stop_ids())]
    return "".join(parts)


async def _local_replies(engine, jobs: list[Job]) -> list[str]:
    return list(await asyncio.gather(*(_local_reply(engine, job) for job in jobs)))


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
            texts = asyncio.run(_local_replies(engine, group))
        out.update((job.index, clean(text)) for job, text in zip(group, texts))
    return out
