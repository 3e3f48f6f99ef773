"""Pose errors: MPJPE after root alignment (P1) and after Procrustes alignment (P2).

Arrays are (..., 17, 3) in any one unit; results are in that unit.
"""

from __future__ import annotations

import numpy as np

from .codec import root_relative


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame mean joint distance after moving both roots to the origin: (...,)."""
    return np.linalg.norm(root_relative(pred) - root_relative(target), axis=-1).mean(axis=-1)


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """pred moved onto target by the best similarity transform (rotation, scale, translation),
    per frame; reflections are not allowed."""
    mu_p, mu_t = pred.mean(axis=-2, keepdims=True), target.mean(axis=-2, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    norm_p = np.sqrt((p ** 2).sum(axis=(-2, -1), keepdims=True))
    norm_t = np.sqrt((t ** 2).sum(axis=(-2, -1), keepdims=True))
    p, t = p / np.maximum(norm_p, 1e-12), t / np.maximum(norm_t, 1e-12)
    u, s, vt = np.linalg.svd(np.swapaxes(p, -1, -2) @ t)
    # flip the last singular direction where the best orthogonal map would be a reflection
    sign = np.sign(np.linalg.det(u @ vt))
    s[..., -1] *= sign
    u[..., :, -1] *= sign[..., None]
    rotation = u @ vt
    scale = s.sum(axis=-1)[..., None, None] * norm_t / np.maximum(norm_p, 1e-12)
    return scale * ((pred - mu_p) @ rotation) + mu_t


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame mean joint distance after Procrustes alignment: (...,)."""
    return np.linalg.norm(procrustes_align(pred, target) - target, axis=-1).mean(axis=-1)


def summarize_by_action(errors: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """{action: per-frame errors of all its views} -> {action: mean}; the protocol averages
    frames within an action, then actions."""
    return {action: float(np.concatenate(parts).mean()) for action, parts in sorted(errors.items())}
