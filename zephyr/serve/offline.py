"""Many conversations answered at once by a loaded engine, without a server (`zephyr eval`, `zephyr aif`'s pool).

Every request is in flight together, so the engine's continuous batching keeps its batch full: a short reply
frees its row for the next prompt at once, where fixed batches wait for their longest reply. Each request
carries its own sampling settings and seed, so a reply does not depend on what else shares the batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Callable, Sequence

from ..errors import ZephyrError
from ..sampling import Sampling
from .engine import Engine, Prompt, generate
from .protocol import ApiError


def _prompt(engine: Engine, messages: list[dict], name: str) -> Prompt:
    try:
        prompt = engine.chat_prompt(messages)
    except ApiError as err:
        raise ZephyrError(f"{name}: {err}") from err
    if len(prompt.ids) >= engine.context_length:
        raise ZephyrError(f"{name}: the prompt has {len(prompt.ids)} tokens, the model's context is "
                          f"{engine.context_length}")
    return prompt


async def _reply(engine: Engine, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int]) -> tuple[str, int]:
    room = engine.context_length - len(prompt.ids)
    sampling = dataclasses.replace(sampling, max_new_tokens=min(sampling.max_new_tokens, room))
    steps = [step async for step in generate(engine, prompt, sampling, stop_ids)]
    return "".join(step.text for step in steps), (steps[-1].tokens if steps else 0)


def answer_all(engine: Engine, conversations: Sequence[list[dict]], samplings: Sequence[Sampling],
               names: Sequence[str] | None = None, ignore_end_of_turn: bool = False,
               on_reply: Callable[[int, str, int], None] | None = None) -> list[tuple[str, int]]:
    """-> [(reply text, tokens generated)] in the order of `conversations`, each sampled with its `samplings`
    entry (a prompt too long for the context is a ZephyrError naming it by `names`). `on_reply(index, text,
    tokens)` runs as each reply finishes (progress, a resume file). `ignore_end_of_turn` lets every reply run to
    its max_new_tokens (throughput benchmarks)."""
    if any(s.repetition_penalty != 1.0 for s in samplings):
        raise ZephyrError("repetition_penalty is not supported by zephyr serve's engines; use 1.0")
    names = names or [f"conversation {i}" for i in range(len(conversations))]
    stop_ids = () if ignore_end_of_turn else engine.chat_stop_ids()

    # every prompt rendered (and checked) first, so all requests reach the engine together and are admitted
    # into one batch
    prompts = [_prompt(engine, messages, name) for messages, name in zip(conversations, names)]

    async def one(index: int) -> tuple[str, int]:
        text, tokens = await _reply(engine, prompts[index], samplings[index], stop_ids)
        if on_reply:
            on_reply(index, text, tokens)
        return text, tokens

    async def all_of_them() -> list[tuple[str, int]]:
        return list(await asyncio.gather(*(one(i) for i in range(len(conversations)))))

    return asyncio.run(all_of_them())
