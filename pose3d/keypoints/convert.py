"""Conversion of 2D detector skeletons to Human3.6M-17, in one place.

Joints both skeletons have are copied. The others are built from the face and shoulders:

* hips          = the detector's hips, moved by ``hip_towards_thorax`` x (thorax - pelvis):
                  BlazePose puts its hip landmarks lower than Human3.6M's hip joints (0.07)
* hip (pelvis)  = midpoint of the hips
* thorax        = mid-shoulders + 0.32 * (mid-ears - mid-shoulders)
* spine         = midpoint of pelvis and thorax
* neck/nose     = nose
* head (top)    = mid-ears + 0.33 * (mid-ears - mid-shoulders)

The two coefficients were fitted (least squares) to an HRNet Human3.6M-17 detector's output
on a real 720p video (185 frames, person about 400 px tall), where they give a mean error of
9.9 px (thorax) and 9.4 px (head) against 18.0 px for plain mid-shoulders and 16.9 px for a
point between shoulders and ears as the neck; the hip shift takes the hips from 14.0 to 8.8 px
and the pelvis from 12.8 to 7.1 px. docs/keypoints.md has the per-joint table.

Confidence of a built joint: the lowest confidence of the joints it is built from.
Inputs are (..., K, 2) pixel coordinates and (..., K) confidences of one skeleton.
"""

from __future__ import annotations

import numpy as np

THORAX_TOWARDS_EARS = 0.32
HEAD_ABOVE_EARS = 0.33
BLAZEPOSE_HIP_TOWARDS_THORAX = 0.07

# Indices of the body joints in each source skeleton.
BLAZEPOSE_33 = dict(nose=0, l_ear=7, r_ear=8, l_shoulder=11, r_shoulder=12, l_elbow=13, r_elbow=14,
                    l_wrist=15, r_wrist=16, l_hip=23, r_hip=24, l_knee=25, r_knee=26, l_ankle=27, r_ankle=28)
COCO_17 = dict(nose=0, l_ear=3, r_ear=4, l_shoulder=5, r_shoulder=6, l_elbow=7, r_elbow=8,
               l_wrist=9, r_wrist=10, l_hip=11, r_hip=12, l_knee=13, r_knee=14, l_ankle=15, r_ankle=16)
_COPIED = {1: "r_hip", 2: "r_knee", 3: "r_ankle", 4: "l_hip", 5: "l_knee", 6: "l_ankle", 9: "nose",
           11: "l_shoulder", 12: "l_elbow", 13: "l_wrist", 14: "r_shoulder", 15: "r_elbow", 16: "r_wrist"}


def to_h36m17(points: np.ndarray, scores: np.ndarray, layout: dict[str, int],
              hip_towards_thorax: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., K, 2), (..., K) in a source layout -> (..., 17, 2), (..., 17)."""
    p = {name: points[..., i, :] for name, i in layout.items()}
    s = {name: scores[..., i] for name, i in layout.items()}
    out = np.zeros(points.shape[:-2] + (17, 2), dtype=np.float64)
    conf = np.zeros(points.shape[:-2] + (17,), dtype=np.float64)
    for joint, name in _COPIED.items():
        out[..., joint, :], conf[..., joint] = p[name], s[name]
    shoulders = (p["l_shoulder"] + p["r_shoulder"]) / 2
    ears = (p["l_ear"] + p["r_ear"]) / 2
    out[..., 8, :] = shoulders + THORAX_TOWARDS_EARS * (ears - shoulders)
    shift = hip_towards_thorax * (out[..., 8, :] - (p["l_hip"] + p["r_hip"]) / 2)
    out[..., 1, :] += shift
    out[..., 4, :] += shift
    out[..., 0, :] = (out[..., 1, :] + out[..., 4, :]) / 2
    out[..., 7, :] = (out[..., 0, :] + out[..., 8, :]) / 2
    out[..., 10, :] = ears + HEAD_ABOVE_EARS * (ears - shoulders)
    hips = np.minimum(s["l_hip"], s["r_hip"])
    upper = np.minimum.reduce([s["l_shoulder"], s["r_shoulder"], s["l_ear"], s["r_ear"]])
    conf[..., 0], conf[..., 8], conf[..., 10] = hips, upper, upper
    conf[..., 7] = np.minimum(hips, upper)
    return out, conf
