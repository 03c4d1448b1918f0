"""Metric sinks: one JSON object per line in output_dir/metrics.jsonl, and tensorboard when it is installed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, output_dir: str | Path, report_to: list[str], enabled: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled and "jsonl" in report_to
        self.writer = None
        if enabled and "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except ImportError:  # optional: tensorboard is not a dependency
                self.writer = None

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
        if self.writer is not None:
            prefix = "eval" if any(k.startswith("eval_") for k in record) else "train"
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                    name = key[5:] if key.startswith("eval_") else key
                    self.writer.add_scalar(f"{prefix}/{name}", value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
