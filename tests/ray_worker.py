"""What tests/test_batch_ray.py installs in its Ray workers (runtime_env's
``worker_process_setup_hook``), since a test's monkeypatching stays in the test's process."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import numpy as np
from helpers import FakeBackend, project, walking_skeleton

MARKERS = "POSE3D_TEST_MARKERS"  # folder of 'this worker already died once' markers
DELAY = "POSE3D_TEST_DELAY"  # seconds per frame, to make a run long enough to interrupt
_POSES = walking_skeleton(30)


class FrameBackend(FakeBackend):
    """One walking person whose pose follows the frame's pixels rather than the call count, so
    a video gives the same keypoints whichever worker process, and after which videos, runs it."""

    def find_people(self, frame: np.ndarray):
        self.calls = int(frame.sum()) % len(_POSES)
        return super().find_people(frame)


def install_frame_backend(monkeypatch=None) -> None:
    import pose3d.keypoints as keypoints

    def create(name, **options):
        return FrameBackend(delay=float(os.environ.get(DELAY, 0)))

    if monkeypatch is not None:
        monkeypatch.setattr(keypoints, "create_backend", create)
    else:
        keypoints.create_backend = create


def die_once_while_writing() -> None:
    """The first time a worker writes an output named ``die*``, it kills itself (SIGKILL, no
    cleanup) after the temporary file is written and before it is renamed into place."""
    import pose3d.export as export

    real = export.atomic_output

    @contextlib.contextmanager
    def dying(path, suffix=None):
        with real(path, suffix) as tmp:
            yield tmp
            marker = Path(os.environ[MARKERS]) / f"{Path(path).name}.died"
            if Path(path).name.startswith("die") and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)

    export.atomic_output = dying


def setup() -> None:
    install_frame_backend()
    die_once_while_writing()
