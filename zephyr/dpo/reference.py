"""The reference policy's log-probs: a frozen copy, the LoRA policy with its adapter off, or a disk cache.

- "copy": a frozen second model, for full fine-tuning.
- "adapter": with LoRA the reference is the policy with its adapter disabled (peft `disable_adapter()`), so no
  second copy sits in memory.
- "precompute": the reference log-probs of every pair computed once, before training, and cached on disk as
  safetensors under a fingerprint of the data (the exact token ids, so the tokenizer, template and truncation
  are covered), the reference weights and their dtype. A later run or a resume with the same fingerprint reads
  the cache and never loads or runs a reference model.
- reference-free losses (SimPO) use none: the reference log-probs are zero.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..train.scoring import TokenScorer, unwrap
from .layout import PairBatch, collate, completion_logps
from .tokenize import TokenizedPair

MODES = ("auto", "copy", "adapter", "precompute", "none")


@torch.no_grad()
def reference_logps(model, batch: PairBatch, adapter_off: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed reference log-probs [pairs] from `model` (with its adapter off if asked), scored
    outside any distributed wrapper: nothing here needs gradients or their hooks."""
    inner = unwrap(model, keep_peft=True)
    scorer = TokenScorer(inner)
    if adapter_off:
        with inner.disable_adapter():
            scores = completion_logps(scorer, batch)
    else:
        scores = completion_logps(scorer, batch)
    return scores.logps.detach().float().chunk(2)


def frozen_copy(model, dtype: torch.dtype | None = None):
    """A frozen eval-mode copy of the causal LM (the reference for full fine-tuning), in `dtype` if given: a
    reference never takes a step, so it needs no fp32 master weights (half the memory in bf16)."""
    ref = copy.deepcopy(unwrap(model))
    if dtype is not None:
        ref.to(dtype)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def data_fingerprint(pairs: list[TokenizedPair]) -> str:
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(json.dumps([p.index, p.prompt, p.chosen, p.rejected]).encode())
    return digest.hexdigest()


def weights_fingerprint(folder: str | Path) -> str:
    """Cheap but content-based: each weight file's name, size and its first and last MiB, plus the config."""
    folder = Path(folder)
    digest = hashlib.sha256()
    if not folder.is_dir():  # a hub id: its name and revision are its identity
        digest.update(str(folder).encode())
        return digest.hexdigest()
    for path in sorted([*folder.glob("*.safetensors"), *folder.glob("*.gguf"), folder / "config.json"]):
        if not path.exists():
            continue
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def cache_key(pairs: list[TokenizedPair], model_id: str, dtype: str, extra: str = "") -> str:
    return hashlib.sha256(f"{data_fingerprint(pairs)}|{model_id}|{dtype}|{extra}".encode()).hexdigest()[:32]


def load_cached(cache_dir: str | Path, key: str) -> torch.Tensor | None:
    """[max index + 1, 2] reference log-probs (chosen, rejected) by pair index, or None when not cached."""
    from safetensors.torch import load_file

    path = Path(cache_dir) / f"{key}.safetensors"
    return load_file(path)["ref_logps"] if path.exists() else None


def _save_table(table: torch.Tensor, path: Path) -> None:
    """Atomic write: a killed run never leaves a half-written file that a resume would trust. The staging name is
    per process: under `accelerate launch` every process computes and writes the same table."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({"ref_logps": table}, str(staging))
    staging.replace(path)


def precompute(model, pairs: list[TokenizedPair], cache_dir: str | Path, key: str, batch_size: int = 8,
               layout: str = "shared", pad_id: int = 0, adapter_off: bool = False, desc: str = "reference log-probs",
               save_every_s: float = 60.0) -> torch.Tensor:
    """Compute (once) and cache the reference log-probs of every pair; returns them indexed by pair index.

    Progress is saved every `save_every_s` seconds to `<key>.partial.safetensors` (rows not yet computed are
    NaN), so a run killed an hour into the reference pass of a large dataset resumes where it stopped."""
    from safetensors.torch import load_file

    cached = load_cached(cache_dir, key)
    if cached is not None:
        return cached
    final, partial = Path(cache_dir) / f"{key}.safetensors", Path(cache_dir) / f"{key}.partial.safetensors"
    size = max((p.index for p in pairs), default=-1) + 1
    table = torch.full((size, 2), float("nan"))
    if partial.exists():
        saved = load_file(partial)["ref_logps"]
        if saved.shape == table.shape:
            table = saved
    todo = [p for p in pairs if table[p.index].isnan().any()]
    if len(todo) < len(pairs):
        print(f"zephyr: resuming the reference log-probs: {len(pairs) - len(todo)} of {len(pairs)} pairs were "
              f"computed by an earlier run ({partial})", flush=True)
    if todo:
        device, was_training, last_save = next(unwrap(model).parameters()).device, model.training, time.monotonic()
        model.eval()
        try:
            for start in tqdm(range(0, len(todo), batch_size), desc=desc, unit="batch"):
                chunk = todo[start:start + batch_size]
                chosen, rejected = reference_logps(model, collate(chunk, layout, pad_id).to(device), adapter_off)
                index = torch.tensor([p.index for p in chunk])
                table[index, 0], table[index, 1] = chosen.cpu(), rejected.cpu()
                if time.monotonic() - last_save >= save_every_s and start + batch_size < len(todo):
                    _save_table(table, partial)
                    last_save = time.monotonic()
        finally:
            model.train(was_training)
    _save_table(table, final)
    partial.unlink(missing_ok=True)
    return table


def attach(batch: PairBatch, table: torch.Tensor) -> PairBatch:
    """Put the cached reference log-probs of the batch's pairs on the batch."""
    rows = table[batch.pair_index.cpu()]
    batch.ref_chosen, batch.ref_rejected = rows[:, 0], rows[:, 1]
    return batch
