"""Model loading from a local folder built from a config: dtype, pad token, templates, LoRA, bad paths."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from zephyr.chat_template import JINJA
from zephyr.errors import ConfigError
from zephyr.models import (LoraModelConfig, ModelConfig, cpu_has_fast_bf16, load_model, load_tokenizer, resolve,
                           resolve_dtype, template_of)


@pytest.mark.parametrize("arch", ["mistral", "llama", "gemma3"])
def test_load_tiny_model_and_tokenizer(arch, tiny_model_dir):
    config = ModelConfig(model=str(tiny_model_dir(arch)))
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer)
    assert config.chat_template == "zephyr"  # "auto" resolved for a checkpoint without our template
    assert tokenizer.chat_template == JINJA["zephyr"]
    assert model.dtype == resolve_dtype("auto")  # this machine's auto: bf16 where it computes in bf16, else fp32
    assert model.config.pad_token_id == tokenizer.pad_token_id
    logits = model(torch.tensor([[1, 5, 6, 7]])).logits
    assert logits.shape == (1, 4, len(tokenizer))


@pytest.mark.parametrize("native_bf16, expected", [(False, torch.float32), (True, torch.bfloat16)])
def test_auto_dtype_loads_in_what_the_cpu_computes_in(native_bf16, expected, tiny_model_dir, monkeypatch):
    """Both sides of the rule on any machine: the CPU-capability probe is patched, the loader is real."""
    import zephyr.models as models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: native_bf16)
    config = ModelConfig(model=str(tiny_model_dir("llama")))
    model = load_model(config, load_tokenizer(config))
    assert model.dtype == expected
    assert all(p.dtype == expected for p in model.parameters())


def test_auto_template_keeps_the_checkpoints_own(tiny_model_dir, tmp_path):
    config = ModelConfig(model=str(tiny_model_dir("llama")), chat_template="chatml")
    tokenizer = load_tokenizer(config)
    tokenizer.save_pretrained(tmp_path)
    assert template_of(load_tokenizer(ModelConfig(model=str(tmp_path))) ) == "chatml"


def test_chatml_adds_missing_special_tokens_and_resizes(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    base = tiny_model_dir("mistral")
    tokenizer = AutoTokenizer.from_pretrained(base)
    # a base tokenizer that lacks the ChatML tokens, like Gemma's
    plain = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<s>", eos_token="</s>")
    plain.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    config = ModelConfig(model=str(tmp_path), chat_template="chatml")
    tok = load_tokenizer(config)
    assert tok.convert_tokens_to_ids("<|im_end|>") != tok.unk_token_id
    assert len(tok("<|im_end|>", add_special_tokens=False)["input_ids"]) == 1
    model = load_model(config, tok)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)


def test_pad_token_is_set_when_missing(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("mistral"))
    no_pad = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<s>", eos_token="</s>")
    no_pad.save_pretrained(tmp_path)
    assert load_tokenizer(ModelConfig(model=str(tmp_path))).pad_token == "</s>"


def test_lora_wraps_for_training_only(tiny_model_dir):
    config = LoraModelConfig(model=str(tiny_model_dir("llama")), use_lora=True, lora_r=4)
    tokenizer = load_tokenizer(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = load_model(config, tokenizer, for_training=True)
    # peft + transformers 5 raise a deprecation warning inside get_peft_model that no user can act on
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trained.parameters())
    assert 0 < trainable < total / 5
    assert any("lora_A" in name for name, _ in trained.named_parameters())
    plain = load_model(config, tokenizer, for_training=False)
    assert not any("lora_A" in name for name, _ in plain.named_parameters())


def test_freeze_embeddings_leaves_embeddings_and_head_untrained(tiny_model_dir):
    config = LoraModelConfig(model=str(tiny_model_dir("llama")), freeze_embeddings=True)  # untied head
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer, for_training=True)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"model.embed_tokens.weight", "lm_head.weight"}
    # only for training a full model: inference and LoRA loads are untouched
    assert all(p.requires_grad for p in load_model(config, tokenizer).parameters())


def test_freeze_embeddings_refuses_new_tokens_that_must_train(tiny_model_dir):
    config = LoraModelConfig(model=str(tiny_model_dir("llama")), freeze_embeddings=True)
    tokenizer = load_tokenizer(config)
    tokenizer.add_tokens(["<tool_call>", "</tool_call>"])  # rows the model's vocabulary lacks: resized, untrained
    with pytest.raises(ConfigError, match="freeze_embeddings: the tokenizer adds 2 tokens"):
        load_model(config, tokenizer, for_training=True)
    load_model(dataclasses.replace(config, freeze_embeddings=False), tokenizer, for_training=True)


def test_auto_dtype_follows_the_cpus_bf16_support(monkeypatch):
    import zephyr.models as models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: False)
    assert resolve_dtype("auto") == torch.float32
    with pytest.warns(UserWarning, match="emulated and several times slower"):
        assert resolve_dtype("bfloat16") == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: True)
    assert resolve_dtype("auto") == torch.bfloat16


def test_dtypes_and_bad_inputs(tmp_path):
    assert resolve_dtype("bf16") == torch.bfloat16
    fast_bf16 = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_has_fast_bf16()
    assert resolve_dtype("auto") == (torch.bfloat16 if fast_bf16 else torch.float32)
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        resolve_dtype("float8")
    with pytest.raises(ConfigError, match="GGUF file not found"):
        resolve(str(tmp_path / "missing.gguf"))
    stray = tmp_path / "weights.bin"
    stray.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        resolve(str(stray))
    assert resolve("google/gemma-3-270m") == ("google/gemma-3-270m", None)
    with pytest.raises(ConfigError, match="--chat_template: 'llama3' is not one of"):
        ModelConfig(model=str(tmp_path), chat_template="llama3")  # refused before anything loads
    with pytest.raises(ConfigError, match="--dtype: 'int8' is not one of"):
        ModelConfig(dtype="int8")


# Llama-2-chat's template as its checkpoints ship it: [INST] turns, the system prompt folded into the first one
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
TWO_TURNS = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 17 times 23?"},
             {"role": "assistant", "content": "It is 391."}, {"role": "user", "content": "And 17 times 24?"},
             {"role": "assistant", "content": "408."}]


def checkpoint_with_template(tiny_model_dir, folder, template):
    """The tiny llama checkpoint with `template` saved in its tokenizer."""
    from transformers import AutoTokenizer

    base = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((base / name).read_bytes())
    return folder


def test_auto_keeps_a_llama2_template_and_renders_with_it(tiny_model_dir, tmp_path):
    from zephyr.chat_template import end_of_turn, render_ids

    config = ModelConfig(model=str(checkpoint_with_template(tiny_model_dir, tmp_path, LLAMA2_TEMPLATE)))
    tokenizer = load_tokenizer(config)
    assert config.chat_template == "checkpoint" and template_of(tokenizer) == "checkpoint"
    assert tokenizer.chat_template == LLAMA2_TEMPLATE  # not overwritten by the zephyr fallback
    ids, mask = render_ids(TWO_TURNS, tokenizer, config.chat_template)
    assert ids == list(tokenizer.apply_chat_template(TWO_TURNS, tokenize=True, return_dict=True)["input_ids"])
    first_turn = "<s>[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\nWhat is 17 times 23? [/INST]"
    assert tokenizer.decode(ids).startswith(first_turn)
    # the mask is each reply with its end of turn, nothing of the [INST] turns
    assert tokenizer.decode([t for t, m in zip(ids, mask) if m]) == " It is 391. </s> 408. </s>"
    prompt, _ = render_ids(TWO_TURNS[:2], tokenizer, config.chat_template, add_generation_prompt=True)
    assert tokenizer.decode(prompt) == first_turn
    assert end_of_turn(config.chat_template, tokenizer.eos_token) == "</s>"


def test_a_recipes_named_template_replaces_the_checkpoints(tiny_model_dir, tmp_path):
    folder = checkpoint_with_template(tiny_model_dir, tmp_path, LLAMA2_TEMPLATE)
    config = ModelConfig(model=str(folder), chat_template="zephyr")
    assert load_tokenizer(config).chat_template == JINJA["zephyr"] and config.chat_template == "zephyr"


def test_checkpoint_template_needs_a_template(tiny_model_dir):
    with pytest.raises(ValueError, match="carries no chat template"):
        load_tokenizer(ModelConfig(model=str(tiny_model_dir("llama")), chat_template="checkpoint"))


def test_checkpoint_template_that_closes_the_last_turn_differently(tiny_model_dir, tmp_path):
    """A ChatML variant (no BOS) with an EOS after the final reply: an earlier reply's mask stops at its
    <|im_end|>, before the newline and the next turn's header."""
    from zephyr.chat_template import render_ids

    variant = JINJA["chatml"].replace("{{ bos_token }}", "")
    config = ModelConfig(model=str(checkpoint_with_template(tiny_model_dir, tmp_path, variant)))
    tokenizer = load_tokenizer(config)
    assert config.chat_template == "checkpoint"
    ids, mask = render_ids(TWO_TURNS, tokenizer, config.chat_template)
    assert ids == list(tokenizer.apply_chat_template(TWO_TURNS, tokenize=True, return_dict=True)["input_ids"])
    assert tokenizer.decode([t for t, m in zip(ids, mask) if m]) == "It is 391.<|im_end|>408.<|im_end|>\n</s>"


def test_lora_target_modules_that_match_nothing_are_named(tiny_model_dir):
    config = LoraModelConfig(model=str(tiny_model_dir("llama")), use_lora=True, lora_r=4,
                             lora_target_modules=["q_proj", "query_key_value", "dense"])
    with pytest.raises(ConfigError) as err:
        load_model(config, load_tokenizer(config), for_training=True)
    message = str(err.value)
    assert message.startswith("--lora_target_modules: query_key_value, dense match no module of LlamaForCausalLM")
    assert "its linear layers are down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj" in message
    config.lora_target_modules = ["q_proj", "model.layers.0.self_attn.v_proj"]  # names and full paths both match
    assert any("lora_A" in name for name, _ in load_model(config, for_training=True).named_parameters())


@pytest.mark.parametrize("values, message", [
    ({"lora_r": 0}, "--lora_r: the adapter rank must be >= 1, got 0"),
    ({"lora_alpha": -8}, "--lora_alpha: must be > 0"),
    ({"lora_dropout": 1.0}, "--lora_dropout: a probability in [0, 1) is needed, got 1.0"),
    ({"lora_dropout": -0.5}, "--lora_dropout"),
    ({"lora_target_modules": []}, "--lora_target_modules: name the modules"),
    ({"dtype": "int8"}, "--dtype: 'int8' is not one of auto"),
    ({"chat_template": "vicuna"}, "--chat_template: 'vicuna' is not one of"),
])
def test_bad_model_settings(values, message):
    with pytest.raises(ConfigError) as err:
        LoraModelConfig(use_lora=True, **values)
    assert message in str(err.value)


def test_model_paths_that_hold_no_model(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"--model: no such model folder: /no/such/folder \(and not a hub id"):
        load_tokenizer(ModelConfig(model="/no/such/folder"))
    with pytest.raises(ConfigError, match=r"no such model folder: \.\./runs/sft"):
        resolve("../runs/sft")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"the folder .*empty holds no model: no config.json and no tokenizer "
                                          r"\(it is empty\)"):
        load_tokenizer(ModelConfig(model=str(empty)))
    weights_only = tmp_path / "weights_only"
    weights_only.mkdir()
    (weights_only / "config.json").write_text((tiny_model_dir("llama") / "config.json").read_text())
    with pytest.raises(ConfigError, match=r"has no tokenizer \(none of tokenizer.json.*it has config.json\)"):
        load_tokenizer(ModelConfig(model=str(weights_only)))
    tokenizer_only = tmp_path / "tokenizer_only"
    load_tokenizer(ModelConfig(model=str(tiny_model_dir("llama")))).save_pretrained(tokenizer_only)
    with pytest.raises(ConfigError, match=r"tokenizer_only has no config.json .*; it holds no model weights"):
        load_model(ModelConfig(model=str(tokenizer_only)))
    # a name in hub form that is no local folder: the hub's (here: offline) failure says so
    with pytest.raises(ConfigError, match=r"--model: runs/nothing-here is no local folder, and no model of "
                                          r"that name could be loaded from the Hugging Face Hub"):
        load_tokenizer(ModelConfig(model="runs/nothing-here"))
