"""`zephyr quantize gguf`: safetensors checkpoint -> GGUF file for llama.cpp, with zephyr's chat template inside.

f16 and q8_0 come straight from llama.cpp's `convert_hf_to_gguf.py`; the other types (q2_k ... q6_k, the
list TheBloke's GGUF builds carry) are made the way llama.cpp documents: convert to f16, then
`llama_model_quantize` (llama.cpp's own quantizer, called through llama-cpp-python), optionally guided by an
importance matrix (imatrix.py), with the f16 file removed afterwards. No quantisation kernel is written here.
All paths are made absolute first: the converter runs in a scratch folder, not where the user stands.

The converter reads the chat template from the checkpoint's tokenizer files, so the checkpoint is first
staged (weights linked, not copied) with a tokenizer carrying the exact Jinja template zephyr renders with;
llama.cpp then chats with the same prompt format as `zephyr chat` and `zephyr serve`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ZephyrError
from .llama_cpp_source import converter_dir

CONVERTER_TYPES = {"f16", "bf16", "q8_0", "f32"}
# llama.cpp's LLAMA_FTYPE_MOSTLY_* names for the k-quants it makes from an f16 file
QUANTIZER_TYPES = {name: f"LLAMA_FTYPE_MOSTLY_{name.upper()}" for name in (
    "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_k_s", "q4_k_m", "q5_0", "q5_k_s", "q5_k_m", "q6_k")}
GGUF_TYPES = tuple(sorted(CONVERTER_TYPES | set(QUANTIZER_TYPES)))


def stage_checkpoint(model_dir: Path, template: str, staging: Path) -> str:
    """Link the weights and config into `staging`; save the tokenizer with zephyr's template. -> template name."""
    from ..models import ModelConfig, load_tokenizer

    config = ModelConfig(model=str(model_dir), chat_template=template)
    tokenizer = load_tokenizer(config)  # resolves "auto" and installs the Jinja template
    for item in model_dir.iterdir():
        # the tokenizer files are re-saved below; everything else the converter reads is linked as it is
        tokenizer_file = item.name.startswith(("tokenizer", "special_tokens_map", "chat_template"))
        wanted = item.suffix in (".safetensors", ".json") or item.name == "tokenizer.model"
        if item.is_file() and wanted and (not tokenizer_file or item.name == "tokenizer.model"):
            os.symlink(item.resolve(), staging / item.name)  # tokenizer.model: sentencepiece, read directly
    tokenizer.save_pretrained(staging)
    return config.chat_template


def run_converter(model_dir: Path, out_file: Path, outtype: str) -> None:
    source = converter_dir()
    model_dir, out_file = Path(os.path.abspath(model_dir)), Path(os.path.abspath(out_file))
    command = [sys.executable, str(source / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(out_file),
               "--outtype", outtype]
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own vendored gguf-py, which matches it
    result = subprocess.run(command, cwd=out_file.parent, env=env, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not out_file.exists():
        tail = "\n".join(result.stderr.strip().splitlines()[-6:])
        raise ZephyrError(f"llama.cpp's converter failed on {model_dir}:\n{tail}")


def quantize_file(source: Path, out_file: Path, qtype: str, threads: int = 0, imatrix: dict | None = None) -> None:
    import ctypes

    import llama_cpp

    from .imatrix import CImatrix

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[qtype])
    params.nthread = threads or (os.cpu_count() or 1)
    entries = CImatrix(imatrix) if imatrix else None  # kept alive until the call returns
    if entries is not None:
        params.imatrix = entries.array
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(out_file).encode(), ctypes.byref(params))
    if status != 0 or not out_file.exists():
        raise ZephyrError(f"llama.cpp could not quantize {source} to {qtype} (status {status})")


def write_gguf(model_dir: str | Path, output_dir: str | Path, qtype: str, template: str = "auto",
               name: str | None = None, threads: int = 0, imatrix: str | Path | None = None,
               imatrix_tokens: int = 8192) -> tuple[Path, str]:
    """-> (absolute path of the GGUF file, chat template name it carries). `imatrix`: an importance matrix
    file from llama-imatrix (.gguf/.dat), or calibration text (.txt, .jsonl with 'messages') to compute one
    from, over at most `imatrix_tokens` tokens."""
    qtype = qtype.lower()
    if qtype not in GGUF_TYPES:
        raise ZephyrError(f"unknown GGUF type {qtype!r}; choose one of {', '.join(GGUF_TYPES)}")
    if imatrix and qtype not in QUANTIZER_TYPES:
        raise ZephyrError(f"--imatrix guides llama.cpp's quantizer, which {qtype} does not use; choose one of "
                          f"{', '.join(sorted(QUANTIZER_TYPES))}")
    model_dir, output_dir = Path(os.path.abspath(model_dir)), Path(os.path.abspath(output_dir))
    if not (model_dir / "config.json").exists():
        raise ZephyrError(f"{model_dir} is not a checkpoint folder (no config.json); run `zephyr export` first "
                          "for a LoRA adapter")
    output_dir.mkdir(parents=True, exist_ok=True)
    out_file = output_dir / f"{name or model_dir.name}-{qtype}.gguf"
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".staging-") as tmp:
        staging = Path(tmp) / "checkpoint"
        staging.mkdir()
        template = stage_checkpoint(model_dir, template, staging)
        partial = Path(tmp) / out_file.name  # written aside and moved: a crash never leaves a half file
        if qtype in CONVERTER_TYPES:
            run_converter(staging, partial, qtype)
        else:
            f16 = Path(tmp) / "f16.gguf"
            run_converter(staging, f16, "f16")
            importance = importance_matrix(Path(imatrix), model_dir, f16, template, imatrix_tokens) if imatrix \
                else None
            quantize_file(f16, partial, qtype, threads, importance)
        shutil.move(partial, out_file)
    return out_file, template


def importance_matrix(path: Path, model_dir: Path, f16: Path, template: str, max_tokens: int) -> dict:
    from .imatrix import IMATRIX_FILES, compute_imatrix, load_imatrix

    if path.suffix in IMATRIX_FILES:
        return load_imatrix(path)
    from ..models import ModelConfig, load_tokenizer
    from .awq import calibration_texts

    tokenizer = load_tokenizer(ModelConfig(model=str(model_dir), chat_template=template))
    texts = calibration_texts(path, template, tokenizer.eos_token or "", 10**9, tokenizer)
    print(f"zephyr quantize: computing an importance matrix from {path.name} ({max_tokens} tokens at most)",
          file=sys.stderr, flush=True)
    return compute_imatrix(model_dir, texts, f16, max_tokens)
