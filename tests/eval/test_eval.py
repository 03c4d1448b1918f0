"""The eval command's own checks (each benchmark has its own test file)."""

from __future__ import annotations

import pytest

from zephyr.errors import ConfigError
from zephyr.eval.cli import EvalConfig, run


def test_eval_command_errors():
    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'"):
        run(EvalConfig(benchmark="mmlu"), generate=lambda c, t=None: [])
    with pytest.raises(ConfigError, match="exactly one of --judge"):
        run(EvalConfig(benchmark="mt_bench"), generate=lambda c, t=None: [])
