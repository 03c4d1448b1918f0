"""Mixed precision (zephyr/train/precision.py): trainable weights are fp32 masters under bf16 compute, so one DPO
step at the cards' learning rate (5e-7) moves the weights as an fp32 step does; bf16 weights round that step
away, which is why they are only used when asked for."""

import json

import pytest
import torch
from safetensors.torch import load_file

from zephyr.cli import main as zephyr
from zephyr.errors import ConfigError
from zephyr.train.precision import master_weights

CARD_LR = 5e-7  # zephyr-7b-beta's DPO learning rate


def two_layers(dtype):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(dtype)
    model[0].requires_grad_(False)  # frozen, like a LoRA base or a reference
    return model


def test_trainable_weights_become_fp32_masters_frozen_ones_stay():
    model = two_layers(torch.bfloat16)
    before = model[1].weight.detach().clone()
    assert master_weights(model, torch.bfloat16) == "bf16"
    assert model[1].weight.dtype == torch.float32 and model[0].weight.dtype == torch.bfloat16
    assert torch.equal(model[1].weight, before.float())  # the upcast is exact
    with pytest.raises(ConfigError, match="loss scaling"):  # fp16 compute without a loss scaler diverges
        master_weights(two_layers(torch.float16), torch.float16)


def test_fp32_compute_needs_no_autocast():
    model = two_layers(torch.float32)
    assert master_weights(model, torch.float32) == "no"
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_low_precision_weights_only_when_asked_and_with_a_warning():
    model = two_layers(torch.bfloat16)
    with pytest.warns(UserWarning, match="rounds away any update smaller than"):
        assert master_weights(model, torch.bfloat16, low_precision_weights=True) == "no"
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def dpo_step(model_dir, out, dtype, *extra):
    mixer = json.dumps({"zephyr/demo_data/pairs_train.jsonl": 1.0, "zephyr/demo_data/pairs_test.jsonl@test": 1.0})
    argv = ["dpo", "--model", str(model_dir), "--dataset_mixer", mixer, "--test_split_size", "0",
            "--max_train_samples", "8", "--max_eval_samples", "4", "--output_dir", str(out), "--dtype", dtype,
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "4", "--max_steps", "1",
            "--learning_rate", str(CARD_LR), "--warmup_ratio", "0", "--report_to", "jsonl",
            "--progress_bar", "false", *extra]
    assert zephyr(argv) == 0
    return {name: t.float() for name, t in load_file(out / "model.safetensors").items()}


@pytest.mark.slow
def test_one_dpo_step_at_the_cards_learning_rate(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("mistral")
    start = load_file(model_dir / "model.safetensors")

    def deltas(weights, start_dtype):  # the step alone: against the start as the run loaded it
        return torch.cat([(weights[n] - start[n].to(start_dtype).float()).flatten() for n in start])

    fp32 = deltas(dpo_step(model_dir, tmp_path / "fp32", "float32"), torch.float32)
    mixed = deltas(dpo_step(model_dir, tmp_path / "mixed", "bfloat16"), torch.bfloat16)
    with pytest.warns(UserWarning, match="low_precision_weights"):
        pure = deltas(dpo_step(model_dir, tmp_path / "pure", "bfloat16", "--low_precision_weights", "true"),
                      torch.bfloat16)

    def moved(d):
        return (d != 0).float().mean().item()

    # AdamW's first step moves each weight by ~lr * sign(gradient): nearly every weight, by about the lr
    assert moved(fp32) > 0.5
    assert moved(mixed) > 0.9 * moved(fp32)
    both = (fp32 != 0) & (mixed != 0)
    assert (fp32[both].sign() == mixed[both].sign()).float().mean() > 0.9  # bf16 compute: same direction
    assert mixed[both].abs().median() == pytest.approx(fp32[both].abs().median().item(), rel=0.05)
    assert fp32[both].abs().median() == pytest.approx(CARD_LR, rel=0.5)
    # bf16 weights: 5e-7 is far below half a bf16 step of a typical weight (~0.02 * 2^-8), so it is rounded away
    assert moved(pure) < 0.05 * moved(fp32)
