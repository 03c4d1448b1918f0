"""Atomic checkpoints: `output_dir/checkpoint-<step>/`, written under a temporary name then renamed.

A checkpoint holds the model (safetensors: full weights, or the adapter for LoRA) with its config and the
tokenizer (chat template included), `recipe.yaml` (the config that made it), `state/` (the training state, below)
and `trainer_state.json` (step, epoch, data position, log history), then the completion marker `COMPLETE`,
written last. Only a directory without the temporary suffix and with the marker is ever resumed from, and
rotation deletes the marker first, so neither a crash mid-save nor one mid-deletion leaves a checkpoint that a
resume would trust.

The training state is read back without unpickling anything from the folder: the trainable weights (fp32
masters) in safetensors, the optimizer and scheduler state dicts through `torch.load(weights_only=True)` (plain
tensors and containers only; a crafted pickle is refused, never run), and each process's RNG states in
safetensors (torch) and JSON (python, numpy). With FSDP, state/fsdp/ holds each process's shards of the weights
and optimizer in safetensors and the optimizer's hyperparameters in JSON (zephyr.train.fsdp). DeepSpeed's
engine state goes through accelerate's loader, which unpickles: it is read only when the folder carries this
account's signature (zephyr.train.signed_state). A full disk while writing is a `ZephyrError` naming the folder; the staging
folder is removed and the earlier checkpoints stay as they were.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ZephyrError

PREFIX = "checkpoint-"
TMP_SUFFIX = ".tmp"
STATE_FILE = "trainer_state.json"
COMPLETE = "COMPLETE"
TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with the completion marker), oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)", child.name)
        if match and child.is_dir() and (child / COMPLETE).is_file() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def disk_full(err: BaseException) -> bool:
    """Whether a write failed for lack of space: OSError ENOSPC/EDQUOT, or the messages torch's zip writer and
    safetensors give for it."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return any(s in text for s in ("No space left", "StorageFull", "unexpected pos", "file write failed",
                                   "Disk quota exceeded"))


def no_space_error(output_dir: str | Path, what: str) -> ZephyrError:
    kept = [p.name for p in checkpoint_dirs(output_dir)]
    keep = f"; the earlier checkpoints are intact ({', '.join(kept)})" if kept else ""
    return ZephyrError(f"no space left on {output_dir}: {what} was not written{keep}. Free some space (or lower "
                       "save_total_limit) and continue with --resume")


def save_checkpoint(accelerator, output_dir: str | Path, step: int, trainer_state: dict[str, Any],
                    write_state: Callable[[Path], None], write_model: Callable[[Path], None]) -> Path:
    """Write checkpoint-<step> atomically (all processes call this; only the main one renames). `write_state`
    writes the training state into the state folder (every process: its RNG states, its FSDP shards)."""
    final = Path(output_dir) / f"{PREFIX}{step}"
    staging = Path(output_dir) / f"{PREFIX}{step}{TMP_SUFFIX}"
    try:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed save
            (staging / "state").mkdir(parents=True)
        accelerator.wait_for_everyone()
        write_state(staging / "state")
        write_model(staging)  # every process: sharded setups gather the full state dict collectively
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (staging / STATE_FILE).write_text(json.dumps(trainer_state, indent=1))
            (staging / COMPLETE).write_text("")  # last: the folder is whole
            if final.exists():  # a re-run of the same step replaces the old one whole
                remove_checkpoint(final)
            os.replace(staging, final)
    except Exception as err:
        if not disk_full(err):
            raise
        shutil.rmtree(staging, ignore_errors=True)  # give the space back; the earlier checkpoints are untouched
        raise no_space_error(output_dir, final.name) from err
    accelerator.wait_for_everyone()
    return final


def remove_checkpoint(folder: Path) -> None:
    """Delete a checkpoint, its completion marker first: killed halfway, it is no longer complete."""
    (folder / COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def rotate(output_dir: str | Path, keep: int) -> None:
    """Delete the oldest complete checkpoints beyond `keep` (0 keeps all)."""
    if keep <= 0:
        return
    for old in checkpoint_dirs(output_dir)[:-keep]:
        remove_checkpoint(old)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


# ---- training state without pickle -------------------------------------------------------------------------
def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: torch.nn.Module, folder: Path) -> None:
    save_file({name: p.detach().contiguous().cpu() for name, p in trainable_parameters(model).items()},
              str(folder / TRAINABLE))


def load_trainable(model: torch.nn.Module, folder: Path) -> None:
    saved = load_file(str(folder / TRAINABLE))
    params = trainable_parameters(model)
    if saved.keys() != params.keys() or any(saved[n].shape != p.shape for n, p in params.items()):
        missing, extra = sorted(params.keys() - saved.keys()), sorted(saved.keys() - params.keys())
        raise ZephyrError(f"cannot resume from {folder.parent}: its trainable weights do not match this model "
                          f"(missing {missing[:3]}, unexpected {extra[:3]}, or other shapes)")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])


def save_tensors_dict(state: dict, path: Path) -> None:
    """A state dict of tensors, numbers, strings and containers, read back by `load_tensors_dict`."""
    torch.save(state, path)


def load_tensors_dict(path: Path, map_location=None) -> dict:
    """torch.load with weights_only=True: tensors and plain containers only, a pickle of anything else is refused
    (never executed)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as err:
        raise ZephyrError(f"cannot resume: {path} is not a plain tensor file written by zephyr; refusing to "
                          f"unpickle it ({type(err).__name__}). Delete the checkpoint folder if you do not trust "
                          "it") from None


def save_rng(folder: Path, process_index: int, accelerator_step: int) -> None:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(tensors, str(folder / f"rng_{process_index}.safetensors"))
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    (folder / f"rng_{process_index}.json").write_text(json.dumps({
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "accelerator_step": accelerator_step}))


def load_rng(folder: Path, process_index: int) -> int:
    """Restore this process's RNG states; returns the accelerator's micro-batch counter."""
    tensors = load_file(str(folder / f"rng_{process_index}.safetensors"))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    saved = json.loads((folder / f"rng_{process_index}.json").read_text())
    py_version, py_state, py_gauss = saved["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = saved["numpy"]
    np.random.set_state((np_name, np.array(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_gauss))
    return int(saved["accelerator_step"])
