"""llama.cpp's own `convert_hf_to_gguf.py`, taken from the llama-cpp-python source distribution.

The installed llama-cpp-python wheel does not contain the converter, but its sdist vendors llama.cpp whole.
The converter, its `conversion/` package and the matching `gguf-py/` are extracted once into the cache,
keyed by the installed llama-cpp-python version so that converter and runtime always agree. Where to get the
sdist, in order: $ZEPHYR_LLAMA_CPP_DIR (a llama.cpp checkout), $ZEPHYR_LLAMA_CPP_SDIST (a downloaded
.tar.gz), the cache, then `pip download` of the same version (the ordinary client, once).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..cache import cache_root
from ..errors import ZephyrError

WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError as err:
        raise ZephyrError("GGUF export needs llama-cpp-python: pip install 'zephyr[gguf]' "
                          "(docs/serving.md gives the CPU build flags)") from err


def converter_dir() -> Path:
    """A folder holding convert_hf_to_gguf.py with its conversion/ and gguf-py/ siblings."""
    checkout = os.environ.get("ZEPHYR_LLAMA_CPP_DIR")
    if checkout:
        if not (Path(checkout) / "convert_hf_to_gguf.py").is_file():
            raise ZephyrError(f"$ZEPHYR_LLAMA_CPP_DIR={checkout} has no convert_hf_to_gguf.py")
        return Path(checkout)
    version = llama_cpp_version()
    target = cache_root() / "llama.cpp" / version
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    sdist = os.environ.get("ZEPHYR_LLAMA_CPP_SDIST")
    with tempfile.TemporaryDirectory() as tmp:
        if not sdist:
            print(f"zephyr: fetching llama.cpp's converter (llama-cpp-python {version} source, once) ...",
                  file=sys.stderr, flush=True)
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                       "-d", tmp, f"llama-cpp-python=={version}"]
            result = subprocess.run(command, capture_output=True, text=True)
            found = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if result.returncode != 0 or not found:
                raise ZephyrError("could not download llama-cpp-python's source for its GGUF converter; set "
                                  "$ZEPHYR_LLAMA_CPP_SDIST to a llama_cpp_python-<version>.tar.gz or "
                                  f"$ZEPHYR_LLAMA_CPP_DIR to a llama.cpp checkout.\n{result.stderr[-800:]}")
            sdist = str(found[0])
        extract(Path(sdist), target)
    return target


def extract(sdist: Path, target: Path) -> None:
    """Copy the converter's files out of the sdist into `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"] or not member.isfile():
                    continue
                inner = "/".join(parts[3:])
                if not any(inner == w or (w.endswith("/") and inner.startswith(w)) for w in WANTED):
                    continue
                destination = staging / inner
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        if not (staging / "convert_hf_to_gguf.py").is_file():
            raise ZephyrError(f"{sdist} does not contain vendor/llama.cpp/convert_hf_to_gguf.py")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
