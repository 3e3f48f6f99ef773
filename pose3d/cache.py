"""A compact copy of the Human3.6M folder in one file (``pose3d cache build``), small enough
to travel with the code to a rented GPU: about 42 MB instead of 147, every subject at 50 Hz.

``Human36M(path)`` reads it like the folder and gives the same sequences, so training and
evaluation score the same from either (docs/training.md, "GPU training in slices"):

* Stacked-Hourglass 2D: lossless. The detections are whole pixels (int16); each view is stored
  as its first frame and then frame-to-frame differences, which are small numbers.
* 3D: world coordinates rounded to ``QUANTUM_M`` (0.5 mm, an error of at most 0.25 mm per
  coordinate, a thousandth of the lifter's error), stored as each recording's first frame
  (int32) and then second differences in time (int16): the change of each joint's velocity,
  a few units at 50 Hz.
* The cameras, and the SH-16 -> H36M-17 mapping fitted on the full-precision training
  subjects (so that the 2D input does not move by the rounding of the 3D).

The differences are stored split into byte planes (high bytes, then low bytes), which
``np.savez_compressed`` (zlib) packs far better than interleaved int16. The file is derived
from Human3.6M: its research-only licence applies, never commit it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .errors import InputError
from .io_utils import atomic_output

log = logging.getLogger(__name__)

FORMAT = "pose3d-h36m-cache"
VERSION = 1
QUANTUM_M = 5e-4  # 3D rounding step, metres


# --------------------------------------------------------------------------- coding
def _planes(values: np.ndarray) -> np.ndarray:
    """int16 values -> (2, N) uint8: high bytes, then low bytes (little-endian storage)."""
    as_bytes = values.astype("<i2").reshape(-1).view(np.uint8).reshape(-1, 2)
    return np.ascontiguousarray(as_bytes[:, ::-1].T)


def _from_planes(planes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(planes[::-1].T).view("<i2").reshape(-1)


def _checked_int16(values: np.ndarray, what: str) -> np.ndarray:
    if values.size and (values.min() < -32768 or values.max() > 32767):
        raise InputError(f"{what}: differences too large for the cache's int16 coding")
    return values.astype(np.int16)


def encode_poses(world_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 17, 3) metres -> (first frame (17, 3) int32, (T, 17, 3) int16 stream): 0, the first
    difference, then second differences, in units of QUANTUM_M."""
    q = np.round(np.asarray(world_m, dtype=np.float64) / QUANTUM_M).astype(np.int64)
    velocity = np.diff(q, axis=0)
    stream = np.zeros(q.shape, np.int64)
    if len(q) > 1:
        stream[1] = velocity[0]
        stream[2:] = np.diff(velocity, axis=0)
    return q[0].astype(np.int32), _checked_int16(stream, "3D poses")


def decode_poses(first: np.ndarray, stream: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_poses`: (T, 17, 3) float32 metres (rounded to QUANTUM_M)."""
    velocity = np.cumsum(stream.astype(np.int64), axis=0)
    q = first.astype(np.int64) + np.cumsum(velocity, axis=0)
    return (q * QUANTUM_M).astype(np.float32)


def encode_detections(sh_px: np.ndarray) -> np.ndarray:
    """(T, 16, 2) int16 pixels -> the first frame, then frame-to-frame differences."""
    values = np.asarray(sh_px, dtype=np.int64)
    return _checked_int16(np.concatenate([values[:1], np.diff(values, axis=0)]), "2D detections")


def decode_detections(stream: np.ndarray) -> np.ndarray:
    return np.cumsum(stream.astype(np.int64), axis=0).astype(np.int16)


# --------------------------------------------------------------------------- the file
def build_cache(data_dir: str | Path, out_path: str | Path) -> dict:
    """Write the cache of the Human3.6M folder ``data_dir`` to ``out_path`` (.npz, atomically);
    returns {"bytes", "recordings", "views", "frames_3d", "frames_2d"}."""
    from .datasets import Human36M

    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise InputError(f"{out_path}: the cache is a .npz file")
    h36m = Human36M(data_dir)
    recordings = sorted(h36m.poses.files)
    views = sorted(h36m.sh.files)
    firsts, pose_streams, sh_streams = [], [], []
    for key in recordings:
        first, stream = encode_poses(h36m.poses[key])
        firsts.append(first)
        pose_streams.append(stream)
    for key in views:
        sh_streams.append(encode_detections(h36m.sh[key]))
    meta = {"format": FORMAT, "version": VERSION, "quantum_m": QUANTUM_M, "fps": 50.0,
            "recordings": [[k, len(s)] for k, s in zip(recordings, pose_streams)],
            "views": [[k, len(s)] for k, s in zip(views, sh_streams)],
            "cameras": h36m.cameras, "sh_mapping": h36m.sh_mapping.tolist()}
    arrays = {"meta": np.array(json.dumps(meta)),
              "poses_first": np.stack(firsts),
              "poses_planes": _planes(np.concatenate(pose_streams)),
              "sh_planes": _planes(np.concatenate(sh_streams))}
    with atomic_output(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    summary = {"bytes": out_path.stat().st_size, "recordings": len(recordings), "views": len(views),
               "frames_3d": int(sum(len(s) for s in pose_streams)), "frames_2d": int(sum(len(s) for s in sh_streams))}
    log.info("%s: %.1f MiB, %d recordings, %d views", out_path, summary["bytes"] / 2 ** 20,
             summary["recordings"], summary["views"])
    return summary


class _Decoded:
    """Named arrays decoded from one stream, with the ``files`` / ``[key]`` face of np.load's
    NpzFile that :class:`pose3d.datasets.Human36M` reads."""

    def __init__(self, names_and_lengths, decode):
        self.files = [name for name, _ in names_and_lengths]
        ends = np.cumsum([n for _, n in names_and_lengths])
        self._spans = {name: (int(end - n), int(end)) for (name, n), end in zip(names_and_lengths, ends)}
        self._decode = decode

    def __getitem__(self, key: str) -> np.ndarray:
        begin, end = self._spans[key]
        return self._decode(key, begin, end)

    def __contains__(self, key: str) -> bool:
        return key in self._spans


def read_cache(path: str | Path) -> tuple[_Decoded, _Decoded, dict, np.ndarray]:
    """(poses, detections, cameras, SH mapping) from a cache file: poses and detections read
    like ``np.load(poses_3d.npz)`` and ``np.load(sh_2d.npz)`` of the folder."""
    path = Path(path)
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise ValueError(f"not a {FORMAT} version {VERSION} file")
            firsts = data["poses_first"]
            pose_stream = _from_planes(data["poses_planes"]).reshape(-1, 17, 3)
            sh_stream = _from_planes(data["sh_planes"]).reshape(-1, 16, 2)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a pose3d Human3.6M cache ({exc})") from None
    if meta["quantum_m"] != QUANTUM_M:
        raise InputError(f"{path}: built with a 3D step of {meta['quantum_m']} m, this pose3d reads {QUANTUM_M}")
    first_of = {name: firsts[i] for i, (name, _) in enumerate(meta["recordings"])}
    poses = _Decoded(meta["recordings"], lambda key, b, e: decode_poses(first_of[key], pose_stream[b:e]))
    detections = _Decoded(meta["views"], lambda key, b, e: decode_detections(sh_stream[b:e]))
    return poses, detections, meta["cameras"], np.asarray(meta["sh_mapping"])
