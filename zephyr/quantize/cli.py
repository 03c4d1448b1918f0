"""`zephyr quantize gguf|awq [MODEL]`: write a quantized model, check it, and record it on the model card."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..cli import dispatch
from ..chat_template import TEMPLATE_HELP
from ..config import field, parse_args
from ..errors import ConfigError


@dataclasses.dataclass
class CheckConfig:
    model: str = field("embedded", help="checkpoint folder to quantize, or 'embedded' (google/gemma-3-270m)")
    output_dir: str = field("", help="where the quantized model goes (default: ./<model name>-<format>)")
    chat_template: str = field("auto", help=TEMPLATE_HELP)
    eval_text: str = field("", help="held-out text for perplexity: .txt, or .jsonl with 'messages' "
                                    "(default: zephyr/demo_data/sft_test.jsonl)")
    window: int = field(256, help="perplexity window in tokens")
    eval_tokens: int = field(2048, help="held-out tokens scored at most")
    check: bool = field(True, help="reload, generate and measure perplexity after writing")
    update_model_card: bool = field(True, help="also add the 'Quantized versions' section to MODEL/README.md")


@dataclasses.dataclass
class GgufConfig(CheckConfig):
    """Write a GGUF file for llama.cpp (llama.cpp's converter and quantizer), checked by perplexity."""

    type: str = field("q4_k_m", help="f16, bf16, f32, q8_0, or one made by llama.cpp's quantizer: q2_k, q3_k_s, "
                                     "q3_k_m, q3_k_l, q4_0, q4_k_s, q4_k_m, q5_0, q5_k_s, q5_k_m, q6_k")
    threads: int = field(0, help="CPU threads for quantizing and checking (0: all)")
    imatrix: str = field("", help="importance matrix for the quantizer (matters most below 4 bits): a file from "
                                  "llama.cpp's llama-imatrix (.gguf or .dat), or calibration text (.txt, or "
                                  ".jsonl with 'messages') that zephyr computes one from")
    imatrix_tokens: int = field(8192, help="calibration tokens used to compute an importance matrix")


@dataclasses.dataclass
class AwqConfig(CheckConfig):
    """Write a 4-bit weight-only AWQ checkpoint (compressed-tensors format), checked by perplexity."""

    method = "awq"

    calibration: str = field("", help="calibration conversations (.jsonl with 'messages') or text (.txt) "
                                      "(default: zephyr/demo_data/sft_train.jsonl)")
    num_samples: int = field(64, help="calibration samples")
    max_seq_length: int = field(512, help="calibration sample length in tokens")
    group_size: int = field(32, help="weights sharing one scale: 32 keeps far more quality on small models "
                                     "(gemma-3-270m: AWQ +26% perplexity at 32, +54% at 128); 128 is the "
                                     "zephyr-7B-beta-AWQ card's")
    symmetric: bool = field(True, help="symmetric 4-bit (no zero point); asymmetric checkpoints do not load "
                                       "in zephyr's transformers (docs/serving.md)")
    ignore: list[str] = field([], help="Linear layers kept unquantized besides the LM head: module names or "
                                       "'re:' patterns, e.g. 're:.*layers\\.0\\..*' (the first decoder layer)")
    setup_only: bool = field(False, help="only create the llm-compressor environment (~/.cache/zephyr/engines)")

    @property
    def modifiers(self) -> str:
        """llm-compressor modifiers the worker runs (zephyr/quantize/awq_worker.py)."""
        return self.method


@dataclasses.dataclass
class GptqConfig(AwqConfig):
    """Write a 4-bit weight-only GPTQ checkpoint (compressed-tensors format), checked by perplexity."""

    method = "gptq"

    awq_scaling: bool = field(False, help="rescale channels with AWQ first, then round with GPTQ (slower: AWQ's "
                                          "grid search; gemma-3-270m g32: +10.8% perplexity, GPTQ alone +13.3%)")

    @property
    def modifiers(self) -> str:
        return "awq+gptq" if self.awq_scaling else self.method


def model_folder(model: str) -> Path:
    from ..models import resolve

    where, gguf_file = resolve(model)
    if gguf_file or not Path(where).is_dir():
        raise ConfigError(f"field 'model': {model} is not a local checkpoint folder (a hub id must be downloaded "
                          "first; a LoRA adapter merged with `zephyr export`)")
    return Path(where)


def model_name(model: str, folder: Path) -> str:
    return "gemma-3-270m" if model == "embedded" else folder.name


def record(config: CheckConfig, folder: Path, output_dir: Path, rows: list[dict], eval_description: str) -> None:
    from .card import table, update_card

    update_card(output_dir, rows, eval_description)
    print("\n" + table(rows) + "\n")
    embedded_cache = config.model == "embedded"
    if config.update_model_card and not embedded_cache:
        update_card(folder, rows, eval_description)
        print(f"zephyr quantize: {folder / 'README.md'} lists this version under 'Quantized versions'")


def run_gguf(argv: list[str]) -> int:
    from .check import check_gguf, engine_label, eval_set, reference_perplexity, row
    from .gguf import write_gguf

    config = parse_args(GgufConfig, argv, prog="zephyr quantize gguf", positional="model")
    if config.imatrix and not Path(config.imatrix).is_file():
        raise ConfigError(f"--imatrix: {config.imatrix} is not a file")
    if config.imatrix_tokens <= 0:
        raise ConfigError(f"--imatrix_tokens: must be positive, got {config.imatrix_tokens}")
    folder = model_folder(config.model)
    name = model_name(config.model, folder)
    output_dir = Path(config.output_dir or f"{name}-gguf")
    print(f"zephyr quantize: {folder} -> GGUF {config.type} in {output_dir}", file=sys.stderr, flush=True)
    path, template = write_gguf(folder, output_dir, config.type, config.chat_template, name, config.threads,
                                config.imatrix or None, config.imatrix_tokens)
    print(f"zephyr quantize: wrote {path} ({path.stat().st_size / 2**20:.1f} MB, chat template {template})")
    if not config.check:
        return 0
    from ..models import ModelConfig, load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(model=str(folder), chat_template=template))
    evaluation = eval_set(tokenizer, template, config.eval_text or None, config.window, config.eval_tokens)
    reference = reference_perplexity(folder, template, evaluation)
    perplexity, sample = check_gguf(path, evaluation, config.threads)
    print(f"zephyr quantize: llama.cpp reloaded {path.name}; its reply to a sample question: {sample!r}")
    version = f"gguf-{config.type}" + ("-imatrix" if config.imatrix else "")
    rows = [row(version, path, perplexity, reference, engine_label("llama_cpp_python", "llama.cpp"))]
    record(config, folder, output_dir, rows, evaluation.description)
    return 0


def run_awq(argv: list[str], config_class: type = AwqConfig) -> int:
    from .awq import run

    config = parse_args(config_class, argv, prog=f"zephyr quantize {config_class.method}", positional="model")
    if config.group_size <= 0:
        raise ConfigError(f"--group_size: must be positive, got {config.group_size}")
    if config.setup_only:
        from ..cache import LLM_COMPRESSOR, ensure

        print(f"zephyr quantize: llm-compressor environment ready: {ensure(LLM_COMPRESSOR)}")
        return 0
    folder = model_folder(config.model)
    name = model_name(config.model, folder)
    output_dir = Path(config.output_dir or f"{name}-{config.method}")
    rows, description = run(config, folder, output_dir)
    if rows:
        record(config, folder, output_dir, rows, description)
    return 0


FORMATS = {
    "gguf": (run_gguf, "[MODEL]  " + GgufConfig.__doc__.splitlines()[0]),
    "awq": (run_awq, "[MODEL]  " + AwqConfig.__doc__.splitlines()[0]),
    "gptq": (lambda argv: run_awq(argv, GptqConfig), "[MODEL]  " + GptqConfig.__doc__.splitlines()[0]),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(FORMATS, argv, prog="zephyr quantize")
