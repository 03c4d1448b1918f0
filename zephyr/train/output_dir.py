"""A training run's output folder: one run at a time, and never another run's leftovers.

`claim(folder, recipe, resume, overwrite)` (the main process of every training command calls it before writing
anything; `output_folder(cfg)` is the same as a context manager for a whole stage):

- takes the folder's lock, `.zephyr-lock` (pid, host and start time of the holder, JSON). A lock whose holder is
  alive refuses the second run; one left by a process that has died is taken over. A holder on another host
  cannot be checked, so it is refused, naming the file to delete once that run is known to be gone. The same
  process may claim a folder it holds again (a stage, then its trainer); the last release deletes the file.
- makes sure the folder holds nothing of another run. An empty (or new) folder is used as it is; one holding
  files but no zephyr run (no recipe.yaml) is refused whatever the flags, as zephyr deletes only what it wrote.
  `overwrite` (--overwrite_output_dir) empties a run's folder first. Otherwise the folder's recipe.yaml (written here at the
  start of every run, and beside every saved model) must match this run's in every field that changes the
  trained weights, or the run is refused with the differences listed; without `resume` a folder that already
  holds checkpoints of the same settings is refused too (continue it with --resume, or start over with
  --overwrite_output_dir), so a new run never mixes with an old run's checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import ConfigError
from .checkpoint import PREFIX, checkpoint_dirs, latest_checkpoint

LOCK = ".zephyr-lock"
RECIPE = "recipe.yaml"
# settings that do not change the trained weights: they may differ between a run and its resumption
NOT_RESULT = frozenset({"output_dir", "resume", "overwrite_output_dir", "logging_steps", "eval_steps", "save_steps",
                        "save_total_limit", "report_to", "progress_bar", "hub_model_id", "ref_cache_dir"})

_held: dict[Path, int] = {}  # folders whose lock this process holds -> number of claims


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has finished


def alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    now = process_start(pid)
    if Path("/proc/self/stat").exists() and now is None:
        return False  # a zombie
    return start is None or now is None or now == start


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[int | None]:
    """The lock file open and flock'ed (a short critical section between processes checking it at once); None
    when the file was replaced meanwhile (retry)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - no flock (Windows): the pid check alone
            pass
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        yield fd if same else None
    finally:
        os.close(fd)


def _read(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode("utf-8", "replace")
    try:
        holder = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


class RunLock:
    """The lock on one output folder (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve()
        self.path = self.folder / LOCK

    def acquire(self) -> bool:
        """Take the lock; False when this process already held it (nothing to prepare again)."""
        if self.folder in _held:
            _held[self.folder] += 1
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        me = _me()
        while True:
            with _flocked(self.path) as fd:
                if fd is None:
                    continue
                holder = _read(fd)
                if holder is not None and not self._stale(holder, me):
                    raise ConfigError(
                        f"--output_dir: {self.folder} is in use by another run (pid {holder['pid']} on "
                        f"{holder.get('host', '?')}, since {holder.get('since', '?')}); wait for it to finish or "
                        f"choose another --output_dir" + (
                            "" if holder.get("host") == me["host"] else
                            f". If no run is using it any more, delete {self.path}"))
                if holder is not None:
                    print(f"zephyr: taking over the lock of {self.folder} left by pid {holder['pid']}, which has "
                          "ended", flush=True)
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps(me).encode())
                os.fsync(fd)
                _held[self.folder] = 1
                return True

    @staticmethod
    def _stale(holder: dict[str, Any], me: dict[str, Any]) -> bool:
        if holder.get("host") != me["host"]:
            return False  # cannot be checked from here
        if holder["pid"] == me["pid"]:
            return True  # an earlier claim of this process that was never released
        return not alive(holder["pid"], holder.get("start"))

    def release(self) -> None:
        count = _held.get(self.folder, 0)
        if count > 1:
            _held[self.folder] = count - 1
            return
        if not count:
            return
        del _held[self.folder]
        if not self.path.exists():
            return
        with _flocked(self.path) as fd:
            holder = _read(fd) if fd is not None else None
            if holder is not None and holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname():
                os.unlink(self.path)


def saved_recipe(folder: Path) -> dict[str, Any] | None:
    """The recipe of the run a folder holds: its recipe.yaml, else its newest checkpoint's (complete or not)."""
    checkpoints = sorted(folder.glob(f"{PREFIX}*/{RECIPE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in (folder / RECIPE, *checkpoints):
        if path.is_file():
            try:
                recipe = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue
            if isinstance(recipe, dict):
                return recipe
    return None


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`field: saved -> current` for every field that changes the trained weights and differs."""
    missing = "(not set)"
    return [f"{key}: {saved.get(key, missing)!r} -> {current.get(key, missing)!r}"
            for key in sorted(saved.keys() | current.keys())
            if key not in NOT_RESULT and saved.get(key, missing) != current.get(key, missing)]


def prepare(folder: Path, recipe: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse, empty or accept the folder for this run (see the module docstring), then write its recipe.yaml."""
    contents = [p for p in folder.iterdir() if p.name != LOCK]
    if contents and saved_recipe(folder) is None:  # never deleted, whatever the flags: it may be anything
        raise ConfigError(f"--output_dir: {folder} is not empty and holds no zephyr run (no {RECIPE}); choose an "
                          "empty or new folder (zephyr does not delete files it did not write)")
    if contents and overwrite:
        print(f"zephyr: --overwrite_output_dir: deleting the {len(contents)} entries of {folder}", flush=True)
        for path in contents:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        contents = []
    if contents:
        changed = differences(saved_recipe(folder), recipe)
        if changed:
            raise ConfigError(f"--output_dir: {folder} holds a run with other settings ({'; '.join(changed)}); "
                              f"{'--resume continues only the same run; ' if resume else ''}pass "
                              "--overwrite_output_dir to replace it, or choose another --output_dir")
        if not resume and checkpoint_dirs(folder):
            raise ConfigError(f"--output_dir: {folder} already holds {latest_checkpoint(folder).name} of this run; "
                              "pass --resume to continue it, or --overwrite_output_dir to start over")
    (folder / RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False))


def claim(folder: str | Path, recipe: dict[str, Any], resume: bool, overwrite: bool) -> RunLock:
    """Lock `folder` for this run and make it fit (see the module docstring); release() the returned lock."""
    lock = RunLock(folder)
    if lock.acquire():
        try:
            prepare(lock.folder, recipe, resume, overwrite)
        except BaseException:
            lock.release()
            raise
    return lock


def is_main_process() -> bool:
    """Rank 0 of a launch (torchrun, accelerate launch, deepspeed set RANK), without starting a process group."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def output_folder(cfg) -> Iterator[None]:
    """A stage's hold on its `cfg.output_dir` for its whole run (checked before any data or model loads)."""
    lock = claim(cfg.output_dir, dataclasses.asdict(cfg), cfg.resume, cfg.overwrite_output_dir) \
        if is_main_process() else None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
