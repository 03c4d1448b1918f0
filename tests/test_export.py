"""`zephyr export --merge_lora`: the merged checkpoint computes what base + adapter computed (peft as oracle)."""

from __future__ import annotations

import json

import pytest
import torch

from zephyr.chat_template import JINJA
from zephyr.export import main


@pytest.fixture
def adapter_run(tiny_model_dir, tmp_path):
    """A LoRA 'run' folder: a random non-zero adapter on a tiny Llama, saved with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)  # B != 0
    torch.manual_seed(1)
    peft_model = get_peft_model(model, config)
    run = tmp_path / "run"
    peft_model.save_pretrained(run)
    AutoTokenizer.from_pretrained(base).save_pretrained(run)
    (run / "README.md").write_text("# tiny run\n")
    return base, run


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_merged_checkpoint_matches_base_plus_adapter(adapter_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, run = adapter_run
    out = tmp_path / "merged"
    assert main([str(out), "--model", str(run), "--merge-lora"]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert (out / "README.md").read_text() == "# tiny run\n"
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    ids = [1, 40, 41, 42, 43, 44, 45]
    oracle = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(run)).eval()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    torch.testing.assert_close(logits_of(merged, ids), logits_of(oracle, ids), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(logits_of(merged, ids), logits_of(plain, ids), atol=1e-3), "the adapter must matter"
    assert AutoTokenizer.from_pretrained(out).chat_template == JINJA["zephyr"]


def test_adapter_without_merge_flag_is_refused(adapter_run, tmp_path):
    from zephyr.errors import ConfigError

    with pytest.raises(ConfigError, match="--merge_lora"):
        main([str(tmp_path / "x"), "--model", str(adapter_run[1])])


def test_full_checkpoint_resaved_with_chatml_template(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "plain"
    assert main([str(out), "--model", str(tiny_model_dir("mistral")), "--chat_template", "chatml",
                 "--dtype", "bfloat16"]) == 0
    assert AutoTokenizer.from_pretrained(out).chat_template == JINJA["chatml"]
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
