"""`run_dpo(config)`: data -> tokenised pairs -> reference log-probs -> the shared training loop -> card.

A precomputed reference also leaves the held-out pairs' reference log-probs in output_dir (REFERENCE_SCORES),
which `zephyr run` reads as the SFT model's scores."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..cache import cache_root
from ..data.sources import resolve_sources
from ..errors import ConfigError
from ..train.output_dir import output_folder
from ..train.precision import autocast, master_weights, precision_label
from ..train.scoring import TokenScorer
from .card import write_dpo_card
from .config import DPOConfig
from .evaluate import REFERENCE_SCORES, PairScores, write_pair_scores
from .layout import collate
from .loss_metrics import pair_outputs
from .reference import (attach, cache_key, data_fingerprint, frozen_copy, precompute, reference_logps,
                        weights_fingerprint)
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

    def collate(self, item: list[TokenizedPair]) -> dict:
        batch = collate(item, self.layout, self.pad_id, self.cfg.row_tokens)
        if self.ref_table is not None:
            attach(batch, self.ref_table)
        return {"pairs": batch, "n_targets": batch.pairs, "n_tokens": batch.real_tokens}

    def reference(self, policy, batch):
        """(chosen, rejected) reference log-probs of `batch` for this run's reference mode."""
        if self.mode == "copy":
            device = batch.input_ids.device
            if next(self.ref_model.parameters()).device != device:
                self.ref_model.to(device)
            return reference_logps(self.ref_model, batch)
        if self.mode == "adapter":
            return reference_logps(policy, batch, adapter_off=True)
        return None  # precompute (on the batch) or reference-free

    def loss_fn(self, model, batch: dict):
        pairs = batch["pairs"].to(next(model.parameters()).device)
        losses, sums = pair_outputs(model, pairs, self.cfg, self.reference)
        n = pairs.pairs
        # the trainer divides metric sums by the pair count; token-weighted means (logits/*) are scaled to match
        metrics = {name: mean * n for name, mean in sums.mean_tensors().items() if name != "loss"}
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
    return cache_key(pairs, weights_fingerprint(where), precision_label(dtype, cfg.low_precision_weights),
                     f"{cfg.chat_template}|{cfg.max_length}|{cfg.max_prompt_length}")


def held_out_identity(cfg: DPOConfig, test_pairs: list[TokenizedPair], dtype: torch.dtype) -> dict[str, str]:
    """What the held-out reference scores describe: the test pairs' token ids (indexed by their position in the
    test split), the reference weights and the dtype they were scored in."""
    from ..models import resolve

    where, _ = resolve(cfg.model)
    return {"pairs": data_fingerprint(test_pairs), "weights": weights_fingerprint(where),
            "dtype": precision_label(dtype, cfg.low_precision_weights)}


def write_reference_scores(cfg: DPOConfig, test_pairs: list[TokenizedPair], table: torch.Tensor, offset: int,
                           dtype: torch.dtype) -> Path:
    """output_dir/reference_test.safetensors: the precomputed reference log-probs of the held-out pairs, keyed by
    each pair's position in the test split (in `table` it sits at that position + `offset`)."""
    rows = table[torch.tensor([p.index + offset for p in test_pairs], dtype=torch.long)]
    return write_pair_scores(Path(cfg.output_dir) / REFERENCE_SCORES, test_pairs, PairScores(rows[:, 0], rows[:, 1]),
                             held_out_identity(cfg, test_pairs, dtype))


def run_dpo(cfg: DPOConfig, callbacks: Sequence[Callable] = ()) -> DPORun:
    from ..models import load_tokenizer

    tokenizer = load_tokenizer(cfg)  # resolves chat_template "auto" in place, before the recipe is recorded
    with output_folder(cfg):  # locked, and free of other runs, before the data and the model load
        return _train(cfg, tokenizer, callbacks)


def _train(cfg: DPOConfig, tokenizer, callbacks: Sequence[Callable]) -> DPORun:
    from ..data import load_preference_splits
    from ..models import load_model
    from ..train.trainer import Trainer

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
    eval_pairs = [dataclasses.replace(p, index=p.index + len(splits.train)) for p in test_pairs]

    from accelerate.utils import set_seed

    set_seed(cfg.seed)  # LoRA's initial weights come from the global RNG: seed before creating them
    model = load_model(cfg, tokenizer, for_training=True)
    # the compute dtype the weights loaded in, not the config's word: `auto` is bf16 on one machine, fp32 on another
    dtype = model.config.dtype
    mixed_precision = master_weights(model, dtype, cfg.low_precision_weights)
    model = TokenScorer(model, chunk_size=cfg.logit_chunk_size)  # the policy scores through it
    mode = cfg.reference_mode()
    ref_model = ref_table = None
    if mode == "copy":
        ref_model = frozen_copy(model, dtype)
    elif mode == "precompute":
        # before any training step (and before a resume loads the checkpoint) the policy is the reference
        key = reference_table_key(cfg, train_pairs + eval_pairs, dtype)
        from accelerate import PartialState

        device = PartialState().device  # this process's own device under a multi-GPU launch
        model.to(device)
        with autocast(device, mixed_precision):  # as the training steps will compute
            ref_table = precompute(model, train_pairs + eval_pairs, _cache_dir(cfg), key,
                                   batch_size=cfg.per_device_eval_batch_size, layout=resolve_layout(cfg.layout),
                                   pad_id=tokenizer.pad_token_id, adapter_off=cfg.use_lora)
    objective = DPOObjective(cfg, tokenizer.pad_token_id, mode, ref_model, ref_table)
    trainer = Trainer(cfg, model, objective.loss_fn, micro_batches(train_pairs, cfg.per_device_train_batch_size,
                                                                   cfg.seed),
                      objective.collate, micro_batches(eval_pairs, cfg.per_device_eval_batch_size, cfg.seed),
                      tokenizer=tokenizer, recipe=cfg, callbacks=callbacks, mixed_precision=mixed_precision,
                      data_fingerprint=data_fingerprint(train_pairs))
    if trainer.accelerator.is_main_process:
        print(f"zephyr dpo: {len(train_pairs)} train pairs in {len(trainer.train_items)} micro-batches of "
              f"{cfg.per_device_train_batch_size}, {trainer.total_steps} optimizer steps, reference: {mode}, "
              f"layout: {objective.layout}", flush=True)
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        if ref_table is not None:  # before the card: a finished run's folder always holds both
            write_reference_scores(cfg, test_pairs, ref_table, len(splits.train), dtype)
        write_dpo_card(cfg, trainer, result, {"train": train_trunc, "test": test_trunc}, mode)
    return DPORun(result, {"train": train_trunc, "test": test_trunc}, mode, Path(cfg.output_dir))
