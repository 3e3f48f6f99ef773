"""Training and evaluation data: Human3.6M as packed in ``data/h36m`` and the user's own
data, turned into :class:`Sequence` objects the trainer and evaluator share.

Human3.6M layout (see docs/training.md): ``poses_3d.npz`` ("S9/Walking 1" -> (T, 17, 3)
world metres), ``sh_2d.npz`` ("S9/Walking 1/54138969" -> (T, 16, 2) Stacked-Hourglass pixels,
MPII order), ``cameras.json``.

User data (``.npz``, documented in docs/training.md): ``keypoints_2d`` (N, T, 17, 2|3)
pixels, ``image_size`` (2,) or (N, 2) as (width, height), and optionally ``joints_3d``
(N, T, 17, 3) camera-frame metres. Sequences without 3D train the x, y of the output only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import codec
from .errors import InputError
from .skeleton import NUM_JOINTS

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
H36M_FPS = 50.0  # Human3.6M poses and detections
CAMERAS = ("54138969", "55011271", "58860488", "60457274")
SH_HIP = 6


@dataclass
class Sequence:
    """One view of one recording, in model units (see pose3d.codec).

    keypoints_2d: (T, 17, 2) normalised 2D input
    joints_3d:    (T, 17, 3) root-relative target in model units, or None (2D-only data)
    scale:        (T,) model units per metre (joints_3d / scale = metres)
    detection_error: (T, 17, 2) keypoints_2d minus the projected ground truth, normalised
                  units, for detected 2D (None for ground-truth 2D and user data), so that
                  training can scale the detector's error (sampling.ClipSampler's error_scale)
    """

    name: str          # "S9/Walking 1/54138969"
    action: str        # "Walking"
    keypoints_2d: np.ndarray
    joints_3d: np.ndarray | None
    scale: np.ndarray
    width: int
    height: int
    detection_error: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keypoints_2d)

    def with_detection_error(self, factor: float) -> "Sequence":
        """A copy whose 2D input carries ``factor`` times its detector error (0: the projected
        ground truth; 1: this sequence); ground-truth 2D has no error to scale."""
        if self.detection_error is None or factor == 1:
            return self
        return replace(self, keypoints_2d=scale_detection_error(self.keypoints_2d, self.detection_error, factor))

    @classmethod
    def from_camera_view(cls, name: str, joints_cam: np.ndarray, keypoints_px: np.ndarray,
                         camera: dict, error_px: np.ndarray | None = None) -> "Sequence":
        """A view from camera-frame metres (T, 17, 3) and pixels (T, 17, 2), in model units;
        ``error_px``: for detected 2D, its error against the projected ground truth (pixels)."""
        w, h = camera["width"], camera["height"]
        scale = codec.camera_scale(float(np.mean(camera["f"])), w, joints_cam[:, 0, 2])
        error = None if error_px is None else codec.normalize_2d_offset(error_px, w).astype(np.float32)
        return cls(name=name, action=action_of(name.split("/")[1]),
                   keypoints_2d=codec.normalize_2d(keypoints_px, w, h).astype(np.float32),
                   joints_3d=codec.metres_to_model(joints_cam, scale).astype(np.float32),
                   scale=scale.astype(np.float32), width=w, height=h, detection_error=error)


def scale_detection_error(keypoints_2d: np.ndarray, detection_error: np.ndarray, factor: float) -> np.ndarray:
    """Detected 2D (normalised) with its error against the projected ground truth multiplied by
    ``factor``: the projected truth plus ``factor`` times the error."""
    return keypoints_2d + np.float32(factor - 1) * detection_error


# --------------------------------------------------------------------------- Human3.6M
def action_of(recording: str) -> str:
    """'Walking 1' -> 'Walking' (the 15 protocol actions)."""
    return recording.split(" ")[0]


def world_to_camera(joints_world: np.ndarray, camera: dict) -> np.ndarray:
    """X_cam = R_w2c (X_world - centre), metres."""
    R = np.asarray(camera["R_w2c"], dtype=np.float64)
    return (joints_world - np.asarray(camera["centre_m"])) @ R.T


def project(joints_cam: np.ndarray, camera: dict) -> np.ndarray:
    """Camera-frame metres -> pixels with Human3.6M's radial and tangential distortion."""
    x = joints_cam[..., :2] / joints_cam[..., 2:3]
    r2 = (x ** 2).sum(-1, keepdims=True)
    k, p = np.asarray(camera["k"]), np.asarray(camera["p"])
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tangential = p[0] * x[..., 1:2] + p[1] * x[..., 0:1]
    x_d = x * (radial + tangential) + np.asarray([p[1], p[0]]) * r2
    return x_d * np.asarray(camera["f"]) + np.asarray(camera["c"])


def pitched(joints_cam: np.ndarray, degrees: float) -> np.ndarray:
    """(T, J, 3) camera-frame metres as seen by the camera pitched down by ``degrees`` about its
    x axis, circling the pelvis (joint 0) at the same distance (y points down, z forward):
    a camera raised above the person and looking down on them for positive degrees."""
    t = np.radians(degrees)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
    root = joints_cam[:, :1]
    return (joints_cam - root) @ rotation.T + root


def fit_sh_mapping(sh_px: np.ndarray, gt_px: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """(17, 16) weights mapping Stacked-Hourglass joints to H36M-17 joints, rows summing to 1
    (so the map commutes with translation), by least squares on paired frames.

    sh_px: (N, 16, 2); gt_px: (N, 17, 2). Fitted relative to the SH hip joint.
    """
    others = [i for i in range(16) if i != SH_HIP]
    rel_sh = (sh_px[:, others] - sh_px[:, SH_HIP : SH_HIP + 1]).transpose(0, 2, 1).reshape(-1, 15)
    weights = np.zeros((NUM_JOINTS, 16))
    gram = rel_sh.T @ rel_sh + ridge * len(rel_sh) * np.eye(15)
    for j in range(NUM_JOINTS):
        rel_gt = (gt_px[:, j] - sh_px[:, SH_HIP]).reshape(-1)
        w = np.linalg.solve(gram, rel_sh.T @ rel_gt)
        weights[j, others] = w
        weights[j, SH_HIP] = 1.0 - w.sum()
    return weights


class Human36M:
    """The packed Human3.6M data; every array is read lazily from the npz files. ``data_dir``
    may also be a cache file made by ``pose3d cache build`` (pose3d.cache), read the same way."""

    def __init__(self, data_dir: str | Path):
        self.dir = Path(data_dir)
        if self.dir.is_file():
            from .cache import read_cache

            self.poses, self.sh, self.cameras, self._sh_mapping = read_cache(self.dir)
            return
        for name in ("poses_3d.npz", "sh_2d.npz", "cameras.json"):
            if not (self.dir / name).is_file():
                raise InputError(f"{self.dir} is not a Human3.6M data folder: {name} is missing")
        self.poses = np.load(self.dir / "poses_3d.npz")
        self.sh = np.load(self.dir / "sh_2d.npz")
        self.cameras = json.loads((self.dir / "cameras.json").read_text())
        self._sh_mapping: np.ndarray | None = None

    def recordings(self, subject: str) -> list[str]:
        return sorted(k.split("/", 1)[1] for k in self.poses.files if k.split("/")[0] == subject)

    def _views(self, subject: str, recording: str, cameras=CAMERAS):
        """(camera id, camera-frame 3D, projected GT 2D, SH 2D or None) per camera, aligned."""
        world = self.poses[f"{subject}/{recording}"].astype(np.float64)
        for cam_id in cameras:
            camera = self.cameras[subject][cam_id]
            key = f"{subject}/{recording}/{cam_id}"
            sh = self.sh[key].astype(np.float64) if key in self.sh.files else None
            n = len(world) if sh is None else min(len(world), len(sh))  # lengths can differ by a few
            cam3d = world_to_camera(world[:n], camera)
            yield cam_id, camera, cam3d, project(cam3d, camera), None if sh is None else sh[:n]

    @property
    def sh_mapping(self) -> np.ndarray:
        """SH-16 -> H36M-17 weights fitted on the training subjects (every 10th frame)."""
        if self._sh_mapping is None:
            sh_all, gt_all = [], []
            for subject in TRAIN_SUBJECTS:
                for recording in self.recordings(subject):
                    for _, _, _, gt2d, sh in self._views(subject, recording):
                        if sh is not None:
                            sh_all.append(sh[::10])
                            gt_all.append(gt2d[::10])
            if not sh_all:
                raise InputError(f"no Stacked-Hourglass detections for the training subjects in {self.dir}")
            self._sh_mapping = fit_sh_mapping(np.concatenate(sh_all), np.concatenate(gt_all))
        return self._sh_mapping

    def _views_2d(self, subjects, input_2d: str, cameras=CAMERAS, max_frames: int | None = None):
        """(name, camera, camera-frame 3D, projected GT 2D, 2D input) per view that has the
        requested 2D input (S11 Directions, camera 54138969, has no SH detections)."""
        if input_2d not in ("sh", "gt"):
            raise InputError(f"--input-2d must be 'sh' or 'gt', not {input_2d!r}")
        found = False
        for subject in subjects:
            if subject not in self.cameras:
                raise InputError(f"subject {subject} is not in {self.dir / 'cameras.json'}")
            for recording in self.recordings(subject):
                for cam_id, camera, cam3d, gt2d, sh in self._views(subject, recording, cameras):
                    if input_2d == "sh" and sh is None:
                        continue
                    n = len(cam3d) if max_frames is None else min(len(cam3d), max_frames)
                    kp = gt2d if input_2d == "gt" else np.einsum("js,tsc->tjc", self.sh_mapping, sh)
                    found = True
                    yield f"{subject}/{recording}/{cam_id}", camera, cam3d[:n], gt2d[:n], kp[:n]
        if not found:
            raise InputError(f"no sequences for subjects {', '.join(subjects)} with {input_2d} 2D in {self.dir}")

    def sequences(self, subjects, input_2d: str = "sh", cameras=CAMERAS,
                  max_frames: int | None = None, pitch: float = 0.0) -> list[Sequence]:
        """One Sequence per (subject, recording, camera) with the requested 2D input; ``pitch``
        (degrees, + looks down): each seen from its camera pitched around the person (see
        :meth:`pitched_view`)."""
        return [self.pitched_view(name, camera, cam3d, gt2d, kp, pitch)
                for name, camera, cam3d, gt2d, kp in self._views_2d(subjects, input_2d, cameras, max_frames)]

    @staticmethod
    def pitched_view(name: str, camera: dict, joints_cam: np.ndarray, gt_px: np.ndarray,
                     keypoints_px: np.ndarray, degrees: float) -> Sequence:
        """A view seen from its camera pitched by ``degrees`` around the person (:func:`pitched`).
        The 2D is the projection of the rotated ground truth through the real camera plus the 2D
        input's error on the same frames of the real view (``keypoints_px - gt_px``, pixels: zero
        for ground-truth 2D, the detector's error for SH), so pitched views are as noisy, and
        noisy in the same way, as real ones. At 0 degrees: the real view itself."""
        error = keypoints_px - gt_px
        carried = error if error.any() else None  # ground-truth 2D carries no detector error
        if degrees == 0:
            return Sequence.from_camera_view(name, joints_cam, keypoints_px, camera, carried)
        seen = pitched(joints_cam, degrees)
        return Sequence.from_camera_view(name, seen, project(seen, camera) + error, camera, carried)

    def virtual_views(self, subjects, input_2d: str, per_view: float, pitch_range: tuple[float, float],
                      seed: int = 0) -> list[Sequence]:
        """Views from virtual cameras raised or lowered around the person (:meth:`pitched_view`),
        ``per_view`` of them per real view on average (1.5: one each, and a second for a random
        half), each at one pitch drawn uniformly from ``pitch_range`` (degrees, + looks down).
        Named "S1/Walking 1/54138969/pitch+23"."""
        rng = np.random.default_rng(seed)
        low, high = pitch_range
        out = []
        for name, camera, cam3d, gt2d, kp in self._views_2d(subjects, input_2d):
            for _ in range(int(per_view) + int(rng.random() < per_view % 1)):
                degrees = float(rng.uniform(low, high))
                out.append(self.pitched_view(f"{name}/pitch{degrees:+.0f}", camera, cam3d, gt2d, kp, degrees))
        return out


# --------------------------------------------------------------------------- user data
def load_user_sequences(path: str | Path) -> list[Sequence]:
    """Sequences from the documented ``.npz`` format (see the module docstring)."""
    path = Path(path)
    try:
        data = np.load(path)
        kp = np.asarray(data["keypoints_2d"], dtype=np.float64)
        size = np.asarray(data["image_size"], dtype=np.float64)
        joints = np.asarray(data["joints_3d"], dtype=np.float64) if "joints_3d" in data.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a pose3d training file ({exc})") from None
    if kp.ndim != 4 or kp.shape[2] != NUM_JOINTS or kp.shape[3] not in (2, 3):
        raise InputError(f"{path}: keypoints_2d must be (N, T, 17, 2 or 3), got {kp.shape}")
    if joints is not None and joints.shape != kp.shape[:3] + (3,):
        raise InputError(f"{path}: joints_3d must be {kp.shape[:3] + (3,)}, got {joints.shape}")
    size = np.broadcast_to(size.reshape(-1, 2), (len(kp), 2))
    if not (np.isfinite(kp).all() and (joints is None or np.isfinite(joints).all()) and (size > 0).all()):
        raise InputError(f"{path}: keypoints, joints and image sizes must be finite and positive sizes")
    out = []
    for i in range(len(kp)):
        w, h = (int(v) for v in size[i])
        kp_norm = codec.normalize_2d(kp[i, ..., :2], w, h)
        if joints is None:
            scale = np.ones(len(kp_norm))
            target = None
        else:
            scale = codec.fit_weak_perspective_scale(kp_norm, joints[i])
            target = codec.metres_to_model(joints[i], scale).astype(np.float32)
        out.append(Sequence(name=f"{path.stem}/{i}", action="user", keypoints_2d=kp_norm.astype(np.float32),
                            joints_3d=target, scale=scale.astype(np.float32), width=w, height=h))
    return out
