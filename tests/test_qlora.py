"""QLoRA (`--load_in_4bit`): a LoRA adapter trained on a 4-bit NF4 base, exported merged as plain weights.

Runs on CPU with bitsandbytes' PyTorch fallback; skipped where bitsandbytes cannot be imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zephyr.errors import ConfigError
from zephyr.models import LoraModelConfig, ModelConfig, load_model
from tests.fixtures.chat_data import write_chat_splits

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CONVERSATIONS = [
    [{"role": "user", "content": "What is 17 times 23?"}, {"role": "assistant", "content": "It is 391."}],
    [{"role": "user", "content": "Translate good morning into French."}, {"role": "assistant", "content": "bonjour"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."},
     {"role": "assistant", "content": "Leaves fall on the quiet river, the brown fox jumps."}],
]
IDS = [1, 40, 41, 42, 43, 44, 45, 46]


def bitsandbytes():
    return pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes: pip install 'zephyr[qlora]'")


def four_bit_layers(model) -> list:
    """bitsandbytes' 4-bit linear layers (peft's LoRA wrapper around one is also named Linear4bit)."""
    return [m for m in model.modules() if type(m).__module__.startswith("bitsandbytes")
            and type(m).__name__ == "Linear4bit"]


def logits_of(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.float()


@pytest.fixture
def data_dir(tmp_path):
    return write_chat_splits(tmp_path / "data", CONVERSATIONS)


def test_qlora_sft_trains_the_adapter_and_exports_a_plain_merged_model(tiny_model_dir, data_dir, tmp_path):
    bitsandbytes()
    from accelerate.utils import set_seed
    from peft import PeftModel, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from zephyr.config import parse_args
    from zephyr.export import main as export
    from zephyr.models import load_tokenizer
    from zephyr.sft import SFTConfig, run_sft
    from zephyr.train import read_metrics

    base, run = tiny_model_dir("mistral"), tmp_path / "run"
    cfg = parse_args(SFTConfig, [
        "--model", str(base), "--dtype", "float32", "--chat_template", "zephyr", "--use_lora", "true",
        "--load_in_4bit", "true", "--lora_r", "8", "--lora_alpha", "16", "--dataset_mixer",
        json.dumps({str(data_dir): 1.0}), "--dataset_splits", "train", "test", "--output_dir", str(run),
        "--max_seq_length", "64", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2",
        "--max_steps", "4", "--eval_steps", "2", "--logging_steps", "1", "--save_steps", "0",
        "--gradient_checkpointing", "true", "--progress_bar", "false", "--report_to", "jsonl"])
    seen = {}

    def inspect(trainer, event, step):
        layers = four_bit_layers(trainer.model)
        seen["layers"] = len(layers)
        state = layers[0].weight.quant_state
        # CPU bitsandbytes keeps the double-quantized scales' flag as original_nested once it unpacks them
        seen["nf4_double_quant"] = state.quant_type == "nf4" and (state.nested or getattr(state, "original_nested", False))
        seen["compute_dtype"] = layers[0].compute_dtype

    result = run_sft(cfg, callbacks=[inspect])
    assert seen == {"layers": 2 * 7, "nf4_double_quant": True, "compute_dtype": torch.bfloat16}
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert any("eval_loss" in r for r in result.log_history[:-1]), "an evaluation between training steps"

    # the same seed and config give the adapter's initial weights: every trained tensor moved away from them
    set_seed(cfg.seed)
    initial = get_peft_model_state_dict(load_model(cfg, load_tokenizer(cfg), for_training=True))
    trained = load_file(run / "adapter_model.safetensors")
    assert trained.keys() == initial.keys() and len(trained) == 2 * 7 * 2
    assert [k for k in trained if torch.equal(trained[k], initial[k].to(trained[k].dtype))] == []

    # the trained model as it ran: the 4-bit base + the saved adapter
    quantized = PeftModel.from_pretrained(load_model(ModelConfig(model=str(base), dtype="float32",
                                                                 load_in_4bit=True)), str(run)).eval()
    merged_dir = tmp_path / "merged"
    assert export([str(merged_dir), "--model", str(run), "--merge-lora"]) == 0
    config = json.loads((merged_dir / "config.json").read_text())
    assert "quantization_config" not in config and not (merged_dir / "adapter_config.json").exists()
    assert {t.dtype for t in load_file(merged_dir / "model.safetensors").values()} == {torch.float32}
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    assert four_bit_layers(merged) == []
    # The export folds the adapter into the full-precision base weights W; training saw NF4(W) (4 bits per
    # weight, a scale per 64 weights) computed in bf16. That rounding alone moves these logits (|logit| <= 0.6)
    # by up to 0.082 (the 4-bit base vs its fp32 original); merged vs 4-bit + adapter measured 0.082, so
    # atol 0.15. The adapter itself moves them by 0.62, four times the tolerance.
    torch.testing.assert_close(logits_of(merged), logits_of(quantized), atol=0.15, rtol=0)
    assert (logits_of(merged) - logits_of(plain)).abs().max() > 0.3, "the merged adapter must matter"
    generated = merged.generate(torch.tensor([IDS]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, len(IDS) + 4)


def test_qlora_dpo_trains_with_the_adapter_off_as_reference(tiny_model_dir, tmp_path):
    """The dpo-qlora recipe's mode: one 4-bit model, the reference is the same model with its adapter off."""
    bitsandbytes()
    from zephyr.cli import main as zephyr
    from zephyr.train import read_metrics

    out = tmp_path / "dpo"
    mixer = json.dumps({"zephyr/demo_data/pairs_train.jsonl": 1.0})
    assert zephyr(["dpo", "--model", str(tiny_model_dir("mistral")), "--dtype", "float32", "--use_lora", "true",
                   "--load_in_4bit", "true", "--dataset_mixer", mixer, "--test_split_size", "0",
                   "--max_train_samples", "8", "--output_dir", str(out), "--per_device_train_batch_size", "4",
                   "--learning_rate", "1e-3", "--max_steps", "2", "--logging_steps", "1", "--report_to", "jsonl",
                   "--progress_bar", "false", "--gradient_checkpointing", "true"]) == 0
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()


def test_an_evaluation_does_not_cut_the_base_layers_out_of_backward(tiny_model_dir):
    """bitsandbytes repacks 4-bit weights for its CPU inference kernel (no backward) at an eval-mode forward
    on AVX512-BF16 CPUs; a training model must give the same gradients before and after one."""
    bitsandbytes()
    model = load_model(LoraModelConfig(model=str(tiny_model_dir("mistral")), dtype="float32", use_lora=True,
                                       load_in_4bit=True, lora_r=4, lora_alpha=8, lora_dropout=0.0), for_training=True)
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # non-zero B, so the first layer's A gets its gradient through later base layers
            torch.nn.init.normal_(param, std=0.1)
    first_a = next(p for n, p in model.named_parameters() if "layers.0." in n and "lora_A" in n)

    def gradient():
        model.train()
        model.zero_grad()
        ids = torch.tensor([IDS])
        model(ids, labels=ids).loss.backward()
        return first_a.grad.clone()

    before = gradient()
    model.eval()
    logits_of(model)
    torch.testing.assert_close(gradient(), before, atol=0, rtol=0)


def test_4bit_training_needs_lora_and_says_so_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="--use_lora true"):  # a training config refuses it when built
        LoraModelConfig(model=str(tmp_path / "not-there"), load_in_4bit=True, use_lora=False)


def test_missing_bitsandbytes_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    config = LoraModelConfig(model=str(tmp_path / "not-there"), load_in_4bit=True, use_lora=True)
    with pytest.raises(ConfigError, match=r"pip install 'zephyr\[qlora\]'"):
        load_model(config, for_training=True)


def test_dpo_qlora_recipe_is_the_handbook_single_gpu_variant():
    """Values of alignment-handbook recipes/zephyr-7b-beta/dpo/config_qlora.yaml (commit 925acdfe)."""
    from zephyr.config import parse_args
    from zephyr.dpo.config import DPOConfig

    cfg = parse_args(DPOConfig, ["--config", str(RECIPES / "zephyr-7b-beta" / "dpo-qlora.yaml")])
    handbook = {"load_in_4bit": True, "use_lora": True, "lora_r": 128, "lora_alpha": 128, "lora_dropout": 0.05,
                "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "dataset_mixer": {"HuggingFaceH4/ultrafeedback_binarized": 1.0},
                "dataset_splits": ["train_prefs", "test_prefs"], "beta": 0.01, "learning_rate": 5e-6,
                "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "num_train_epochs": 1, "max_length": 1024,
                "max_prompt_length": 512, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8,
                "gradient_accumulation_steps": 4, "gradient_checkpointing": True, "dtype": "bfloat16",
                "low_precision_weights": False,
                "seed": 42, "eval_steps": 100, "save_steps": 100, "save_total_limit": 1, "logging_steps": 10,
                "hub_model_id": "zephyr-7b-dpo-qlora", "output_dir": "data/zephyr-7b-dpo-qlora"}
    assert {key: getattr(cfg, key) for key in handbook} == handbook
    assert cfg.reference_mode() == "adapter"  # one model on one GPU: the reference is the adapter switched off
