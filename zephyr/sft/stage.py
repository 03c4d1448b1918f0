"""The dSFT stage: load model and data, tokenize with the chat template, pack, train, write the model card."""

from __future__ import annotations

import dataclasses
import hashlib
from array import array
from functools import partial
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ..chat_template import render_ids
from ..data.sources import resolve_sources
from ..errors import ConfigError
from ..model_card import write_stage_card
from ..train import PackStats, TokenScorer, Tokenized, Trainer, TrainResult, collate_rows, group_rows, pack, truncate
from ..train.output_dir import output_folder
from ..train.precision import master_weights
from .config import SFTConfig
from .loss import sft_loss

def tokenize_conversations(conversations: Sequence[list[dict]], tokenizer, template: str,
                           desc: str = "tokenizing", assistant_only: bool = True) -> list[Tokenized]:
    """Chat-template each conversation into ids + loss mask: every assistant turn, or every token when
    `assistant_only` is false (collate_rows never predicts a conversation's first token from the one before)."""
    out = []
    for index, messages in enumerate(tqdm(conversations, desc=desc, unit="conv", leave=False)):
        ids, mask = render_ids(messages, tokenizer, template, index=index)
        out.append(Tokenized(ids, mask if assistant_only else [1] * len(ids)))
    return out


def examples_fingerprint(examples: Sequence[Tokenized]) -> str:
    """A hash of the tokenized training set (ids and loss masks, in order): what a resumed run must train on."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(len(example.ids).to_bytes(8, "little"))
        digest.update(array("q", example.ids).tobytes() + array("b", example.mask).tobytes())
    return digest.hexdigest()


def packed_items(examples: list[Tokenized], cfg: SFTConfig, rows_per_batch: int, seed: int,
                 stats: PackStats) -> list[list[list[int]]]:
    """Micro-batches (lists of rows of example indices)."""
    if cfg.packing:
        rows = pack(examples, cfg.max_seq_length, stats)
    else:
        rows = [[i] for i in range(len(examples))]
        stats.rows += len(rows)
        stats.tokens += sum(len(e) for e in examples)
        stats.capacity = cfg.max_seq_length
    return group_rows(rows, rows_per_batch, seed)


def choose_layout(cfg: SFTConfig) -> bool:
    """True for the flat (1, N) layout: flash-attention's varlen path; rows otherwise (CPU sdpa / eager)."""
    if cfg.layout == "auto":
        return "flash" in cfg.attn_implementation
    return cfg.layout == "flat"


def prepare(cfg: SFTConfig, tokenizer):
    """-> (model, train examples, eval examples, data report, pack stats)."""
    from ..data import load_chat_splits
    from ..models import load_model

    data_cfg = dataclasses.replace(cfg, dataset_mixer=resolve_sources(cfg.dataset_mixer))
    splits = load_chat_splits(data_cfg)
    if not splits.train:
        raise ConfigError("the training split is empty after mixing; check dataset_mixer and dataset_splits")
    stats = PackStats()
    train = truncate(tokenize_conversations(splits.train, tokenizer, cfg.chat_template, "tokenizing train",
                                            cfg.assistant_only_loss),
                     cfg.max_seq_length, stats)
    eval_stats = PackStats()
    test = truncate(tokenize_conversations(splits.test, tokenizer, cfg.chat_template, "tokenizing test",
                                           cfg.assistant_only_loss),
                    cfg.max_seq_length, eval_stats)
    from accelerate.utils import set_seed

    set_seed(cfg.seed)  # the LoRA adapter's random init must be the same on every run with this seed
    model = load_model(cfg, tokenizer, for_training=True)
    return model, train, test, splits.report, stats


def run_sft(cfg: SFTConfig, callbacks: Sequence[Callable] = ()) -> TrainResult:
    """Train, checkpoint, and write output_dir/{model, tokenizer, recipe.yaml, metrics.jsonl, README.md}."""
    from ..models import load_tokenizer

    tokenizer = load_tokenizer(cfg)  # resolves chat_template "auto" in place, before the recipe is recorded
    with output_folder(cfg):  # locked, and free of other runs, before the data and the model load
        return _train(cfg, tokenizer, callbacks)


def _train(cfg: SFTConfig, tokenizer, callbacks: Sequence[Callable]) -> TrainResult:
    model, train, test, _, stats = prepare(cfg, tokenizer)
    train_items = packed_items(train, cfg, cfg.per_device_train_batch_size, cfg.seed, stats)
    # test examples follow the train ones in one list, so a single collate serves both
    offset = len(train)
    eval_items = [[[offset + i for i in row] for row in item]
                  for item in packed_items(test, cfg, cfg.per_device_eval_batch_size, cfg.seed, PackStats())]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collate = partial(collate_rows, examples=train + test, pad_id=pad_id, flat=choose_layout(cfg))
    mixed_precision = master_weights(model, model.config.dtype, cfg.low_precision_weights)
    trainer = Trainer(cfg, TokenScorer(model, chunk_size=cfg.logit_chunk_size), sft_loss, train_items, collate,
                      eval_items=eval_items, tokenizer=tokenizer, recipe=cfg, callbacks=callbacks,
                      mixed_precision=mixed_precision, data_fingerprint=examples_fingerprint(train))
    if trainer.accelerator.is_main_process:
        print(f"zephyr sft: {stats.conversations} train conversations -> {stats.rows} rows of <= "
              f"{cfg.max_seq_length} tokens ({stats.fill:.1%} full, {stats.truncated} truncated, "
              f"{stats.dropped_no_target} without a reply dropped), {len(train_items)} micro-batches, "
              f"{trainer.total_steps} optimizer steps", flush=True)
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        write_stage_card(cfg, trainer, result, description="Distilled supervised fine-tuning (dSFT) with the loss "
                         f"on {'assistant tokens only' if cfg.assistant_only_loss else 'every token'}, conversations "
                         f"packed into rows of {cfg.max_seq_length} tokens, `{cfg.chat_template}` chat template.")
    return result
