"""Runs inside the llm-compressor environment (see zephyr/cache.py): AWQ calibration and a compressed-tensors save.

`python -m zephyr.quantize.awq_worker JOB.json`, where JOB names the model folder, the output folder, the
calibration texts and the scheme. Imports nothing else of zephyr, so it runs against that environment's
own transformers.
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


def quantize(job: dict) -> None:
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    allow_cpu_only()
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    rows = [dict(tokenizer(text, truncation=True, max_length=job["max_seq_length"], add_special_tokens=True))
            for text in job["texts"]]
    weights = QuantizationArgs(num_bits=4, type="int", symmetric=job["symmetric"], strategy="group",
                               group_size=job["group_size"])
    scheme = QuantizationScheme(targets=["Linear"], weights=weights)
    recipe = [AWQModifier(ignore=["lm_head"], config_groups={"group_0": scheme})]
    started = time.time()
    oneshot(model=model, dataset=Dataset.from_list(rows), recipe=recipe, max_seq_length=job["max_seq_length"],
            num_calibration_samples=len(rows))
    model.save_pretrained(job["output"], save_compressed=True)
    print(json.dumps({"seconds": time.time() - started, "samples": len(rows)}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        quantize(json.load(handle))
