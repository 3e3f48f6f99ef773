"""Optional clean-up of lifted 3D tracks for animation, and the quality figures recorded with them.

All functions take (N, 17, 3) joints in metres, root-relative, camera axes (pose3d.tracks).

* :func:`smooth`: a centred Gaussian over time (zero phase: it removes jitter without the lag
  a causal filter adds);
* :func:`enforce_bone_lengths`: every frame rebuilt from the root outwards with each bone at
  the track's median length, joint directions kept;
* :func:`ground_contact`: the "up" direction of the person's world and, per frame, the
  pelvis height above the lower foot, so exports can stand the person on a floor.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .skeleton import ANKLE_HEIGHT_M, BONES, JOINT_NAMES, bone_lengths

FEET = (JOINT_NAMES.index("right_foot"), JOINT_NAMES.index("left_foot"))
THORAX = JOINT_NAMES.index("thorax")
SMOOTH_SECONDS = 0.03  # Gaussian sigma: light, well below the duration of a human movement


def smooth(joints: np.ndarray, fps: float, sigma_seconds: float = SMOOTH_SECONDS) -> np.ndarray:
    """Zero-phase Gaussian smoothing over time (taps to 3 sigma; edges reflected, or repeated
    when the track is shorter than the taps)."""
    sigma = sigma_seconds * fps
    if sigma < 0.3 or len(joints) < 3:
        return joints.copy()
    radius = int(np.ceil(3 * sigma))
    return gaussian_filter1d(joints.astype(float), sigma, axis=0, radius=radius,
                             mode="mirror" if len(joints) > radius else "nearest")


def enforce_bone_lengths(joints: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Rebuild each frame with bone k of length ``lengths[k]`` (default: the track's median)."""
    lengths = np.median(bone_lengths(joints), axis=0) if lengths is None else np.asarray(lengths)
    out = joints.astype(float).copy()
    for k, (parent, child) in enumerate(BONES):  # parents come before children in joint order
        direction = joints[:, child] - joints[:, parent]
        norm = np.linalg.norm(direction, axis=-1, keepdims=True)
        out[:, child] = out[:, parent] + direction / np.maximum(norm, 1e-9) * lengths[k]
    return out


def ground_contact(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, root_height): ``up`` (3,) unit vector in camera axes, the median pelvis-to-thorax
    direction (the camera's tilt does not matter); ``root_height`` (N,) metres from the floor
    (under the lower foot, ankle height added) up to the pelvis."""
    spine = joints[:, THORAX] - joints[:, 0]
    up = np.median(spine / np.maximum(np.linalg.norm(spine, axis=-1, keepdims=True), 1e-9), axis=0)
    up /= max(np.linalg.norm(up), 1e-9)
    foot_heights = joints[:, list(FEET)] @ up  # negative: feet are below the pelvis
    return up, -foot_heights.min(axis=1) + ANKLE_HEIGHT_M


def quality(joints: np.ndarray, fps: float) -> dict:
    """jitter_m_s2: mean joint acceleration magnitude (m/s^2; lower is smoother);
    bone_cv_mean / bone_cv_max: std / mean of each bone's length over time, mean and worst
    over the 16 bones (0 for rigid bones)."""
    out = {"jitter_m_s2": 0.0, "bone_cv_mean": 0.0, "bone_cv_max": 0.0}
    if len(joints) >= 3:
        accel = (joints[2:] - 2 * joints[1:-1] + joints[:-2]) * fps ** 2
        out["jitter_m_s2"] = float(np.linalg.norm(accel, axis=-1).mean())
    if len(joints) >= 2:
        lengths = bone_lengths(joints)
        cv = lengths.std(axis=0) / np.maximum(lengths.mean(axis=0), 1e-9)
        out.update(bone_cv_mean=float(cv.mean()), bone_cv_max=float(cv.max()))
    return {k: round(v, 5) for k, v in out.items()}


def postprocess(joints: np.ndarray, fps: float, *, smoothing: bool = True, rigid_bones: bool = True) -> np.ndarray:
    """The default clean-up: smoothing, then constant bone lengths (in that order, so the
    smoothing cannot change the lengths again)."""
    out = smooth(joints, fps) if smoothing else joints.astype(float)
    return enforce_bone_lengths(out) if rigid_bones else out

