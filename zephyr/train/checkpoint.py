"""Atomic checkpoints: `output_dir/checkpoint-<step>/`, written under a temporary name then renamed.

A checkpoint holds the model (safetensors: full weights, or the adapter for LoRA) with its config and the
tokenizer (chat template included), `recipe.yaml` (the config that made it), `state/` (accelerate's
save_state: optimizer, registered scheduler, per-process RNG states; with FSDP, state/fsdp/ holds each
process's shards of the weights and optimizer) and `trainer_state.json` (step, epoch, data position, log
history), written last. Only a directory without the temporary suffix and with
trainer_state.json is ever resumed from, so a crash mid-save leaves nothing a resume would trust.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

PREFIX = "checkpoint-"
TMP_SUFFIX = ".tmp"
STATE_FILE = "trainer_state.json"


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)", child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(accelerator, output_dir: str | Path, step: int, trainer_state: dict[str, Any],
                    write_model: Callable[[Path], None], write_sharded: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint-<step> atomically (all processes call this; only the main one renames). `write_sharded`
    (FSDP) writes each process's shards of the weights and optimizer into the state folder."""
    final = Path(output_dir) / f"{PREFIX}{step}"
    staging = Path(output_dir) / f"{PREFIX}{step}{TMP_SUFFIX}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed save
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging / "state"), safe_serialization=True)
    if write_sharded is not None:
        write_sharded(staging / "state")
    write_model(staging)  # every process: sharded setups gather the full state dict collectively
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / STATE_FILE).write_text(json.dumps(trainer_state, indent=1))
        if final.exists():  # a re-run of the same step replaces the old one whole
            shutil.rmtree(final)
        os.replace(staging, final)
    accelerator.wait_for_everyone()
    return final


def rotate(output_dir: str | Path, keep: int) -> None:
    """Delete the oldest complete checkpoints beyond `keep` (0 keeps all)."""
    if keep <= 0:
        return
    for old in checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())
