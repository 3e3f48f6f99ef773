"""2D keypoints: detector backends behind one interface, and frames -> 2D person tracks.

A backend (:class:`KeypointBackend`) returns, per frame, people as
:class:`pose3d.tracks.Detection` (Human3.6M-17 pixels, confidences, box); one that also
follows people over whole frames is a :class:`VideoTracker` too. Backends: ``mediapipe``
(default, offline; both) and ``mmpose`` (optional extra). Keypoint files from other
detectors come in through :mod:`.files`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import DependencyError, InputError
from ..association import DUPLICATE_IOU, MIN_TRACK_FRAMES, Tracker, box_iou, box_overlap, main_track
from ..progress import progress_bar
from ..tracks import Detection, Track2D
from ..video import FrameSource

log = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "mmpose")
FOLLOW_FRAMES = 2                # people seen this recently are looked for in their own crop ...
FOLLOW_MIN_IOU = 0.3             # ... and what is found there must overlap their last box this much
SINGLE_MIN_COVERAGE = 0.8        # fast path results below this fall back to the person finder
SINGLE_MIN_HEIGHT = 0.2          # ... and so do people smaller than this part of the frame


@runtime_checkable
class KeypointBackend(Protocol):
    """What :func:`extract_tracks` asks of a 2D backend. Frames are RGB uint8 (H, W, 3)."""

    name: str
    settings: dict      # how it was set up, recorded in result files
    detect_every: int   # frames between runs of the person finder in the multi-person pass

    def find_people(self, frame: np.ndarray) -> list[Detection]:
        """Everyone in the frame (the person finder)."""

    def refine(self, frame: np.ndarray, boxes: list[np.ndarray]) -> list[Detection | None]:
        """The person in each box (x0, y0, x1, y1), or None where it finds nobody."""

    def quiet(self) -> contextlib.AbstractContextManager:
        """A context around a whole pass that silences the backend's native logs."""

    def close(self) -> None:
        """Frees the models."""


@runtime_checkable
class VideoTracker(Protocol):
    """A backend that also follows people over whole frames from one frame to the next,
    which allows the fast single-person pass."""

    def start(self, fps: float, single: bool) -> None:
        """Begins a pass over a video (``single``: follow one person)."""

    def track(self, frame: np.ndarray, index: int) -> list[Detection]:
        """The people followed into frame ``index`` (frames in order from 0)."""


def backend_status() -> dict[str, str]:
    from . import mediapipe_backend, mmpose_backend

    return {"mediapipe": mediapipe_backend.status(), "mmpose": mmpose_backend.status()}


def create_backend(name: str, **options) -> KeypointBackend:
    if name == "mediapipe":
        from .mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(**options)
    if name == "mmpose":
        from .mmpose_backend import MMPoseBackend

        return MMPoseBackend(**options)
    raise DependencyError(f"unknown 2D backend {name!r}; choose one of {', '.join(BACKENDS)}")


def extract_tracks(source: FrameSource, backend: KeypointBackend, *, people: str = "main", max_gap_seconds: float = 0.5,
                   detect_every: int | None = None) -> tuple[list[Track2D], dict]:
    """All person tracks in ``source`` (people='all') or those needed to choose the main one
    (people='main': a fast single-person pass when the backend has one and its person covers
    the video well and is not small; the multi-person pass otherwise).

    Returns (tracks, facts about the run: strategy, seconds)."""
    max_gap = max(1, int(round(max_gap_seconds * source.info.fps)))
    started = time.perf_counter()
    tracks = None
    if people == "main" and isinstance(backend, VideoTracker):
        tracks = _run(source, backend, max_gap, single=True, detect_every=0)
        best = main_track(tracks)
        frames = max(source.info.num_frames, 1)
        if best is None or (len(best) / frames < SINGLE_MIN_COVERAGE
                            or np.median(best.box_heights()) < SINGLE_MIN_HEIGHT * source.info.height):
            log.info("single-person pass found %s; running the multi-person pass",
                     "nobody" if best is None else f"a person in {len(best)} of {frames} frames")
            tracks = None
    strategy = "single person" if tracks is not None else "multi-person"
    if tracks is None:
        # the finder runs at least once per max_gap frames, so that a person the crops lost is
        # found again while their track can still be continued (vtest.avi runs at 10 fps)
        every = detect_every or min(backend.detect_every, max_gap)
        tracks = _run(source, backend, max_gap, single=False, detect_every=every)
    return tracks, {"strategy": strategy, "seconds": time.perf_counter() - started}


def _run(source: FrameSource, backend: KeypointBackend, max_gap: int, single: bool, detect_every: int) -> list[Track2D]:
    """One pass over the video. Per frame (multi-person pass): each recently seen person in a
    crop around them, then new people from the whole-frame tracker (when the backend has one)
    and, every ``detect_every`` frames, from the person finder."""
    tracker = Tracker(max_missed=max_gap)
    tracking = isinstance(backend, VideoTracker)
    if tracking:
        backend.start(source.info.fps, single=single)
    # closing(): the decoder thread stops when this pass ends, by an error or Ctrl-C too,
    # without relying on the frame generator being garbage-collected
    with backend.quiet(), progress_bar() as progress, \
            contextlib.closing(iter(source)) as frames:
        task = progress.add_task(f"2D keypoints ({backend.name})", total=source.info.num_frames)
        for index, frame in frames:
            claimed = {}
            if not single:
                # follow each recently seen person in their own crop first (one person per crop,
                # so two people crossing keep their ids), then take new people from the detectors
                recent = tracker.recent(index, within=FOLLOW_FRAMES)
                for (track_id, _, last_box), det in zip(recent, backend.refine(frame, [look for _, look, _ in recent])):
                    if (det is not None and box_iou(det.box, last_box) >= FOLLOW_MIN_IOU
                            and all(box_iou(det.box, d.box) < DUPLICATE_IOU for d in claimed.values())):
                        claimed[track_id] = det
            found = backend.track(frame, index) if tracking else []
            if not single and (index % detect_every == 0 or not tracker.open):
                found += [d for d in backend.find_people(frame) if all(box_iou(d.box, f.box) < 0.5 for f in found)]
            found = [d for d in found if all(box_overlap(d.box, c.box) < 0.7 for c in claimed.values())]
            tracker.update(index, found, claimed)
            progress.advance(task)
    # very short videos (a single image) keep their short tracks
    return tracker.finish(max_gap, min_frames=min(MIN_TRACK_FRAMES, max(source.info.num_frames, 1)))


def select_tracks(tracks: list[Track2D], people: str, person: int | None, where: str) -> tuple[list[Track2D], int | None]:
    """(tracks to lift, id of the main track). people: 'main' | 'all'; ``person`` picks one id."""
    if not tracks:
        raise InputError(f"{where}: no person found")
    main = main_track(tracks)
    if person is not None:
        chosen = [t for t in tracks if t.id == person]
        if not chosen:
            raise InputError(f"{where}: no person with id {person} (found ids {', '.join(str(t.id) for t in tracks)}; "
                             "see them with --all-people)")
        return chosen, main.id
    return (tracks if people == "all" else [main]), main.id
