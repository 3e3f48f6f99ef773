"""2D keypoints from files: for users who run their own 2D detector (``pose3d lift --keypoints``).

Accepted: ``.npz`` or ``.npy`` holding Human3.6M-17 keypoints in pixels, shaped
``(frames, 17, 2|3)`` for one person or ``(people, frames, 17, 2|3)``; the third channel, when
present, is the confidence. In an ``.npz`` the array is under ``keypoints`` (or
``reconstruction`` / ``positions_2d``, the names VideoPose3D-style tools use); optional
``fps`` and ``size`` (width, height) entries fill in what the command line does not give.

Frames where a person has NaN coordinates count as missing: short gaps are interpolated
(and marked), longer ones split the track, like the detector backends' tracks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..skeleton import NUM_JOINTS
from ..association import split_and_fill
from ..tracks import Track2D, VideoInfo

ARRAY_KEYS = ("keypoints", "reconstruction", "positions_2d")


def load_keypoints(path: str | Path, *, size: tuple[int, int] | None = None, fps: float | None = None,
                   max_gap_seconds: float = 0.5) -> tuple[list[Track2D], VideoInfo]:
    """(tracks, video info) from a keypoint file; ``size``/``fps`` override the file's own."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such keypoint file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"keypoints": loaded}
        else:
            with loaded:
                arrays = {k: np.asarray(loaded[k]) for k in loaded.files}
    except Exception as exc:  # numpy raises OSError, ValueError, zipfile.BadZipFile, EOFError...
        raise InputError(f"{path}: not a readable .npz/.npy keypoint file ({type(exc).__name__})") from None
    key = next((k for k in ARRAY_KEYS if k in arrays), None)
    if key is None:
        raise InputError(f"{path}: no keypoint array (expected one named {', '.join(ARRAY_KEYS)})")
    keypoints = arrays[key]
    if keypoints.ndim == 3:
        keypoints = keypoints[None]
    if keypoints.ndim != 4 or keypoints.shape[2] != NUM_JOINTS or keypoints.shape[3] not in (2, 3) \
            or keypoints.shape[1] == 0 or not np.issubdtype(keypoints.dtype, np.number):
        raise InputError(f"{path}: '{key}' has shape {keypoints.shape}; expected (frames, 17, 2|3) or "
                         "(people, frames, 17, 2|3) numbers in Human3.6M-17 joint order")

    if size is None and "size" in arrays:
        size = tuple(int(v) for v in np.ravel(arrays["size"])[:2])
    if size is None:
        raise InputError(f"{path}: the image size is unknown; give --size WIDTHxHEIGHT or --video SOURCE")
    if fps is None and "fps" in arrays:
        fps = float(np.ravel(arrays["fps"])[0])
    if not (size[0] > 0 and size[1] > 0):
        raise InputError(f"{path}: image size must be positive, not {size[0]}x{size[1]}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{path}: frame rate must be positive, not {fps}")
    info = VideoInfo(str(path), float(fps or 30.0), int(size[0]), int(size[1]), keypoints.shape[1],
                     "user" if fps else "assumed")

    xy = keypoints[..., :2].astype(float)
    scores = np.clip(keypoints[..., 2], 0, 1).astype(float) if keypoints.shape[3] == 3 else np.ones(xy.shape[:3])
    if np.isinf(xy).any():
        raise InputError(f"{path}: keypoints contain infinite values")
    max_gap = max(1, int(round(max_gap_seconds * info.fps)))
    tracks = []
    for person in range(len(xy)):
        present = ~np.isnan(xy[person]).any(axis=(1, 2)) & ~np.isnan(scores[person]).any(axis=1)
        frames = np.flatnonzero(present)
        if len(frames) == 0:
            continue
        for piece in split_and_fill(frames, xy[person, frames], scores[person, frames], max_gap):
            tracks.append(Track2D(len(tracks), *piece))
    if not tracks:
        raise InputError(f"{path}: every frame's keypoints are NaN; nothing to lift")
    return tracks, info


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 1280x720, not {text!r}") from None
    if width <= 0 or height <= 0:
        raise InputError(f"--size must be positive, not {text!r}")
    return width, height
