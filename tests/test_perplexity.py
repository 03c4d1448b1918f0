"""Perplexity: hand-computed values, and transformers' own loss as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zephyr.perplexity import hf_perplexity, load_eval_text, nll_sum, windows


def test_nll_sum_by_hand():
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]))
    # targets after the first token: 1 (p=0.25 at position 0), 2 (p=0.8 at position 1)
    assert math.isclose(nll_sum(logits, [0, 1, 2]), -math.log(0.25) - math.log(0.8), rel_tol=1e-12)


def test_windows_prefix_bos_and_cap():
    chunks = windows([7, 1, 2, 3, 4, 5, 6, 8, 9], window=4, bos_id=7, max_tokens=7)
    assert chunks == [[7, 1, 2, 3], [7, 4, 5, 6], [7, 8]]  # BOS dropped from the body, re-added per window
    assert windows([1, 2, 3, 4, 5], window=2, bos_id=None, max_tokens=100) == [[1, 2], [3, 4]]  # 1-token tail dropped


def test_hf_perplexity_equals_exp_of_transformers_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama")).eval()
    chunks = [[1, 40, 41, 42, 43, 44], [1, 50, 51, 52]]
    with torch.no_grad():
        losses = [model(torch.tensor([c]), labels=torch.tensor([c])).loss.item() for c in chunks]
    expected = math.exp((losses[0] * 5 + losses[1] * 3) / 8)  # token-weighted mean over both windows
    assert math.isclose(hf_perplexity(model, chunks), expected, rel_tol=1e-5)


def test_eval_text_from_conversations(tmp_path):
    path = tmp_path / "held.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n')
    assert load_eval_text(path, "zephyr", "</s>") == "<|user|>\nHi</s>\n<|assistant|>\nYo</s>\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n')
    try:
        load_eval_text(bad, "zephyr", "</s>")
    except Exception as err:  # DataError naming file and line
        assert "bad.jsonl:2" in str(err)
    else:
        raise AssertionError("a broken line must be reported")


def test_checkpoint_template_renders_through_the_tokenizer(tiny_model_dir, tmp_path):
    """A checkpoint with its own template (Llama-2 [INST]) is measured on text in that template."""
    from tests.test_models import LLAMA2_TEMPLATE, checkpoint_with_template
    from zephyr.models import ModelConfig, load_tokenizer

    config = ModelConfig(model=str(checkpoint_with_template(tiny_model_dir, tmp_path / "ckpt", LLAMA2_TEMPLATE)))
    tokenizer = load_tokenizer(config)
    path = tmp_path / "held_out.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n')
    assert load_eval_text(path, config.chat_template, "</s>", tokenizer) == "<s>[INST] Hi [/INST] Yo </s>"
    with pytest.raises(ValueError, match="needs its tokenizer"):
        load_eval_text(path, config.chat_template, "</s>")
