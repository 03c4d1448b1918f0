"""`zephyr dpo --config recipes/.../dpo.yaml [--field value ...]`."""

from __future__ import annotations

from ..config import parse_args
from .config import DPOConfig


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(DPOConfig, argv, prog="zephyr dpo")
    from .train import run_dpo

    run = run_dpo(cfg)
    result = run.result
    print(f"zephyr dpo: {result.global_step} steps, final train loss {result.train_loss}, "
          f"eval {', '.join(f'{k}={v:.4f}' for k, v in result.eval_metrics.items())}; model in {run.output_dir}")
    return 0
