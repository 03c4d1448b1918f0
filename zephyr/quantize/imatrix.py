"""Importance matrices for llama.cpp's low-bit quantizer (`zephyr quantize gguf --imatrix`).

An importance matrix holds, for every weight matrix, the mean square of each input column's activation over
a calibration text; llama.cpp's quantizer then spends its precision on the columns that matter most.
llama-cpp-python ships no `llama-imatrix` binary and exposes no way to read activations from llama.cpp's
graph, so zephyr computes the same statistic (mean of x_j**2 over all calibration tokens, where x is the
input of the matrix multiplication) with transformers on the unquantized checkpoint, and names each entry
by the GGUF tensor it belongs to (gguf's own tensor name map). A file written by llama.cpp's `llama-imatrix`
(.gguf, or the legacy .dat) is read as it is. The entries go to `llama_model_quantize` through its
`imatrix` parameter (a null-terminated array of name/data/size), exactly as llama.cpp's quantize tool
passes them.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import numpy as np

from ..errors import DataError, ZephyrError

IMATRIX_FILES = (".gguf", ".dat")


def load_imatrix(path: Path) -> dict[str, np.ndarray]:
    """Read an importance matrix written by llama.cpp's llama-imatrix: GGUF (`<tensor>.in_sum2` with
    `<tensor>.counts`) or the legacy binary .dat. -> {GGUF tensor name: per-column mean square}."""
    if not path.is_file():
        raise DataError("importance matrix file not found", str(path))
    return _load_gguf(path) if path.suffix == ".gguf" else _load_legacy(path)


def _load_gguf(path: Path) -> dict[str, np.ndarray]:
    from gguf import GGUFReader

    tensors = {t.name: np.asarray(t.data, dtype=np.float64) for t in GGUFReader(str(path)).tensors}
    result = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts = tensors.get(base + ".counts")
        if counts is None:
            raise DataError(f"tensor {name} has no matching {base}.counts", str(path))
        sums = sums.reshape(len(counts.reshape(-1)), -1)  # one row of column sums per expert
        result[base] = (sums / np.maximum(counts.reshape(-1, 1), 1.0)).reshape(-1).astype(np.float32)
    if not result:
        raise DataError("no '<tensor>.in_sum2' entries: not an importance matrix written by llama-imatrix",
                        str(path))
    return result


def _load_legacy(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(data):
            raise DataError(f"truncated legacy importance matrix at byte {offset}", str(path))
        values = struct.unpack_from(fmt, data, offset)
        offset += size
        return values

    (entries,) = take("<i")
    if entries <= 0:
        raise DataError(f"legacy importance matrix declares {entries} entries", str(path))
    result = {}
    for _ in range(entries):
        (length,) = take("<i")
        name = bytes(take(f"<{length}s")[0]).decode("utf-8")
        ncall, nval = take("<ii")
        values = np.asarray(take(f"<{nval}f"), dtype=np.float32)
        result[name] = values / ncall if ncall > 0 else values
    return result


def compute_imatrix(model_dir: Path, texts: list[str], gguf_file: Path, max_tokens: int,
                    window: int = 512) -> dict[str, np.ndarray]:
    """Mean square of every input column of every weight matrix in `gguf_file` that has a transformers
    counterpart, over up to `max_tokens` tokens of `texts` run through the unquantized checkpoint."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reader = gguf.GGUFReader(str(gguf_file))
    architecture = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    blocks = int(reader.fields[f"{architecture}.block_count"].parts[-1][0])
    arch = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[architecture]
    names = gguf.get_tensor_name_map(arch, blocks)
    in_file = {t.name for t in reader.tensors}

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []
    for module_name, module in model.named_modules():
        mapped = names.get_name(module_name) if isinstance(module, torch.nn.Linear) else None
        if mapped is None or mapped == "output" or f"{mapped}.weight" not in in_file:
            continue  # like llama-imatrix by default, the output matrix gets no entry

        def collect(_module, inputs, key=f"{mapped}.weight"):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + (x * x).sum(0)
            counts[key] = counts.get(key, 0) + x.shape[0]

        hooks.append(module.register_forward_pre_hook(collect))
    if not hooks:
        raise ZephyrError(f"no weight of {model_dir} maps to a tensor of {gguf_file.name}; cannot compute an "
                          "importance matrix for this architecture (give one made by llama-imatrix)")
    ids = [i for text in texts for i in tokenizer(text)["input_ids"]][:max_tokens]
    with torch.no_grad():
        for start in range(0, len(ids), window):
            model(torch.tensor([ids[start:start + window]]))
    for hook in hooks:
        hook.remove()
    return {key: (sums[key] / counts[key]).float().numpy() for key in sums}


class CImatrix:
    """The null-terminated `llama_model_imatrix_data` array llama_model_quantize reads; keeps its buffers alive."""

    def __init__(self, imatrix: dict[str, np.ndarray]):
        import llama_cpp

        self.names = [name.encode() for name in imatrix]
        self.buffers = [np.ascontiguousarray(values, dtype=np.float32) for values in imatrix.values()]
        self.array = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for entry, name, values in zip(self.array, self.names, self.buffers):
            entry.name = name
            entry.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entry.size = values.size
        # the last entry stays zeroed: name NULL ends the array
