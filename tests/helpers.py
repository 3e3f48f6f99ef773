"""Small synthetic inputs shared by the tests: a walking skeleton, keypoint files, videos."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from pose3d.model import build_model
from pose3d.skeleton import H36M_BONE_LENGTHS_M, PARENTS
from pose3d.weights import save_weights

# Rest directions (camera axes: x right, y down, z away) of each joint's bone from its parent.
_REST_DIRECTIONS = {
    1: (-1, 0, 0), 2: (0, 1, 0), 3: (0, 1, 0), 4: (1, 0, 0), 5: (0, 1, 0), 6: (0, 1, 0),
    7: (0, -1, 0), 8: (0, -1, 0), 9: (0, -1, 0), 10: (0, -1, 0),
    11: (1, 0, 0), 12: (0, 1, 0), 13: (0, 1, 0), 14: (-1, 0, 0), 15: (0, 1, 0), 16: (0, 1, 0),
}


def walking_skeleton(frames: int, fps: float = 30.0) -> np.ndarray:
    """(frames, 17, 3) metres, root-relative, camera axes: a person facing the camera,
    swinging legs and arms, with Human3.6M's mean bone lengths."""
    t = np.arange(frames) / fps
    swing = 0.5 * np.sin(2 * np.pi * 1.0 * t)
    joints = np.zeros((frames, 17, 3))
    for j in range(1, 17):
        d = np.tile(np.asarray(_REST_DIRECTIONS[j], float), (frames, 1))
        if j in (2, 3, 12, 13, 15, 16):  # limbs swing forward/back (z), opposite sides in antiphase
            sign = 1 if j in (2, 3, 12, 13) else -1
            d = np.stack([np.zeros(frames), np.cos(sign * swing), np.sin(sign * swing)], axis=1)
        if j in (5, 6):
            d = np.stack([np.zeros(frames), np.cos(-swing), np.sin(-swing)], axis=1)
        joints[:, j] = joints[:, PARENTS[j]] + d * H36M_BONE_LENGTHS_M[j - 1]
    return joints


def project(joints_m: np.ndarray, width: int = 640, height: int = 480, depth: float = 4.0,
            focal: float = 600.0) -> np.ndarray:
    """Pinhole projection of root-relative camera-axes joints placed ``depth`` m away -> pixels."""
    z = joints_m[..., 2] + depth
    return np.stack([focal * joints_m[..., 0] / z + width / 2, focal * joints_m[..., 1] / z + height / 2], -1)


def keypoint_file(path: Path, frames: int = 60, *, with_size: bool = True, fps: float | None = 30.0) -> Path:
    kp = project(walking_skeleton(frames))
    arrays = {"keypoints": np.concatenate([kp, np.full(kp.shape[:2] + (1,), 0.9)], -1).astype(np.float32)}
    if with_size:
        arrays["size"] = np.array([640, 480])
    if fps:
        arrays["fps"] = np.array(fps)
    np.savez(path, **arrays)
    return path


def tiny_weights(path: Path, max_frames: int = 27) -> Path:
    """A small randomly initialised lifter saved as a pose3d weights file."""
    model = build_model("S", dim=16, depth=1, max_frames=max_frames)
    save_weights(path, model, {"preset": "test", "fps": 50.0, "frame_steps": [1, 2],
                               "reference_bone_lengths_m": list(H36M_BONE_LENGTHS_M)})
    return path


def write_video(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48), fps: float = 25.0) -> Path:
    from pose3d.video import VideoWriter

    rng = np.random.default_rng(0)
    with VideoWriter(path, fps) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return path


class BackendStub:
    """The parts of a 2D backend (pose3d.keypoints.KeypointBackend) that test backends share."""

    name = "test"
    settings: dict = {}
    detect_every = 1
    quiet = staticmethod(contextlib.nullcontext)

    def close(self) -> None:
        pass


class FakeBackend(BackendStub):
    """A 2D backend for tests: 'finds' one walking person in every frame (no detector).

    ``delay``: seconds per frame, to make runs long enough to interrupt."""

    name = "fake"

    def __init__(self, delay: float = 0.0, **_):
        self.delay = delay
        self.calls = 0

    def find_people(self, frame: np.ndarray):
        import time

        from pose3d.tracks import Detection

        time.sleep(self.delay)
        h, w = frame.shape[:2]
        pose = walking_skeleton(self.calls + 1)[-1]
        self.calls += 1
        kp = project(pose[None], w, h, depth=4.0, focal=0.8 * h)[0]
        return [Detection(kp, np.full(17, 0.9), np.concatenate([kp.min(0), kp.max(0)]))]

    def refine(self, frame, boxes):
        return [None] * len(boxes)


def use_fake_backend(monkeypatch=None, delay: float = 0.0) -> None:
    """Make pose3d create FakeBackend whatever backend is asked for."""
    import pose3d.keypoints as keypoints

    def create(name, **options):
        return FakeBackend(delay)

    if monkeypatch is not None:
        monkeypatch.setattr(keypoints, "create_backend", create)
    else:
        keypoints.create_backend = create


def files(folder: Path) -> list[str]:
    """Everything in a folder, hidden temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def batch_manifest_done(out: Path) -> dict:
    """The videos a batch run has recorded as done (the manifest is replaced atomically, so it
    is whole whenever it exists)."""
    manifest = out / ".pose3d-batch.json"
    return json.loads(manifest.read_text())["done"] if manifest.is_file() else {}


def interrupt_after_first_video(process: subprocess.Popen, out: Path, interrupt, wait_s: float) -> str:
    """Wait (up to ``wait_s``) until the batch running in ``process`` records a finished video,
    then call ``interrupt()`` (Ctrl-C) and return the run's stderr once it has exited."""
    deadline = time.monotonic() + wait_s
    while not batch_manifest_done(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupt()
    return process.communicate(timeout=60)[1]


def assert_interrupted_batch_resumes(command: list[str], out: Path, videos: int) -> None:
    """After a batch of ``videos`` videos was interrupted: only complete outputs and no
    temporaries are left, what the manifest recorded is skipped by a rerun (an output written
    in the instant before Ctrl-C but not yet recorded is done again), and the rerun finishes."""
    outputs = [f for f in files(out) if f != ".pose3d-batch.json"]
    assert 1 <= len(outputs) < videos and not any(Path(f).name.startswith(".") for f in outputs), outputs
    for name in outputs:
        json.loads((out / name).read_text())  # complete files only
    done = batch_manifest_done(out)
    assert 1 <= len(done) <= len(outputs) and set(done) <= set(outputs)
    rerun = subprocess.run(command, stderr=subprocess.PIPE, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} skipped" in rerun.stderr
    assert len([f for f in files(out) if not f.startswith(".")]) == videos
