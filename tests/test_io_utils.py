"""Atomic output (pose3d.io_utils): complete files with the usual mode, or nothing."""

import os
import threading

import pytest
import torch

from pose3d.errors import OutputError
from pose3d.io_utils import atomic_output, atomic_write_text


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it after."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_output_gets_the_mode_a_plain_open_gives(tmp_path, umask, mask):
    umask(mask)
    atomic_write_text(tmp_path / "out.json", "{}")
    with open(tmp_path / "plain.json", "w") as f:
        f.write("{}")
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "out.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode


def test_failure_leaves_neither_the_output_nor_the_temporary_file(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert (tmp_path / "out.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_temporary_file_keeps_the_suffix_and_lies_beside_the_output(tmp_path):
    with atomic_output(tmp_path / "sub" / "clip.mp4") as tmp:
        assert tmp.parent == tmp_path / "sub" and tmp.suffix == ".mp4" and tmp.name.startswith(".clip.mp4.")
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "clip.mp4").read_bytes() == b"x"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["clip.mp4"]


def test_concurrent_writers_each_get_their_own_temporary_file(tmp_path):
    def write(i):
        atomic_write_text(tmp_path / f"{i}.txt", str(i) * 1000)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.txt" for i in range(16))
    assert all((tmp_path / f"{i}.txt").read_text() == str(i) * 1000 for i in range(16))


def test_an_output_path_that_is_a_folder_is_an_output_error(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(tmp_path / "taken", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_weights_are_saved_atomically(tmp_path, monkeypatch):
    from pose3d.model import PoseMamba, PoseMambaConfig
    from pose3d.weights import load_weights, save_weights

    model = PoseMamba(PoseMambaConfig(depth=1, dim=8, max_frames=9), scan_backend="torch")
    save_weights(tmp_path / "w.pt", model, {"fps": 50.0})
    loaded, meta = load_weights(tmp_path / "w.pt", scan_backend="torch")
    assert meta["fps"] == 50.0 and loaded.config == model.config

    def broken_save(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OutputError, match="No space left"):
        save_weights(tmp_path / "w2.pt", model, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]
