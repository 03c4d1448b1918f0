"""Sampling settings with the Zephyr model cards' defaults, and batched sampling over conversations.

`Sampling` is what every sampler in zephyr reads: `zephyr generate`, `zephyr chat`, the end-to-end run and
evaluation (through transformers' `generate`), and `zephyr serve`'s engines (one request each).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import torch

from .chat_template import end_of_turn, prompt_ids
from .config import field
from .errors import ConfigError
from .models import ModelConfig


@dataclasses.dataclass
class Sampling:
    """Sampling settings (defaults: the published Zephyr cards)."""

    temperature: float = field(0.7, help="softmax temperature; 0 means greedy decoding")
    top_k: int = field(50, help="sample among the k most likely tokens (0 = no limit)")
    top_p: float = field(0.95, help="nucleus sampling: smallest token set with this much probability")
    max_new_tokens: int = field(256, help="longest reply, in tokens")
    repetition_penalty: float = field(1.0, help="penalise repeated tokens (1.0 = off)")
    # a server request without a seed carries None: its reply is not reproducible
    seed: int = field(42, help="random seed: the same seed, model and inputs give the same replies")


def check_sampling(sampling: Sampling) -> None:
    """ConfigError naming the first setting out of range (a server request's `max_new_tokens` of 0 means "to
    the end of the context", so only commands check it through SamplingConfig)."""
    problems = {
        "temperature": not sampling.temperature >= 0 or not math.isfinite(sampling.temperature),
        "top_p": not 0 < sampling.top_p <= 1,
        "top_k": sampling.top_k < 0,
        "repetition_penalty": not sampling.repetition_penalty > 0 or not math.isfinite(sampling.repetition_penalty),
        "max_new_tokens": sampling.max_new_tokens < 1,
    }
    wanted = {"temperature": ">= 0 (0 = greedy)", "top_p": "in (0, 1]", "top_k": ">= 0 (0 = no limit)",
              "repetition_penalty": "> 0 (1.0 = off)", "max_new_tokens": ">= 1"}
    for name, bad in problems.items():
        if bad:
            raise ConfigError(f"--{name}: must be {wanted[name]}, got {getattr(sampling, name)}")


@dataclasses.dataclass
class SamplingConfig(Sampling, ModelConfig):
    """A model and how to sample from it."""

    def __post_init__(self):
        check_sampling(self)
        super().__post_init__()


def stop_token_ids(tokenizer, template: str) -> list[int]:
    """End-of-turn (and end-of-text) ids that end a reply."""
    ids = []
    for token in (end_of_turn(template, tokenizer.eos_token), tokenizer.eos_token):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if token_id is not None and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


def generate_kwargs(config: Sampling, tokenizer, template: str) -> dict:
    sample = config.temperature > 0
    kwargs = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": sample,
        "eos_token_id": stop_token_ids(tokenizer, template),
        "pad_token_id": tokenizer.pad_token_id,
        "repetition_penalty": config.repetition_penalty,
    }
    if sample:
        kwargs.update(temperature=config.temperature, top_k=config.top_k or None, top_p=config.top_p)
    else:  # the model's generation_config may carry sampling values that greedy decoding would warn about
        kwargs.update(temperature=None, top_k=None, top_p=None)
    return kwargs


def clean_reply(tokenizer, new_ids: Sequence[int], template: str) -> str:
    """Decode generated ids, cutting at the first end-of-turn token."""
    stops = set(stop_token_ids(tokenizer, template))
    kept = []
    for token_id in new_ids:
        if token_id in stops:
            break
        kept.append(token_id)
    return tokenizer.decode(kept, skip_special_tokens=True).strip()


def generate_batch(model, tokenizer, conversations: Sequence[list[dict]], config: Sampling, template: str,
                   seed: int | None = None) -> list[str]:
    """One reply per conversation, batched with left padding."""
    encoded = [prompt_ids(messages, tokenizer, template) for messages in conversations]
    return generate_from_ids(model, tokenizer, encoded, config, template, seed)


@torch.inference_mode()
def generate_from_ids(model, tokenizer, encoded: Sequence[list[int]], config: Sampling, template: str,
                      seed: int | None = None) -> list[str]:
    """One reply per prompt of token ids (`prompt_ids`), batched with left padding."""
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in encoded])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    torch.manual_seed(config.seed if seed is None else seed)
    output = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                            **generate_kwargs(config, tokenizer, template))
    return [clean_reply(tokenizer, row[width:].tolist(), template) for row in output]


def batched(items: Sequence, size: int) -> Iterable[tuple[int, Sequence]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]
