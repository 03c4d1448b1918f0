"""`run_dpo(config)`: data -> tokenised pairs -> reference log-probs -> the shared training loop -> card."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..cache import cache_root
from .card import write_dpo_card
from .config import DPOConfig
from .layout import collate
from .logprobs import install_scoring
from .reference import (attach, cache_key, frozen_copy, load_cached, precompute, reference_logps,
                        weights_fingerprint)
from .step import DPOSettings, pair_outputs
from .tokenize import TokenizedPair, TruncationReport, tokenize_pairs


@dataclass
class DPORun:
    result: Any                  # zephyr.train.trainer.TrainResult
    truncation: dict[str, TruncationReport]
    reference: str
    output_dir: Path


def micro_batches(pairs: list[TokenizedPair], size: int, seed: int) -> list[list[TokenizedPair]]:
    """Seeded shuffle, then groups of `size` pairs (the trainer permutes the groups every epoch)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    return [order[i:i + size] for i in range(0, len(order), size)]


class DPOObjective:
    """The trainer's `collate` and `loss_fn` for preference pairs, holding the reference strategy."""

    def __init__(self, cfg: DPOConfig, pad_id: int, mode: str, ref_model=None, ref_table=None):
        self.cfg, self.pad_id, self.mode = cfg, pad_id, mode
        self.layout = resolve_layout(cfg.layout)
        self.ref_model, self.ref_table = ref_model, ref_table
        self.settings = DPOSettings(cfg.loss_type, cfg.beta, cfg.label_smoothing, cfg.simpo_gamma,
                                    cfg.logit_chunk_size or None)

    def collate(self, item: list[TokenizedPair]) -> dict:
        batch = collate(item, self.layout, self.pad_id, self.cfg.max_seq_length)
        if self.ref_table is not None:
            attach(batch, self.ref_table)
        return {"pairs": batch, "n_targets": batch.pairs, "n_tokens": batch.real_tokens}

    def reference(self, batch):
        if self.mode == "copy":
            device = batch.input_ids.device
            if next(self.ref_model.parameters()).device != device:
                self.ref_model.to(device)
            return reference_logps(self.ref_model, batch)
        if self.mode == "adapter":
            return self._adapter_reference(batch)
        return None  # precompute (on the batch) or reference-free

    def _adapter_reference(self, batch):
        return reference_logps(self._policy, batch, adapter_off=True)

    def loss_fn(self, model, batch: dict):
        self._policy = model
        pairs = batch["pairs"].to(next(model.parameters()).device)
        losses, sums = pair_outputs(model, pairs, self.settings, self.reference)
        n = pairs.pairs
        # the trainer divides metric sums by the pair count; token-weighted means (logits/*) are scaled to match
        metrics = {name: mean * n for name, mean in sums.means().items() if name != "loss"}
        return losses.sum(), n, metrics


def resolve_layout(layout: str) -> str:
    """auto: the shared-prompt packed rows."""
    return "shared" if layout == "auto" else layout


def _cache_dir(cfg: DPOConfig) -> Path:
    return Path(cfg.ref_cache_dir) if cfg.ref_cache_dir else cache_root() / "ref_logps"


def reference_table_key(cfg: DPOConfig, pairs: list[TokenizedPair], dtype: torch.dtype) -> str:
    """The precomputed reference cache's key for the train + test pairs (one index space) of this config."""
    from ..models import resolve

    where, _ = resolve(cfg.model)
    return cache_key(pairs, weights_fingerprint(where), str(dtype),
                     f"{cfg.chat_template}|{cfg.max_length}|{cfg.max_prompt_length}")


def cached_reference(cfg: DPOConfig, pairs: list[TokenizedPair], dtype: torch.dtype) -> torch.Tensor | None:
    """The reference log-probs a precompute run of this config left on disk, or None."""
    return load_cached(_cache_dir(cfg), reference_table_key(cfg, pairs, dtype))


def run_dpo(cfg: DPOConfig, callbacks: Sequence[Callable] = ()) -> DPORun:
    from ..data import load_preference_splits
    from ..models import load_model, load_tokenizer
    from ..train.trainer import Trainer

    from ..errors import ConfigError
    from ..sft.stage import resolve_sources

    tokenizer = load_tokenizer(cfg)  # resolves chat_template "auto" in place
    splits = load_preference_splits(dataclasses.replace(cfg, dataset_mixer=resolve_sources(cfg.dataset_mixer)))
    if not splits.train:
        raise ConfigError("the training split is empty after mixing; check dataset_mixer and dataset_splits")
    print(splits.report.table() if hasattr(splits.report, "table") else splits.report, flush=True)
    train_pairs, train_trunc = tokenize_pairs(splits.train, tokenizer, cfg.chat_template, cfg.max_length,
                                              cfg.max_prompt_length, desc="tokenizing train pairs")
    test_pairs, test_trunc = tokenize_pairs(splits.test, tokenizer, cfg.chat_template, cfg.max_length,
                                            cfg.max_prompt_length, desc="tokenizing test pairs")
    print(f"zephyr dpo: train {train_trunc.summary()}; test {test_trunc.summary()}", flush=True)
    # one index space for both splits: the precomputed reference table is looked up by pair index
    test_pairs = [dataclasses.replace(p, index=p.index + len(splits.train)) for p in test_pairs]

    from accelerate.utils import set_seed

    set_seed(cfg.seed)  # LoRA's initial weights come from the global RNG: seed before creating them
    model = load_model(cfg, tokenizer, for_training=True)
    install_scoring(model)
    mode = cfg.reference_mode()
    ref_model = ref_table = None
    if mode == "copy":
        ref_model = frozen_copy(model)
    elif mode == "precompute":
        # before any training step (and before a resume loads the checkpoint) the policy is the reference
        # the dtype the weights loaded in, not the config's word: `auto` means bf16 on one machine, fp32 on another
        key = reference_table_key(cfg, train_pairs + test_pairs, next(model.parameters()).dtype)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        ref_table = precompute(model, train_pairs + test_pairs, _cache_dir(cfg), key,
                               batch_size=cfg.per_device_eval_batch_size, layout=resolve_layout(cfg.layout),
                               pad_id=tokenizer.pad_token_id, adapter_off=cfg.use_lora)
    objective = DPOObjective(cfg, tokenizer.pad_token_id, mode, ref_model, ref_table)
    trainer = Trainer(cfg, model, objective.loss_fn, micro_batches(train_pairs, cfg.per_device_train_batch_size,
                                                                   cfg.seed),
                      objective.collate, micro_batches(test_pairs, cfg.per_device_eval_batch_size, cfg.seed),
                      tokenizer=tokenizer, recipe=cfg, callbacks=callbacks)
    if trainer.accelerator.is_main_process:
        print(f"zephyr dpo: {len(train_pairs)} train pairs in {len(trainer.train_items)} micro-batches of "
              f"{cfg.per_device_train_batch_size}, {trainer.total_steps} optimizer steps, reference: {mode}, "
              f"layout: {objective.layout}", flush=True)
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        write_dpo_card(cfg, trainer, result, {"train": train_trunc, "test": test_trunc}, mode)
    return DPORun(result, {"train": train_trunc, "test": test_trunc}, mode, Path(cfg.output_dir))
