"""`zephyr sft --config recipes/demo/sft.yaml [--field value ...]` (`--help` lists every field)."""

from __future__ import annotations

from ..config import parse_args
from .config import SFTConfig


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(SFTConfig, argv, prog="zephyr sft")
    from .stage import run_sft  # heavy imports only once the arguments are known to be good

    result = run_sft(cfg)
    loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
    evals = ", ".join(f"{k} {v:.4f}" for k, v in result.eval_metrics.items())
    print(f"zephyr sft: done, {result.global_step} steps, train loss {loss}{', ' + evals if evals else ''}; "
          f"model and card in {result.output_dir}")
    return 0
