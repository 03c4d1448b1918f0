"""vLLM (CPU build) in its own virtualenv, managed by zephyr: see docs/serving.md for why."""

from __future__ import annotations

from pathlib import Path

from ..embedded import cache_root


def vllm_home() -> Path:
    return cache_root() / "engines" / "vllm"


def vllm_python() -> Path | None:
    """The managed environment's interpreter, once `zephyr serve --setup vllm` has finished creating it."""
    python = vllm_home() / "bin" / "python"
    return python if python.exists() and (vllm_home() / "READY").exists() else None
