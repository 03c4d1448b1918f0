"""DeepSpeed's state goes through accelerate's unpickling loader: only a folder this account's zephyr signed is
ever handed to it."""

import os
import pickle
import types
from pathlib import Path

import pytest

from zephyr.errors import ZephyrError
from zephyr.train.signed_state import SIGNATURE, sign_folder, verify_folder
from zephyr.train.trainer import Trainer

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / "zephyr-signed-state-payload-ran"


class Payload:
    def __reduce__(self):
        return (Path.write_text, (MARKER, "ran"))


class FakeAccelerator:
    """accelerate's save_state/load_state as DeepSpeed uses them: a pickle written, a pickle read."""
    is_main_process, num_processes = True, 1

    def __init__(self):
        self.loaded = []

    def save_state(self, folder, safe_serialization=True):
        Path(folder, "engine.pkl").write_bytes(pickle.dumps({"step": 3}))

    def load_state(self, folder):
        self.loaded.append(pickle.loads(Path(folder, "engine.pkl").read_bytes()))

    def wait_for_everyone(self):
        pass


def sharded_trainer():
    trainer = types.SimpleNamespace(accelerator=FakeAccelerator(), sharded=True, fsdp=False)
    trainer._verify_signed = lambda folder: Trainer._verify_signed(trainer, folder)
    return trainer


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "cache"))
    MARKER.unlink(missing_ok=True)
    yield
    MARKER.unlink(missing_ok=True)


def test_signed_state_round_trip_and_every_tampering_refused(tmp_path, monkeypatch):
    folder = tmp_path / "state"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"weights")
    (folder / "sub" / "b.json").write_text("{}")
    sign_folder(folder)
    verify_folder(folder)
    assert (tmp_path / "cache" / "checkpoint.key").stat().st_mode & 0o777 == 0o600

    (folder / "a.bin").write_bytes(b"weightz")
    with pytest.raises(ZephyrError, match="changed since it was written: a.bin"):
        verify_folder(folder)
    (folder / "a.bin").write_bytes(b"weights")
    (folder / "sub" / "planted.pkl").write_bytes(b"x")
    with pytest.raises(ZephyrError, match="sub/planted.pkl"):
        verify_folder(folder)
    (folder / "sub" / "planted.pkl").unlink()
    (folder / "a.bin").unlink()
    with pytest.raises(ZephyrError, match="a.bin"):
        verify_folder(folder)
    (folder / "a.bin").write_bytes(b"weights")
    verify_folder(folder)

    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path / "someone-else"))  # signed under another account's key
    with pytest.raises(ZephyrError, match="not made with this account's key"):
        verify_folder(folder)
    (folder / SIGNATURE).unlink()
    with pytest.raises(ZephyrError, match="no valid signature.json"):
        verify_folder(folder)


def test_a_planted_pickle_never_reaches_the_unpickling_loader(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    writer = sharded_trainer()
    Trainer.write_state(writer, folder)
    reader = sharded_trainer()
    Trainer.load_state(reader, folder)  # what zephyr wrote loads
    assert reader.accelerator.loaded == [{"step": 3}]

    (folder / "engine.pkl").write_bytes(pickle.dumps(Payload()))
    victim = sharded_trainer()
    with pytest.raises(ZephyrError, match="changed since it was written: engine.pkl"):
        Trainer.load_state(victim, folder)
    assert victim.accelerator.loaded == [] and not MARKER.exists()
