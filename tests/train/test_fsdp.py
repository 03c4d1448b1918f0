"""FSDP2 really runs: the trainer's `fsdp: true` path (zephyr.train.fsdp, the code an 8-GPU launch runs) over 2 CPU
processes with gloo. SFT and DPO (full weights in fp32 and in the recipes' bf16 compute over fp32 masters, and
LoRA) with 2 processes x half of each step's batch equal 1 process with the whole batch: the same loss at every
step and the same final weights to 1e-5; an SFT run killed after its sharded checkpoint and resumed ends where
the straight run does; the final model is a plain safetensors folder that transformers loads, holding the
trained weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from zephyr.train import fsdp

sys.path.insert(0, str(Path(__file__).parent))
from fsdp_worker import config, dpo_config, losses, trainer  # noqa: E402


def run_two_processes(folder: Path, out: Path, stage: str) -> dict:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", str(Path(__file__).with_name("fsdp_worker.py")),
                           str(folder), str(out), stage], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["processes"] == 2
    return result


def assert_exported(folder: Path, expected: dict[str, torch.Tensor], atol: float = 1e-5,
                    stray: tuple[float, float] | None = None) -> None:
    """`folder` is a plain checkpoint that transformers loads, holding `expected` to `atol`; with
    `stray=(share, bound)`, less than `share` of each tensor's weights may be further off, by at most `bound`."""
    weights = dict(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).named_parameters())
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        if stray is None:
            torch.testing.assert_close(weights[name], value, atol=atol, rtol=0,
                                       msg=lambda detail: f"{folder.name}: {name}: {detail}")
            continue
        gap = (weights[name].detach() - value).abs()
        assert (gap > atol).float().mean() < stray[0], f"{folder.name}: {name}"
        assert gap.max() <= stray[1], f"{folder.name}: {name}"


@pytest.mark.slow
def test_two_sharded_processes_equal_one_process(tmp_path, tiny_model_dir):
    folder = tiny_model_dir("mistral")
    result = run_two_processes(folder, tmp_path, "sft")
    assert result["sharded"]  # every parameter a DTensor split across the 2 processes

    # one process, the same 4 micro-batches per step (2 from each sharded process), no sharding
    single = trainer(folder, config(str(tmp_path / "single"), 4, fsdp=False))
    single_losses = losses(single.train())
    assert len(single_losses) == 4
    assert result["straight"] == pytest.approx(single_losses, abs=1e-5)
    assert result["resumed"] == pytest.approx(single_losses, abs=1e-5)

    expected = {n.removeprefix("model."): p.detach() for n, p in single.model.named_parameters()}
    assert_exported(tmp_path / "straight", expected)
    assert_exported(tmp_path / "resumed", expected)

    # resuming is exact: the same losses and bitwise the same final weights as the uninterrupted sharded run
    assert result["resumed"] == result["straight"]
    straight, resumed = (load_file(tmp_path / name / "model.safetensors") for name in ("straight", "resumed"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    # the resumed run restarted from a sharded checkpoint: one safetensors file per process, the optimizer's
    # hyperparameters in JSON, no pickled DCP metadata
    sharded = tmp_path / "resumed" / "checkpoint-2" / "state" / fsdp.FOLDER
    assert len(list(sharded.glob("*.safetensors"))) == 2 and (sharded / fsdp.PARAM_GROUPS).is_file()
    assert not (sharded / ".metadata").exists() and not list(sharded.glob("*.distcp"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dpo", "dpo-lora", "dpo-bf16"])
def test_two_sharded_processes_train_dpo_as_one_process(tmp_path, tiny_model_dir, variant):
    """dpo-bf16 is the 7B recipes' precision: fp32 master weights, bf16 autocast, policy and reference alike."""
    from zephyr.dpo.train import run_dpo

    folder = tiny_model_dir("llama")
    lora = variant == "dpo-lora"
    result = run_two_processes(folder, tmp_path, variant)
    # one process, the same 2 micro-batches of 2 pairs per step, no sharding
    single = run_dpo(dpo_config(str(folder), str(tmp_path / "single"), 2, lora,
                                "bfloat16" if variant == "dpo-bf16" else "float32"))
    assert len(result["losses"]) == 2
    # in bf16 the second step's loss reads weights that Adam moved by a near-zero gradient's sign (see below)
    # and products rounded to bf16, so it may differ by a few 1e-5; fp32 agrees to 1e-5
    tolerance = 5e-5 if variant == "dpo-bf16" else 1e-5
    assert result["losses"] == pytest.approx(losses(single.result), abs=tolerance)
    if lora:  # the adapter alone, as without FSDP
        trained = load_file(tmp_path / "single" / "adapter_model.safetensors")
        sharded = load_file(tmp_path / "dpo" / "adapter_model.safetensors")
        assert sharded.keys() == trained.keys() and trained
        for name, value in trained.items():
            torch.testing.assert_close(sharded[name], value, atol=1e-5, rtol=0, msg=name)
        assert any(name.endswith("lora_B.weight") and value.abs().max() > 0 for name, value in trained.items())
        return
    trained = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "single", dtype=torch.float32).named_parameters())
    # Adam divides by sqrt(v): on a weight whose gradient is near zero, the sharded run's other summation order
    # moves it by up to ~1% of one step (each step changes every weight by ~7.5e-4 here); 5e-5 is 7% of a step
    # in bf16 a near-zero gradient can change sign with the summation order, which Adam turns into a whole
    # step the other way: a handful of weights (< 0.1%) may differ, by no more than the two steps taken
    stray = (1e-3, 2 * 7.5e-4 + 1e-4) if variant == "dpo-bf16" else None
    assert_exported(tmp_path / "dpo", {name: p.detach() for name, p in trained.items()}, atol=5e-5, stray=stray)
    assert not torch.equal(trained["lm_head.weight"], dict(
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).named_parameters())["lm_head.weight"])


def test_decoder_layers_are_the_no_split_classes(tiny_model_dir):
    from zephyr.train import TokenScorer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("mistral"), dtype=torch.float32)
    layers = fsdp.decoder_layers(TokenScorer(model))
    assert layers == list(model.model.layers)


def test_parameters_gathered_as_they_are_gradients_reduced_in_fp32():
    policy = fsdp.mixed_precision_policy()
    assert (policy.param_dtype, policy.reduce_dtype) == (None, torch.float32)
