"""Shared fixtures: tiny checkpoints built from a config (no hub), and the reference data folder."""

from __future__ import annotations

import os
from pathlib import Path

# no hub here (and none wanted in tests): fail fast instead of retrying network calls
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.fixtures.tiny import tiny_checkpoint, tiny_tokenizer  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    """A tiny fast BPE tokenizer with <s>, </s>, <|im_start|>, <|im_end|> (adds <s> like Mistral's)."""
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Factory: tiny_model_dir("mistral" | "llama" | "gemma3", hidden=64, layers=2) -> checkpoint folder."""
    made: dict[tuple, Path] = {}

    def make(arch: str = "mistral", hidden: int = 64, layers: int = 2) -> Path:
        key = (arch, hidden, layers)
        if key not in made:
            made[key] = tiny_checkpoint(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), hidden=hidden, layers=layers)
        return made[key]

    return make
