"""`--engine auto`: the fastest engine installed for the model's format, and why it was chosen.

The load benchmark (benchmarks/serve_load.py, results in benchmarks/results/serve_load.md) has llama.cpp the
fastest engine for GGUF at 1, 4 and 16 clients; for safetensors, vLLM (CPU build, own virtualenv) is ahead of
zephyr's batched decoder on transformers at 1 and 4 clients and behind at 16, and is the engine for GPUs;
transformers is the fallback that is always there. A GGUF file goes to llama.cpp, a safetensors folder to
vLLM when its environment exists, otherwise to transformers.

`zephyr aif`'s pool (`choose_for_pool`) chooses differently, see there.
"""

from __future__ import annotations

import importlib.util

ENGINES = ("auto", "transformers", "llama.cpp", "vllm")


def installed(engine: str) -> bool:
    if engine == "transformers":
        return True
    if engine == "llama.cpp":
        return importlib.util.find_spec("llama_cpp") is not None
    if engine == "vllm":
        from .vllm_engine import vllm_python

        return vllm_python() is not None
    raise ValueError(engine)


def model_format(model: str) -> str:
    return "gguf" if model.endswith(".gguf") else "safetensors"


def choose(model: str, requested: str = "auto") -> tuple[str, str]:
    """-> (engine name, one-line reason)."""
    if requested not in ENGINES:
        raise ValueError(f"unknown engine {requested!r}; choose one of {', '.join(ENGINES)}")
    fmt = model_format(model)
    if requested != "auto":
        if not installed(requested):
            raise ValueError(f"engine {requested!r} is not installed; {install_hint(requested)}")
        if requested == "llama.cpp" and fmt != "gguf":
            raise ValueError("llama.cpp serves .gguf files: make one with `zephyr quantize gguf MODEL_DIR`")
        if requested == "vllm" and fmt == "gguf":
            raise ValueError("vLLM's CPU build does not serve GGUF here; use --engine llama.cpp")
        return requested, "asked for with --engine"
    if fmt == "gguf":
        if installed("llama.cpp"):
            return "llama.cpp", "GGUF file and llama.cpp is installed (fastest for GGUF on CPU)"
        return "transformers", f"GGUF file but llama.cpp is not installed ({install_hint('llama.cpp')}); " \
                               "transformers dequantises it instead (slower)"
    if installed("vllm"):
        return "vllm", "safetensors checkpoint and vLLM's environment exists (best batching)"
    return "transformers", ("safetensors checkpoint; vLLM is not set up (`zephyr serve --setup vllm` creates its "
                            "environment), so zephyr's batched decoder on transformers serves it")


def install_hint(engine: str) -> str:
    return {
        "llama.cpp": "install it with: pip install 'zephyr[gguf]' (see docs/serving.md for the CPU build flags)",
        "vllm": "create its environment with: zephyr serve --setup vllm",
        "transformers": "",
    }[engine]


EMBEDDED = "embedded"


def choose_for_pool(model: str, requested: str = "auto") -> tuple[str, str, str]:
    """-> (engine name, model to load, one-line reason) for an answerer of `zephyr aif`'s pool.

    The pool sends many long prompts at once, so prefill weighs as much as decoding. `auto` there:
      * a GGUF file -> llama.cpp (reads the file as it is), as `choose` does;
      * anything else, `embedded` included -> transformers. benchmarks/results/aif_throughput_quiet*.md
        measured the pool step on the embedded model on transformers' continuous batching at 2.14x plain
        generate with 32 new tokens and 1.73x with 128, on llama.cpp with the same weights from the embedded
        GGUF file at 1.84x and 1.82x: llama.cpp's prefill of long prompts is the slower one on a CPU, so it
        only draws level as replies grow; transformers is also the engine that runs on GPUs.
        vLLM's CPU build is behind transformers at 16 concurrent requests (benchmarks/results/serve_load.md)
        and was seen to crash on tiny models, and a pool runs unattended. llama.cpp and vLLM stay one
        `engine=` away.
    `embedded` with `engine=llama.cpp` loads the embedded model's GGUF file (zephyr/embedded.py): the weights
    transformers loads dequantised.
    """
    if requested not in ENGINES:
        raise ValueError(f"unknown engine {requested!r}; choose one of {', '.join(ENGINES)}")
    if model == EMBEDDED and requested == "llama.cpp":
        if not installed("llama.cpp"):
            raise ValueError(f"engine 'llama.cpp' is not installed; {install_hint('llama.cpp')}")
        from ..embedded import gguf_path

        return "llama.cpp", str(gguf_path()), "asked for: the embedded model's own GGUF file"
    if requested == "auto" and model_format(model) != "gguf":
        return "transformers", model, ("pool default for a checkpoint: continuous batching on transformers "
                                       "(vLLM only with engine=vllm)")
    name, reason = choose(model, requested)
    return name, model, reason
