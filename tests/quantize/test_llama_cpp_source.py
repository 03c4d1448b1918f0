"""Fetching llama.cpp's converter: members that would leave the folder are refused, the folder is published
once under a lock by one rename, and a published folder is never replaced."""

from __future__ import annotations

import io
import tarfile
import threading
import time

import pytest

from zephyr.errors import ZephyrError
from zephyr.quantize import llama_cpp_source
from zephyr.quantize.llama_cpp_source import converter_dir, extract

ROOT = "llama_cpp_python-9.9.9/vendor/llama.cpp/"
GOOD = {"convert_hf_to_gguf.py": b"print('converter')\n", "conversion/__init__.py": b"",
        "gguf-py/gguf/__init__.py": b"", "README.md": b"not wanted\n"}


def make_sdist(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def test_extract_takes_only_the_converter_files(tmp_path):
    sdist = make_sdist(tmp_path / "s.tar.gz", {ROOT + k: v for k, v in GOOD.items()})
    target = tmp_path / "cache" / "9.9.9"
    extract(sdist, target)
    assert (target / "convert_hf_to_gguf.py").read_bytes() == GOOD["convert_hf_to_gguf.py"]
    assert (target / "gguf-py/gguf/__init__.py").is_file() and not (target / "README.md").exists()
    assert [p.name for p in target.parent.iterdir()] == ["9.9.9"], "no staging folder left behind"


@pytest.mark.parametrize("evil", [ROOT + "gguf-py/../../../../../escaped.py", ROOT + "conversion/../../escaped.py",
                                  ROOT + "gguf-py/gguf/../../../x/../../escaped.py"])
def test_member_leaving_the_folder_is_refused(tmp_path, evil):
    sdist = make_sdist(tmp_path / "s.tar.gz", {**{ROOT + k: v for k, v in GOOD.items()}, evil: b"import os\n"})
    target = tmp_path / "a" / "b" / "c" / "cache" / "9.9.9"
    with pytest.raises(ZephyrError, match="points outside its folder"):
        extract(sdist, target)
    assert not list(tmp_path.rglob("escaped.py")), "nothing written outside the target"
    assert not target.exists() and not list(target.parent.iterdir()), "nothing published, no staging left"


def test_links_in_the_archive_are_not_followed(tmp_path):
    sdist = make_sdist(tmp_path / "s.tar.gz", {ROOT + k: v for k, v in GOOD.items()},
                       links={ROOT + "gguf-py/gguf/evil.py": "/etc/passwd"})
    extract(sdist, tmp_path / "t")
    assert not (tmp_path / "t" / "gguf-py/gguf/evil.py").exists()


def test_fetched_once_under_a_lock_and_never_replaced(tmp_path, monkeypatch):
    sdist = make_sdist(tmp_path / "s.tar.gz", {ROOT + k: v for k, v in GOOD.items()})
    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZEPHYR_LLAMA_CPP_SDIST", str(sdist))
    monkeypatch.delenv("ZEPHYR_LLAMA_CPP_DIR", raising=False)
    monkeypatch.setattr(llama_cpp_source, "llama_cpp_version", lambda: "9.9.9")
    calls = []

    def slow_extract(source, target):
        calls.append(target)
        time.sleep(0.3)  # long enough for every other thread to reach the lock
        extract(source, target)

    monkeypatch.setattr(llama_cpp_source, "extract", slow_extract)
    results = []
    threads = [threading.Thread(target=lambda: results.append(converter_dir())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4
    target = results[0]
    inode = target.stat().st_ino
    monkeypatch.setattr(llama_cpp_source, "extract", lambda *a: pytest.fail("a published folder was fetched again"))
    assert converter_dir() == target and target.stat().st_ino == inode
