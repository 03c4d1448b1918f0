"""Signatures for training state that only a pickling loader can read.

DeepSpeed's engine state is saved and loaded through accelerate, whose loader unpickles. Such a folder is read
only if this user's zephyr wrote it: after saving, the main process records the SHA-256 of every file and signs
the list with HMAC-SHA256 under a per-user secret (`<cache>/checkpoint.key`, mode 0600, made on first use).
Before loading, the files must be exactly those (no file added, removed or changed) and the signature must check
under the same secret; otherwise nothing in the folder is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from ..cache import cache_root
from ..errors import ZephyrError

SIGNATURE = "signature.json"


def user_key() -> bytes:
    path = cache_root() / "checkpoint.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise ZephyrError(f"{path} is not a zephyr checkpoint key (32 bytes); delete it and retrain, or restore it")
    return key


def file_digests(folder: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SIGNATURE):
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                sha.update(block)
        digests[path.relative_to(folder).as_posix()] = sha.hexdigest()
    return digests


def _mac(digests: dict[str, str]) -> str:
    return hmac.new(user_key(), json.dumps(digests, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def sign_folder(folder: Path) -> None:
    digests = file_digests(folder)
    (folder / SIGNATURE).write_text(json.dumps({"files": digests, "hmac": _mac(digests)}, indent=1))


def verify_folder(folder: Path) -> None:
    """Raise unless `folder` holds exactly the files this user's zephyr signed."""
    refuse = f"refusing to resume from {folder.parent}: its training state is read by a loader that unpickles, and"
    try:
        signed = json.loads((folder / SIGNATURE).read_text())
        files, mac = signed["files"], signed["hmac"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ZephyrError(f"{refuse} it carries no valid {SIGNATURE} (not written by zephyr on this account)") \
            from None
    if not hmac.compare_digest(str(mac), _mac(files)):
        raise ZephyrError(f"{refuse} its {SIGNATURE} was not made with this account's key "
                          f"({cache_root() / 'checkpoint.key'})")
    found = file_digests(folder)
    changed = sorted(name for name in files.keys() | found.keys() if files.get(name) != found.get(name))
    if changed:
        raise ZephyrError(f"{refuse} files were added, removed or changed since it was written: "
                          f"{', '.join(changed[:5])}")
