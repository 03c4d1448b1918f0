"""Reference log-probs: LoRA with the adapter off is the base model; the precomputed cache equals computing on
the fly, is keyed by data and weights, and is read back without running any model."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from zephyr.dpo.layout import collate
from zephyr.dpo.loss_metrics import pair_outputs
from zephyr.dpo.losses import LossConfig
from zephyr.dpo.reference import (attach, cache_key, load_cached, precompute, reference_logps,
                                  weights_fingerprint)
from zephyr.dpo.tokenize import tokenize_pairs


@pytest.fixture
def tokenized(tokenizer, pairs):
    return tokenize_pairs(pairs, tokenizer, "zephyr")[0]


def test_adapter_off_is_the_base_model(tiny_model_dir, tokenized):
    folder = tiny_model_dir("llama")
    base = AutoModelForCausalLM.from_pretrained(folder)
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(folder),
                            LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained-looking adapter (B is zero at init)
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    batch = collate(tokenized, "shared", 3)
    off = reference_logps(policy, batch, adapter_off=True)
    on = reference_logps(policy, batch)
    expected = reference_logps(base, batch)
    for got, want in zip(off, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-6)
    assert (on[0] - expected[0]).abs().max() > 1e-3  # and the adapter does change the policy


def test_precomputed_equals_on_the_fly_and_is_reused(tiny_model_dir, tokenized, tmp_path):
    folder = tiny_model_dir("mistral")
    ref = AutoModelForCausalLM.from_pretrained(folder)
    key = cache_key(tokenized, weights_fingerprint(folder), "float32")
    table = precompute(ref, tokenized, tmp_path, key, batch_size=3)
    assert table.shape == (len(tokenized), 2) and not table.isnan().any()
    chosen, rejected = reference_logps(ref, collate(tokenized, "padded", 3))
    torch.testing.assert_close(table[:, 0], chosen, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(table[:, 1], rejected, atol=1e-4, rtol=1e-6)
    # a second run reads the file: the "model" here could not compute anything
    torch.testing.assert_close(precompute(object(), tokenized, tmp_path, key), table)
    # metrics with the cached reference equal those with a live frozen copy
    policy = copy.deepcopy(ref)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    live = pair_outputs(policy, collate(tokenized, "shared", 3), LossConfig(), lambda _, b: reference_logps(ref, b))[1]
    cached = pair_outputs(policy, attach(collate(tokenized, "shared", 3), table), LossConfig(), None)[1]
    for name, value in live.means().items():
        assert cached.means()[name] == pytest.approx(value, abs=1e-4)


def test_precompute_killed_midway_resumes_from_its_saved_progress(tiny_model_dir, tokenized, tmp_path,
                                                                    monkeypatch):
    import zephyr.dpo.reference as reference

    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir("mistral"))
    assert len(tokenized) >= 3
    whole = precompute(ref, tokenized, tmp_path / "uninterrupted", "k", batch_size=1)
    real, calls = reference.reference_logps, []

    def dies_on_the_third_batch(model, batch, adapter_off=False):
        calls.append(batch.pairs)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(model, batch, adapter_off)

    monkeypatch.setattr(reference, "reference_logps", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        precompute(ref, tokenized, tmp_path, "k", batch_size=1, save_every_s=0)
    assert not (tmp_path / "k.safetensors").exists() and (tmp_path / "k.partial.safetensors").exists()
    assert load_cached(tmp_path, "k") is None  # a partial table is never served as the cache

    counting = []
    monkeypatch.setattr(reference, "reference_logps", lambda m, b, a=False: counting.append(b.pairs) or real(m, b, a))
    table = precompute(ref, tokenized, tmp_path, "k", batch_size=1, save_every_s=0)
    assert sum(counting) == len(tokenized) - 2  # the two pairs saved before the kill are not redone
    torch.testing.assert_close(table, whole)
    assert (tmp_path / "k.safetensors").exists() and not (tmp_path / "k.partial.safetensors").exists()


def test_cache_key_covers_data_weights_and_dtype(tiny_model_dir, tokenized, tmp_path):
    folder = tiny_model_dir("mistral")
    fp = weights_fingerprint(folder)
    key = cache_key(tokenized, fp, "float32")
    assert cache_key(tokenized, fp, "float32") == key
    assert cache_key(tokenized[:-1], fp, "float32") != key
    assert cache_key(tokenized, fp, "bfloat16") != key
    changed = copy.deepcopy(tokenized)
    changed[0].chosen = changed[0].chosen[:-1]
    assert cache_key(changed, fp, "float32") != key
    other = tiny_model_dir("llama")
    assert weights_fingerprint(other) != fp
    assert load_cached(tmp_path, key) is None
