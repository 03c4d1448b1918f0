"""Metric sinks: our own output_dir/metrics.jsonl, and tensorboard / wandb through accelerate's trackers.

`report_to` names them: jsonl, tensorboard, wandb; `all` is jsonl plus every tracker installed, `none` (or an
empty list) is nothing. `check_report_to` refuses an unknown or uninstalled name, saying what to install, so a
config can fail before any model loads. Trackers get each record's numbers as `train/<key>` or `eval/<key>` at
the record's step; wandb honours its own environment (`WANDB_MODE=offline` keeps the run in output_dir/wandb).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

SINKS = ("jsonl", "tensorboard", "wandb")


def installed(name: str) -> bool:
    """Whether the sink's package can be imported (jsonl needs none)."""
    return name == "jsonl" or importlib.util.find_spec(name) is not None


def check_report_to(values: str | Sequence[str]) -> list[str]:
    """The sinks `values` stands for, in order: `none` -> [], `all` -> jsonl and every installed tracker.
    Raises ConfigError on an unknown name, on `none` mixed with others, and on a tracker that is not installed."""
    names = [values] if isinstance(values, str) else list(values)
    if names in ([], ["none"]):
        return []
    if "none" in names:
        raise ConfigError("--report_to: 'none' cannot be combined with other sinks")
    unknown = [n for n in names if n not in (*SINKS, "all")]
    if unknown:
        raise ConfigError(f"--report_to: unknown {', '.join(map(repr, unknown))}; choose from none, "
                          f"{', '.join(SINKS)}, all (jsonl and every tracker installed)")
    if "all" in names:
        names = [n for n in names if n != "all"] + [n for n in SINKS if installed(n)]
    missing = [n for n in SINKS if n in names and not installed(n)]
    if missing:
        raise ConfigError(f"--report_to: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                          f"installed; pip install {' '.join(missing)} (or pip install \"zephyr[track]\")")
    return list(dict.fromkeys(names))


def start_tracker(name: str, output_dir: Path, run_name: str, config: dict[str, Any] | None):
    """An accelerate tracker writing under output_dir, started and given the run's configuration."""
    from accelerate import PartialState
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    PartialState()  # the trackers log through accelerate's logger, which needs the (process-wide) state
    if name == "tensorboard":
        tracker = TensorBoardTracker("tensorboard", str(output_dir))  # output_dir/tensorboard
    else:
        tracker = WandBTracker(os.environ.get("WANDB_PROJECT", "zephyr"), name=run_name, dir=str(output_dir))
    tracker.start()
    if config:
        tracker.store_init_configuration({k: v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
                                          for k, v in config.items()})
    return tracker


class MetricsLog:
    def __init__(self, output_dir: str | Path, report_to: str | Sequence[str], enabled: bool = True,
                 run_name: str = "", config: dict[str, Any] | None = None):
        sinks = check_report_to(report_to)
        output_dir = Path(output_dir)
        self.path = output_dir / "metrics.jsonl"
        self.enabled = enabled and "jsonl" in sinks
        self.trackers = []
        if enabled and any(name != "jsonl" for name in sinks):
            output_dir.mkdir(parents=True, exist_ok=True)
            run_name = run_name or output_dir.resolve().name
            self.trackers = [start_tracker(name, output_dir, run_name, config) for name in sinks if name != "jsonl"]

    def restart(self, history: list[dict[str, Any]]) -> None:
        """Rewrite the JSONL file from a checkpoint's history, dropping lines logged after that checkpoint."""
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(r) + "\n" for r in history))

    def log(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.trackers:
            prefix = "eval" if any(k.startswith("eval_") for k in record) else "train"
            values = {f"{prefix}/{key[5:] if key.startswith('eval_') else key}": value for key, value in record.items()
                      if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value)}
            for tracker in self.trackers:
                tracker.log(values, step=record["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
