"""Rotation maths on numpy arrays: unit vectors, rotation matrices (broadcast over leading
axes), Euler angles, and the world axes shared by the BVH writer and the world frame.

Axes: pose3d's camera axes are x right, y down, z away (pose3d.tracks). The Y-up world is x
the camera's right, y up, z towards the camera; the Z-up world turns it so that z is up and
y points away from the camera.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

# Camera axes -> the Y-up world for a level camera (a half turn about x).
CAMERA_TO_YUP = np.diag([1.0, -1.0, -1.0])
# Y-up -> Z-up world: x stays, z = old y (up), y = -old z (a person facing the camera faces -Y).
YUP_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_X, _Y, _Z = np.eye(3)
_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


def world_axes(up: str) -> np.ndarray:
    """Y-up world -> the world with ``up`` ("y" or "z") up."""
    return np.eye(3) if up == "y" else YUP_TO_ZUP


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) the cross-product matrices: skew(a) @ b = a x b."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return out


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about unit ``axis`` (..., 3) by ``angle`` (...) radians."""
    rotvec = np.asarray(axis, float) * np.asarray(angle, float)[..., None]
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(rotvec.shape + (3,))


def axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about the coordinate axis "X", "Y" or "Z"."""
    vec = np.eye(3)[_AXIS_INDEX[axis]]
    return axis_angle(np.broadcast_to(vec, np.shape(degrees) + (3,)), np.radians(degrees))


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vectors ``a`` to ``b`` (broadcast over leading axes)."""
    a, b = np.broadcast_arrays(a, b)
    cos = np.sum(a * b, axis=-1)
    k = skew(np.cross(a, b))
    opposite = cos < -1 + 1e-9
    safe = np.where(opposite, 1.0, 1 + cos)[..., None, None]
    rot = np.eye(3) + k + (k @ k) / safe
    if np.any(opposite):  # half turn about any axis perpendicular to a
        a_opp = a[opposite]
        helper = np.where(np.abs(a_opp[:, :1]) < 0.9, _X, _Y)
        axis = unit(np.cross(a_opp, helper))
        rot[opposite] = 2 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return rot


def twist_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle of the rotation a @ b.T about ``axis`` (both a and b map something onto axis)."""
    m = a @ np.swapaxes(b, -1, -2)
    sin = 0.5 * np.einsum("...i,...i->...", axis, np.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], axis=-1))
    cos = 0.5 * (np.trace(m, axis1=-2, axis2=-1) - 1)
    return np.arctan2(sin, cos)


def frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frames; columns: primary, secondary made orthogonal to it, their
    cross product."""
    a = unit(primary)
    b = unit(secondary - np.sum(secondary * a, axis=-1, keepdims=True) * a)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def euler_order(rot: np.ndarray, preferred: str) -> str:
    """``preferred``, unless the rotations (N, 3, 3) come within 30 degrees of its gimbal lock
    (middle angle +-90); then the Tait-Bryan order that stays farthest from its lock."""
    def closeness(order: str) -> float:  # largest |sin(middle angle)|
        i, _, k = (_AXIS_INDEX[a] for a in order)
        return float(np.abs(rot[:, i, k]).max())
    if closeness(preferred) < math.sin(math.radians(60)):
        return preferred
    return min([preferred] + ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"], key=closeness)


def euler_from_matrices(rot: np.ndarray, order: str) -> np.ndarray:
    """(N, 3, 3) -> (N, 3) degrees with rot = R_order[0] @ R_order[1] @ R_order[2], continuous
    over frames: of the two equivalent solutions the one nearest the previous frame, each angle
    unwrapped by whole turns. (scipy's as_euler gives one solution per frame, folded into
    (-180, 180], and drops the third angle at gimbal lock.)"""
    i, j, k = (_AXIS_INDEX[a] for a in order)
    parity = 1.0 if (j - i) % 3 == 1 else -1.0  # XYZ, YZX, ZXY are even
    mid = np.arcsin(np.clip(parity * rot[:, i, k], -1.0, 1.0))
    first = np.arctan2(-parity * rot[:, j, k], rot[:, k, k])
    last = np.arctan2(-parity * rot[:, i, j], rot[:, i, i])
    primary = np.stack([first, mid, last], axis=1)
    alternative = np.stack([first + np.pi, np.pi - mid, last + np.pi], axis=1)
    # python floats: this loop runs frames x joints times
    prim, alt = primary.tolist(), alternative.tolist()
    out = [prim[0]]
    two_pi = 2 * math.pi
    for t in range(1, len(prim)):
        prev = out[-1]
        best, best_dist = None, math.inf
        for cand in (prim[t], alt[t]):
            cand = [c + two_pi * round((p - c) / two_pi) for c, p in zip(cand, prev)]
            dist = sum((c - p) ** 2 for c, p in zip(cand, prev))
            if dist < best_dist:
                best, best_dist = cand, dist
        out.append(best)
    return np.degrees(np.array(out))
