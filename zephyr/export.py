"""`zephyr export OUTPUT_DIR --model RUN_DIR --merge_lora`: a plain safetensors checkpoint anyone can load.

A LoRA run saves only its adapter; peft's `merge_and_unload` folds W + (alpha/r)·B·A into the base weights,
and the result is written with the tokenizer and zephyr's chat template (so `zephyr serve`, vLLM and
llama.cpp's converter all render prompts the way training did). The run's model card comes along.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

from .chat_template import TEMPLATE_HELP
from .config import field, parse_args
from .errors import ConfigError

COPIED = ("README.md", "quantization.json")


@dataclasses.dataclass
class ExportConfig:
    """Merge a LoRA adapter into its base (or re-save a full checkpoint) as plain safetensors + tokenizer."""

    output_dir: str = field(help="where the merged checkpoint is written")
    model: str = field(help="the trained run's folder: a LoRA adapter (adapter_config.json) or a full checkpoint")
    merge_lora: bool = field(False, help="merge the adapter's weights into its base model")
    base_model: str = field("", help="base model of the adapter (default: the one recorded in adapter_config.json)")
    chat_template: str = field("auto", help=TEMPLATE_HELP)
    dtype: str = field("auto", help="weights dtype written: auto (the base's), float32, bfloat16, float16")


def is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def export(config: ExportConfig) -> Path:
    from .models import ModelConfig, load_model, load_tokenizer

    source, output = Path(config.model), Path(config.output_dir)
    if not source.is_dir():
        raise ConfigError(f"--model: {source} is not a folder")
    if output.resolve() == source.resolve():
        raise ConfigError("--output_dir: must differ from the model folder")
    adapter = is_adapter(source)
    if adapter and not config.merge_lora:
        raise ConfigError(f"{source} holds a LoRA adapter: pass --merge_lora to fold it into its base model")
    if adapter:
        recorded = json.loads((source / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = config.base_model or recorded
        if not base:
            raise ConfigError(f"{source}/adapter_config.json names no base model: pass --base_model")
    else:
        base = str(source)
    # the run's tokenizer (it may have gained chat tokens) when saved with the adapter, else the base's
    tokenizer_config = ModelConfig(model=str(source) if (source / "tokenizer_config.json").is_file() else base,
                                   chat_template=config.chat_template)
    tokenizer = load_tokenizer(tokenizer_config)  # resolves "auto" to the template it carries
    template = tokenizer_config.chat_template
    # merge in float32 (B·A added to W without rounding), then write in the base's own dtype unless told
    model = load_model(ModelConfig(model=base, chat_template=template, dtype="float32"), tokenizer)
    if adapter:
        from peft import PeftModel

        print(f"zephyr export: merging the LoRA adapter {source} into {base}", file=sys.stderr, flush=True)
        model = PeftModel.from_pretrained(model, str(source)).merge_and_unload()
    model = model.to(save_dtype(base, config.dtype))
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    for name in COPIED:
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)
    print(f"zephyr export: wrote {output} (safetensors, tokenizer, chat template {template})")
    return output


def save_dtype(base: str, requested: str):
    import torch
    from transformers import AutoConfig

    from .models import resolve, resolve_dtype

    if requested != "auto":
        return resolve_dtype(requested)
    where, _ = resolve(base)
    recorded = getattr(AutoConfig.from_pretrained(where), "dtype", None)
    if isinstance(recorded, str):
        recorded = getattr(torch, recorded, None)
    return recorded if isinstance(recorded, torch.dtype) else torch.float32


def main(argv: list[str] | None = None) -> int:
    export(parse_args(ExportConfig, argv, prog="zephyr export", positional="output_dir"))
    return 0
