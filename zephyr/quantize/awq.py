"""`zephyr quantize awq`: 4-bit weight-only AWQ with llm-compressor, saved as compressed-tensors.

Why llm-compressor rather than AutoAWQ: AutoAWQ is archived (its last release, 0.2.9, predates Gemma 3 and
transformers 5, and needs triton), while llm-compressor is maintained by the vLLM project and writes the
compressed-tensors format that vLLM serves natively and transformers loads. Its transformers pin clashes
with zephyr's, so it runs in a managed environment (zephyr/cache.py). Symmetric int4, group size 32 by default
(benchmarks/awq_investigation.py: on gemma-3-270m groups of 128 cost twice the perplexity change); zero-point
(asymmetric) checkpoints do not load in zephyr's own transformers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ..perplexity import conversation_texts
from ..errors import DataError, ZephyrError
from ..cache import LLM_COMPRESSOR, ensure

DEMO_CALIBRATION = Path(__file__).resolve().parents[1] / "demo_data" / "sft_train.jsonl"


def calibration_texts(path: str | Path | None, template: str, eos_token: str, limit: int, tokenizer=None) -> list[str]:
    """Conversations (.jsonl with 'messages') rendered with the chat template, or .txt paragraphs."""
    path = Path(path) if path else DEMO_CALIBRATION
    if not path.exists():
        raise DataError("calibration file not found", str(path))
    if path.suffix == ".jsonl":
        texts = conversation_texts(path, template, eos_token, tokenizer)
    else:
        texts = [p.strip() for p in path.read_text().split("\n\n") if p.strip()]
    if not texts:
        raise DataError("no calibration text", str(path))
    return texts[:limit]


def write_compressed(folder: Path, output_dir: Path, tokenizer, texts: list[str], method: str = "awq",
                     group_size: int = 32, symmetric: bool = True, max_seq_length: int = 512,
                     ignore: list[str] | tuple[str, ...] = (), observer: str = "") -> None:
    """Calibrate `method` ("awq", "gptq", "awq+gptq" or "rtn") in the llm-compressor environment and save int4
    compressed-tensors weights to `output_dir`, with `tokenizer` (carrying zephyr's chat template) beside them.
    `ignore`: Linear layers (names or "re:" patterns) kept unquantized besides the LM head; `observer`:
    llm-compressor's weight observer (default min-max)."""
    python = ensure(LLM_COMPRESSOR)
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f"zephyr quantize: {method.upper()} w4 g{group_size} {'symmetric' if symmetric else 'asymmetric'} on "
          f"{len(texts)} calibration samples -> {output_dir}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"model": str(folder), "output": str(output_dir), "texts": texts, "method": method,
                                   "max_seq_length": max_seq_length, "group_size": group_size,
                                   "symmetric": symmetric, "ignore": list(ignore),
                                   "observer": observer or None}))
        result = subprocess.run([str(python), "-m", "zephyr.quantize.awq_worker", str(job)], stdout=subprocess.PIPE,
                                text=True)
    if result.returncode != 0:
        raise ZephyrError(f"{method.upper()} calibration failed (llm-compressor's messages are above); "
                          f"model {folder}")
    tokenizer.save_pretrained(output_dir)  # with zephyr's chat template, as `zephyr serve` renders it
    for name in ("generation_config.json",):
        if (folder / name).exists() and not (output_dir / name).exists():
            (output_dir / name).write_bytes((folder / name).read_bytes())


def run(config, folder: Path, output_dir: Path) -> tuple[list[dict], str]:
    from ..models import ModelConfig, load_tokenizer
    from .check import engine_label, eval_set, reference_perplexity, row

    tokenizer_config = ModelConfig(model=str(folder), chat_template=config.chat_template)
    tokenizer = load_tokenizer(tokenizer_config)
    template = tokenizer_config.chat_template
    texts = calibration_texts(config.calibration or None, template, tokenizer.eos_token or "", config.num_samples,
                              tokenizer)
    method = config.modifiers
    write_compressed(folder, output_dir, tokenizer, texts, method, config.group_size, config.symmetric,
                     config.max_seq_length, config.ignore)
    print(f"zephyr quantize: wrote {output_dir} (compressed-tensors, loads in vLLM and transformers)")
    if not config.check:
        return [], ""
    evaluation = eval_set(tokenizer, template, config.eval_text or None, config.window, config.eval_tokens)
    reference = reference_perplexity(folder, template, evaluation)
    perplexity, sample = check_awq(output_dir, template, evaluation)
    print(f"zephyr quantize: transformers reloaded {output_dir.name}; its reply to a sample question: {sample!r}")
    version = f"{method}-w4-g{config.group_size}{'' if config.symmetric else '-asym'}"
    label = engine_label("compressed-tensors", "transformers + compressed-tensors")
    return [row(version, output_dir, perplexity, reference, label)], evaluation.description


def check_awq(folder: Path, template: str, evaluation) -> tuple[float, str]:
    """Reload with transformers (compressed-tensors decompresses on CPU), generate, and score perplexity."""
    import torch

    from ..chat_template import prompt_ids
    from ..models import ModelConfig, load_model, load_tokenizer
    from ..perplexity import hf_perplexity
    from .check import SAMPLE_QUESTION

    config = ModelConfig(model=str(folder), chat_template=template, dtype="float32")
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer).eval()
    ids = prompt_ids(SAMPLE_QUESTION, tokenizer, template)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    sample = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    return hf_perplexity(model, evaluation.chunks), sample
