"""Normalisation between the world (pixels, metres) and the network's units, in one place.

2D input (MotionBERT's convention): both axes are divided by the image width, so the image
centre maps near 0 and the aspect ratio is kept::

    x' = x / w * 2 - 1            y' = y / w * 2 - h / w

3D output: root-relative joints in metres, camera axes (x right, y down, z away from the
camera), multiplied by ``scale``, the number of normalised image units per metre at the
person's root (weak perspective)::

    scale = 2 * f / (w * Z_root)      model = metres * scale      metres = model / scale

so the x, y of a 3D output line up with the 2D input and z is depth in the same units.
On Human3.6M ``scale`` comes from the camera (as MotionBERT's ``2.5d_factor`` does); in the
wild it is estimated per frame from bone lengths (:func:`scales_from_bone_lengths`).

In the wild a person may be small or far from the image centre, which Human3.6M never shows
(a child 80 px tall in a 240p video came out leaning 44 degrees away from the camera).
:func:`normalize_2d_person` therefore moves and scales each track, as a whole, to where
Human3.6M's people are in the normalised frame before lifting.

Works on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import numpy as np

from .skeleton import ROOT, bone_lengths


def normalize_2d_offset(offset_px, width: float):
    """(..., 2) differences of pixel positions (an error, a displacement) -> normalised units:
    the scale of :func:`normalize_2d` without its shift."""
    return offset_px * (2.0 / width)


def normalize_2d(keypoints_px, width: float, height: float):
    """(..., 2) pixels -> normalised units."""
    out = normalize_2d_offset(keypoints_px, width)
    out[..., 0] -= 1.0
    out[..., 1] -= height / width
    return out


# Human3.6M's people in the normalised frame: median root position and median keypoint-box
# height over the training subjects' Stacked-Hourglass detections (every 10th frame)
TRAIN_ROOT_2D = (0.066, -0.172)
TRAIN_PERSON_HEIGHT = 0.66


def normalize_2d_person(keypoints_px: np.ndarray) -> np.ndarray:
    """(T, 17, 2) pixels of one person's track -> normalised units, by one similarity for the
    whole track: its median root goes to ``TRAIN_ROOT_2D`` and its median keypoint-box height
    becomes ``TRAIN_PERSON_HEIGHT`` (motion within the track is kept). The 3D output is
    root-relative and sized by bone lengths, so it needs no inverse."""
    heights = keypoints_px[..., 1].max(axis=-1) - keypoints_px[..., 1].min(axis=-1)
    zoom = TRAIN_PERSON_HEIGHT / max(float(np.median(heights)), 1e-6)
    root = np.median(keypoints_px[:, ROOT], axis=0)
    return ((keypoints_px - root) * zoom + np.asarray(TRAIN_ROOT_2D)).astype(keypoints_px.dtype)


def denormalize_2d(keypoints_norm, width: float, height: float):
    """(..., 2) normalised units -> pixels (inverse of :func:`normalize_2d`)."""
    out = keypoints_norm.clone() if hasattr(keypoints_norm, "clone") else keypoints_norm.copy()
    out[..., 0] += 1.0
    out[..., 1] += height / width
    return out * (width / 2.0)


def root_relative(joints):
    """(..., 17, C) -> the same with the root joint at the origin."""
    return joints - joints[..., ROOT : ROOT + 1, :]


def camera_scale(focal_px: float, width: float, root_depth_m):
    """Normalised units per metre at depth ``root_depth_m`` (array of per-frame depths)."""
    return 2.0 * focal_px / (width * root_depth_m)


def metres_to_model(joints_m, scale):
    """(..., T, 17, 3) camera-frame metres and (..., T) scale -> root-relative model units."""
    return root_relative(joints_m) * scale[..., None, None]


def model_to_metres(joints_model, scale):
    """Inverse of :func:`metres_to_model` (root-relative metres)."""
    return root_relative(joints_model) / scale[..., None, None]


SCALE_SMOOTHING_SECONDS = 0.25  # Gaussian sigma: steadies the per-frame scale, still follows a walk


def scales_from_bone_lengths(joints_model: np.ndarray, reference_bones_m: np.ndarray, fps: float,
                             sigma_seconds: float = SCALE_SMOOTHING_SECONDS) -> np.ndarray:
    """Estimate ``scale`` for every frame of a track from its predicted bone lengths.

    joints_model: (T, 17, 3) network output; reference_bones_m: (16,) bone lengths in metres
    of the body to match (the training set's mean, or one rescaled to a given height).
    Returns (T,): each frame's summed bone lengths over the reference's sum, smoothed over
    time (:func:`smooth_keeping_trends`, Gaussian ``sigma_seconds``). Per frame, because the
    output is sized like the 2D input: a person walking towards the camera grows in the
    image, and one scale for the whole track would make them grow in metres too. The summed
    bone lengths do not change with the pose, so dividing by them keeps crouches and reaches
    as they are.
    """
    per_frame = bone_lengths(joints_model).sum(axis=1) / reference_bones_m.sum()
    return np.maximum(smooth_keeping_trends(per_frame, sigma_seconds * fps), 1e-9)  # a collapsed pose stays finite


def smooth_keeping_trends(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """(T,) -> (T,): at each frame, the value of a straight line fitted to the frames around
    it with Gaussian weights (local linear regression). Inside the series this is a Gaussian
    smoothing; at the ends it uses only the frames that exist, so a steady rise (a person
    walking towards the camera) stays steady up to the first and last frames instead of
    being flattened or bent there."""
    values = np.asarray(values, dtype=float)
    if sigma_frames < 0.3 or len(values) < 3:
        return values.copy()
    radius = min(int(np.ceil(3 * sigma_frames)), len(values) - 1)
    padded = np.pad(values, radius)
    exists = np.pad(np.ones(len(values)), radius)
    sums = np.zeros((5, len(values)))  # sum of w, w d, w d^2, w v, w d v over offsets d
    for d in range(-radius, radius + 1):
        w = np.exp(-0.5 * (d / sigma_frames) ** 2) * exists[radius + d : radius + d + len(values)]
        v = padded[radius + d : radius + d + len(values)]
        sums += np.stack([w, w * d, w * d * d, w * v, w * d * v])
    s0, s1, s2, t0, t1 = sums
    return (s2 * t0 - s1 * t1) / (s0 * s2 - s1 * s1)


def fit_weak_perspective_scale(keypoints_norm, joints_m):
    """Per-frame least-squares scale s minimising |root-relative 2D - s * root-relative 3D xy|.

    For training data that has 2D and camera-frame 3D but no intrinsics.
    keypoints_norm: (T, 17, 2); joints_m: (T, 17, 3) -> (T,)
    """
    xy = root_relative(joints_m)[..., :2]
    uv = root_relative(keypoints_norm)
    return (uv * xy).sum(axis=(-1, -2)) / np.maximum((xy * xy).sum(axis=(-1, -2)), 1e-12)
