"""Runs inside the llm-compressor environment (see zephyr/cache.py): AWQ or GPTQ calibration, then a
compressed-tensors save.

`python -m zephyr.quantize.awq_worker JOB.json`, where JOB names the model folder, the output folder, the
calibration texts, the method ("awq", "gptq", "awq+gptq", or "rtn": round-to-nearest, no calibration, for
comparison), the scheme (group size, symmetric or not, the weight observer), and the layers kept unquantized
("ignore": module names or "re:" patterns, added to the LM head). Imports nothing else of zephyr, so it runs
against that environment's own transformers.

Only the decoder's Linear layers are quantized: the embeddings are not Linear, and the LM head (tied to the
embeddings in Gemma) is ignored explicitly, as the AWQ and GPTQ papers and vLLM's kernels expect.
"""

from __future__ import annotations

import json
import sys
import time


def allow_cpu_only() -> None:
    """llm-compressor 0.14 pins calibration activations with `pin_memory()`, which raises when no
    accelerator exists; pinning only speeds host-to-device copies, so on a CPU-only machine it is skipped."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if not torch.accelerator.is_available():
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def tolerate_unquantized_balance_layers() -> None:
    """llm-compressor 0.14 keeps an AWQ mapping whose smooth layer is quantized while every layer it balances
    is ignored (`--ignore 're:.*down_proj$'` leaves up_proj -> down_proj), then divides by zero averaging the
    quantized balance layers' weights. With nothing quantized to balance, a flat mean is right: every scale
    in the search then gives the same loss, so the first (all ones, no rescaling) is kept."""
    import torch
    from llmcompressor.modifiers.transform.awq.base import AWQModifier
    from llmcompressor.utils import get_high_precision

    layer_means = AWQModifier._compute_layer_means

    def means_or_flat(layers):
        if any(getattr(getattr(layer, "quantization_scheme", None), "weights", None) for layer in layers):
            return layer_means(layers)
        return torch.ones(layers[0].weight.shape[1], dtype=get_high_precision())

    AWQModifier._compute_layer_means = staticmethod(means_or_flat)


def recipe(job: dict) -> list:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    weights = QuantizationArgs(num_bits=4, type="int", symmetric=job["symmetric"], strategy="group",
                               group_size=job["group_size"], observer=job.get("observer") or None)
    quantization = dict(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
                        ignore=["lm_head", *job.get("ignore", [])])
    method = job.get("method", "awq")
    if method == "gptq":
        return [GPTQModifier(**quantization, dampening_frac=0.01)]
    if method == "rtn":
        return [QuantizationModifier(**quantization)]
    if method == "awq+gptq":  # AWQ's channel rescaling, then GPTQ's Hessian-guided rounding of the result
        return [AWQModifier(duo_scaling=job.get("duo_scaling", True)),
                GPTQModifier(**quantization, dampening_frac=0.01)]
    # AWQ only rescales channels; the QuantizationModifier after it rounds the rescaled weights
    return [AWQModifier(duo_scaling=job.get("duo_scaling", True)), QuantizationModifier(**quantization)]


def quantize(job: dict) -> None:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    allow_cpu_only()
    tolerate_unquantized_balance_layers()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    rows = [dict(tokenizer(text, truncation=True, max_length=job["max_seq_length"], add_special_tokens=True))
            for text in job["texts"]]
    started = time.time()
    oneshot(model=model, dataset=Dataset.from_list(rows), recipe=recipe(job), max_seq_length=job["max_seq_length"],
            num_calibration_samples=len(rows))
    model.save_pretrained(job["output"], save_compressed=True)
    print(json.dumps({"seconds": time.time() - started, "samples": len(rows)}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        quantize(json.load(handle))
