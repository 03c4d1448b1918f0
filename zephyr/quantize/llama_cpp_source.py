"""llama.cpp's own `convert_hf_to_gguf.py`, taken from the llama-cpp-python source distribution.

The installed llama-cpp-python wheel does not contain the converter, but its sdist vendors llama.cpp whole.
The converter, its `conversion/` package and the matching `gguf-py/` are extracted once into the cache,
keyed by the installed llama-cpp-python version so that converter and runtime always agree. Fetching takes a
file lock (two processes never fetch at once) and publishes the folder with one rename; a published folder is
never replaced or changed, so a conversion running from it is never disturbed. Archive members that would
land outside the folder (`..`, absolute names) make the whole archive refused. Where to get the
sdist, in order: $ZEPHYR_LLAMA_CPP_DIR (a llama.cpp checkout), $ZEPHYR_LLAMA_CPP_SDIST (a downloaded
.tar.gz), the cache, then `pip download` of the same version (the ordinary client, once).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import posixpath
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
        checkout = Path(checkout).resolve()  # the converter runs with another working directory
        if not (checkout / "convert_hf_to_gguf.py").is_file():
            raise ZephyrError(f"$ZEPHYR_LLAMA_CPP_DIR={checkout} has no convert_hf_to_gguf.py")
        return checkout
    version = llama_cpp_version()
    target = cache_root() / "llama.cpp" / version
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        if not complete(target):  # another process may have published it while this one waited
            fetch(version, target)
    return target


def complete(target: Path) -> bool:
    return all((target / name).is_file() for name in ("convert_hf_to_gguf.py", "conversion/__init__.py",
                                                      "gguf-py/gguf/__init__.py"))


def fetch(version: str, target: Path) -> None:
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


def member_path(name: str) -> str | None:
    """The path inside llama.cpp of a wanted sdist member (`<pkg>/vendor/llama.cpp/<inner>`), else None.
    Raises on a name that would leave the extraction folder."""
    parts = name.split("/")
    if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
        return None
    inner = "/".join(parts[3:])
    if not any(inner == w or (w.endswith("/") and inner.startswith(w)) for w in WANTED):
        return None
    if posixpath.isabs(inner) or ".." in inner.split("/") or "\\" in inner:
        raise ZephyrError(f"refusing llama.cpp source archive: member {name!r} points outside its folder")
    return inner


def extract(sdist: Path, target: Path) -> None:
    """Copy the converter's files out of the sdist into a folder beside `target`, then rename it to `target`.
    Call with the fetch lock held; `target` must not exist yet, or be incomplete (then nobody can be using it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                inner = member_path(member.name)
                if inner is None or not member.isfile():  # links and devices are never extracted
                    continue
                destination = (staging / inner).resolve()
                if not destination.is_relative_to(staging.resolve()):
                    raise ZephyrError(f"refusing llama.cpp source archive: member {member.name!r} points "
                                      "outside its folder")
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        if not complete(staging):
            raise ZephyrError(f"{sdist} does not contain vendor/llama.cpp/convert_hf_to_gguf.py with its "
                              "conversion/ and gguf-py/ folders")
        if target.exists():  # an incomplete leftover of an older layout: moved aside, then deleted
            aside = Path(tempfile.mkdtemp(prefix=target.name + ".old-", dir=target.parent))
            os.replace(target, aside / "old")
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
