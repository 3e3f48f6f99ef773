"""Where people are: the video's camera model, each person's root in camera space, and one
world frame with a level floor, shared by everyone in the video.

Units and axes:

* camera space: metres, the camera at the origin, x right, y down, z away (pose3d.tracks);
* world: metres, the floor at height 0 under the camera's centre; ``up="y"``: x the camera's
  right (level), y up, z towards the camera (BVH's usual axes); ``up="z"``: x the same, y away
  from the camera, z up.

The steps (pose3d.lift runs them after lifting):

1. :class:`CameraModel`: pinhole intrinsics, by default focal = max(width, height) pixels and
   the principal point at the image centre, or ``--focal`` / ``--fov``.
2. :func:`root_trajectory`: per frame, the translation that puts the metric root-relative pose
   where it best reprojects onto the 2D keypoints (linear least squares once the depth is
   multiplied out, reweighted to the image-plane error), smoothed in time; frames filled in
   by 2D interpolation get roots interpolated between their neighbours.
3. :func:`estimate_world`: the floor, a plane fitted robustly to the lower ankle of every
   person in every frame where it is low and slow (a foot on the ground), with a weak prior
   towards the people's own up direction (a single person walking in a line only fixes the
   floor's slope along the line). The plane gives the camera's pitch, roll and height.
4. :func:`place_in_world` (what pose3d.lift calls): the floor, then, for several people of
   unknown height, each scaled along the camera's rays so that their feet stand on it
   (:func:`size_from_floor`), then each root moved along the world's up so that planted feet
   stand on the floor (:func:`settle_on_floor`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from .codec import smooth_keeping_trends
from .errors import InputError
from .postprocess import FEET as ANKLES
from .postprocess import ground_contact
from .rotations import CAMERA_TO_YUP, swing, unit, world_axes
from .skeleton import ANKLE_HEIGHT_M, JOINT_NAMES

log = logging.getLogger(__name__)

MIN_FOV_DEG, MAX_FOV_DEG = 10.0, 150.0
ROOT_SMOOTHING_SECONDS = 0.1   # Gaussian sigma (local linear): the detector's jitter, not a step
MIN_JOINT_WEIGHT = 0.05        # 2D confidence below this does not count in the root fit
# The joints whose lifted positions fix the root: pelvis, hips, knees, spine, thorax, shoulders.
# On Human3.6M (S9/S11, SH 2D) the shins, arms and head, whose lifted extent across the image
# is least reliable, made the depth worse: MRPE 233 mm with all 17 joints, 172 with these.
ROOT_FIT_JOINTS = tuple(JOINT_NAMES.index(n) for n in (
    "hip", "right_hip", "right_knee", "left_hip", "left_knee", "spine", "thorax", "left_shoulder", "right_shoulder"))
CONTACT_SPEED_M_S = 1.0        # a lower ankle slower than this (camera space) is taken as planted
CONTACT_HEIGHT_M = 0.2         # ... once the floor is known, if it is also at most this far above its standing height
FLOOR_PRIOR_M2 = 0.05 ** 2     # weight of the up-direction prior against the contacts' spread
FLOOR_INLIER_M = 0.05          # contacts within this of the plane refine it (and 2.5 robust sigmas)
MIN_CONTACTS = 8
MIN_FLOOR_COS = math.cos(math.radians(45))  # a floor tilted further from the people's up is not believed
MIN_CAMERA_HEIGHT_M = 0.5      # resizing people to the floor needs the camera this far above their ankles
SETTLE_SMOOTHING_SECONDS = 0.05  # how quickly the root follows its planted foot onto the floor


# --------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics of the video's camera (no distortion), pixels."""

    focal_px: float
    centre_px: tuple[float, float]
    width: int
    height: int
    source: str = "default"  # default (focal = max(w, h)) | focal (--focal) | fov (--fov) | file

    @classmethod
    def for_video(cls, width: int, height: int, *, focal_px: float | None = None,
                  fov_deg: float | None = None) -> "CameraModel":
        """Default intrinsics for a ``width`` x ``height`` video: focal = max(width, height)
        (a horizontal field of view of 53 degrees for landscape video), centre in the middle;
        ``focal_px`` or ``fov_deg`` (across the larger side) override the focal length."""
        if focal_px is not None and fov_deg is not None:
            raise InputError("give --focal or --fov, not both")
        side = max(width, height)
        centre = (width / 2.0, height / 2.0)
        if focal_px is not None:
            if not (math.isfinite(focal_px) and focal_px > 0):
                raise InputError(f"--focal is in pixels and must be positive, not {focal_px}")
            return cls(float(focal_px), centre, width, height, "focal")
        if fov_deg is not None:
            if not (MIN_FOV_DEG <= fov_deg <= MAX_FOV_DEG):
                raise InputError(f"--fov is the field of view across the larger image side in degrees and must "
                                 f"lie in [{MIN_FOV_DEG:g}, {MAX_FOV_DEG:g}], not {fov_deg}")
            return cls(0.5 * side / math.tan(math.radians(fov_deg) / 2), centre, width, height, "fov")
        return cls(float(side), centre, width, height, "default")

    @property
    def fov_deg(self) -> float:
        """Field of view across the larger image side."""
        return math.degrees(2 * math.atan(0.5 * max(self.width, self.height) / self.focal_px))

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-space metres -> (..., 2) pixels."""
        z = np.maximum(points[..., 2:3], 1e-6)
        return self.focal_px * points[..., :2] / z + np.asarray(self.centre_px)

    def to_json(self) -> dict:
        return {"focal_px": round(self.focal_px, 3), "centre_px": [round(c, 3) for c in self.centre_px],
                "fov_deg": round(self.fov_deg, 3), "source": self.source}

    @classmethod
    def from_json(cls, data: dict, width: int, height: int) -> "CameraModel":
        return cls(float(data["focal_px"]), tuple(float(c) for c in data["centre_px"]), width, height,
                   str(data.get("source", "file")))


# --------------------------------------------------------------------------- root
def fit_root(joints_m: np.ndarray, keypoints_px: np.ndarray, weights: np.ndarray, camera: CameraModel,
             iterations: int = 3, joints_used=ROOT_FIT_JOINTS) -> np.ndarray:
    """Per frame, the translation t (camera space, metres) minimising the weighted reprojection
    error of ``joints_m + t`` onto ``keypoints_px``.

    joints_m: (N, 17, 3) root-relative metres, camera axes; keypoints_px: (N, 17, 2);
    weights: (N, 17) >= 0 (2D confidence); joints_used: the joints that count (None: all).
    Returns (N, 3); NaN where a frame has fewer than three usable joints. Multiplying out the depth, (u - c)(Z + t_z) = f (X + t_x) (and the
    same for y) is linear in t; each pass reweights by 1 / depth so that the last one
    minimises (to first order) the error in pixels.
    """
    joints = np.asarray(joints_m, float)
    uv = np.asarray(keypoints_px, float) - np.asarray(camera.centre_px)
    w = np.where(np.isfinite(uv).all(-1) & (weights >= MIN_JOINT_WEIGHT), weights, 0.0)
    if joints_used is not None:
        w = w * np.isin(np.arange(w.shape[1]), joints_used)
    uv = np.nan_to_num(uv)
    f = camera.focal_px
    n = len(joints)
    # rows per joint and axis a: f t_a - uv_a t_z = uv_a Z - f X_a
    a = np.zeros((n, joints.shape[1], 2, 3))
    a[..., 0, 0] = a[..., 1, 1] = f
    a[..., :, 2] = -uv
    b = uv * joints[..., 2:3] - f * joints[..., :2]
    depth_weight = np.ones(joints.shape[:2])
    out = np.full((n, 3), np.nan)
    usable = (w > 0).sum(axis=1) >= 3
    for _ in range(iterations):
        ww = (w * depth_weight ** 2)[..., None]  # (N, 17, 1), the same for both axes
        ata = np.einsum("njai,nja,njak->nik", a, np.broadcast_to(ww, b.shape), a)
        atb = np.einsum("njai,nja,nja->ni", a, np.broadcast_to(ww, b.shape), b)
        ata[~usable] = np.eye(3)
        t = np.linalg.solve(ata, atb[..., None])[..., 0]
        depth_weight = 1.0 / np.maximum(joints[..., 2] + t[:, None, 2], 0.1)
        out[usable] = t[usable]
    return out


def root_trajectory(joints_m: np.ndarray, keypoints_px: np.ndarray, scores: np.ndarray, interpolated: np.ndarray,
                    frames: np.ndarray, camera: CameraModel, fps: float,
                    sigma_seconds: float = ROOT_SMOOTHING_SECONDS) -> np.ndarray:
    """(N, 3) root positions in camera space (metres) of one track: :func:`fit_root` on the
    detected frames, linearly interpolated (in frame index) over interpolated or unusable
    frames, then smoothed (:func:`pose3d.codec.smooth_keeping_trends`, a Gaussian that keeps
    steady walks steady up to the ends)."""
    measured = ~np.asarray(interpolated, bool)
    roots = np.full((len(joints_m), 3), np.nan)
    if measured.any():
        roots[measured] = fit_root(joints_m[measured], keypoints_px[measured], scores[measured], camera)
    good = np.isfinite(roots).all(axis=1) & (roots[:, 2] > 0)
    if not good.any():  # nothing to fit on (every frame interpolated): a root in front of the camera
        good = np.ones(len(roots), bool)
        roots[:] = fit_root(joints_m, keypoints_px, np.ones(scores.shape), camera)
        roots[~np.isfinite(roots).all(axis=1)] = [0.0, 0.0, 5.0]
    x = np.asarray(frames, float)
    filled = np.stack([np.interp(x, x[good], roots[good, a]) for a in range(3)], axis=1)
    sigma = sigma_seconds * fps
    return np.stack([smooth_keeping_trends(filled[:, a], sigma) for a in range(3)], axis=1)


# --------------------------------------------------------------------------- floor and world
@dataclass
class WorldFrame:
    """The world shared by every person of a video, from its camera and floor.

    rotation: (3, 3) world-from-camera rotation in the Y-up convention (x the camera's right
    made level, y up, z towards the camera); camera_height_m: the camera's height above the
    floor; up: the axis that points up in the written world, "y" or "z". ``floor``: how the
    plane was found (method, contacts used, their spread about it).
    """

    rotation: np.ndarray
    camera_height_m: float
    up: str = "y"
    floor: dict = field(default_factory=dict)

    @property
    def up_camera(self) -> np.ndarray:
        """The world's up direction in camera axes."""
        return self.rotation[1].copy()

    @property
    def axes(self) -> np.ndarray:
        """Y-up world -> the written world (identity for up='y')."""
        return world_axes(self.up)

    def matrix(self) -> np.ndarray:
        """(4, 4) world-from-camera transform in the written axes (metres)."""
        out = np.eye(4)
        out[:3, :3] = self.axes @ self.rotation
        out[:3, 3] = self.axes @ [0.0, self.camera_height_m, 0.0]
        return out

    def to_world(self, points_camera: np.ndarray) -> np.ndarray:
        """(..., 3) camera-space metres -> world metres (written axes)."""
        m = self.matrix()
        return np.asarray(points_camera, float) @ m[:3, :3].T + m[:3, 3]

    def height(self, points_camera: np.ndarray) -> np.ndarray:
        """(..., 3) camera-space metres -> (...) height above the floor."""
        return np.asarray(points_camera, float) @ self.up_camera + self.camera_height_m

    def angles(self) -> dict:
        """The camera's pitch (down is positive) and roll (the world's up seen tilted to the
        image's right is positive), degrees."""
        up = self.up_camera  # camera axes: x right, y down, z forward
        return {"pitch_deg": math.degrees(math.asin(float(np.clip(-up[2], -1, 1)))),
                "roll_deg": math.degrees(math.atan2(up[0], -up[1]))}

    def to_json(self) -> dict:
        return {"up": self.up, "world_from_camera": np.round(self.matrix(), 6).tolist(),
                **{k: round(v, 3) for k, v in self.angles().items()},
                "camera_height_m": round(self.camera_height_m, 4), "floor": self.floor}

    @classmethod
    def from_json(cls, data: dict) -> "WorldFrame":
        up = str(data.get("up", "y"))
        if up not in ("y", "z"):
            raise ValueError(f"world up axis must be 'y' or 'z', not {up!r}")
        frame = cls(np.eye(3), 0.0, up, dict(data.get("floor", {})))
        m = np.asarray(data["world_from_camera"], float)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise ValueError("world_from_camera must be a finite 4x4 matrix")
        frame.rotation = frame.axes.T @ m[:3, :3]
        frame.camera_height_m = float((frame.axes.T @ m[:3, 3])[1])
        return frame


def world_rotation(up_camera: np.ndarray) -> np.ndarray:
    """The world-from-camera rotation (Y-up convention) that turns ``up_camera`` (the floor's
    normal in camera axes) straight up by the smallest rotation: with a level camera it is
    CAMERA_TO_YUP, pose3d.bvh's camera-to-world axes."""
    a = unit(np.asarray(up_camera, float))
    b = np.array([0.0, -1.0, 0.0])  # camera axes' up for a level camera
    # upside down any half turn will do: this one about x (rotations.swing would pick another axis)
    turn = np.diag([1.0, -1.0, -1.0]) if a @ b < -1 + 1e-9 else swing(a, b)
    return CAMERA_TO_YUP @ turn


def foot_contacts(joints_camera: np.ndarray, up: np.ndarray, fps: float,
                  valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A track's planted feet: ((N, 3) camera-space position of the lower ankle along ``up`` in
    each frame, (N,) bool: it moves slower than :data:`CONTACT_SPEED_M_S` and the frame is
    ``valid``)."""
    ankles = joints_camera[:, list(ANKLES)]
    lower = np.argmin(ankles @ up, axis=1)
    points = ankles[np.arange(len(ankles)), lower]
    speed = np.full(len(points), np.inf)
    if len(points) >= 2:
        step = np.linalg.norm(np.gradient(ankles, axis=0), axis=-1) * fps
        speed = step[np.arange(len(points)), lower]
    planted = speed < CONTACT_SPEED_M_S
    if valid is not None:
        planted &= valid
    return points, planted


def fit_floor(points: np.ndarray, prior_up: np.ndarray, iterations: int = 4) -> tuple[np.ndarray, float, np.ndarray]:
    """A plane through (M, 3) ankle positions (camera space): (up normal, camera height above
    the ankle plane, inlier mask). The normal minimises the points' spread about the plane plus
    :data:`FLOOR_PRIOR_M2` times its squared deviation from ``prior_up``, so directions in which
    the points do not spread (a single line of footsteps) keep the prior's tilt. Points far from
    the plane (a foot in the air, a bad depth) are dropped and the plane refitted."""
    prior = np.asarray(prior_up, float) / np.linalg.norm(prior_up)
    normal = prior
    inliers = _near_plane(points @ prior, np.ones(len(points), bool))
    for _ in range(iterations):
        p = points[inliers]
        centre = p.mean(axis=0)
        scatter = (p - centre).T @ (p - centre) / len(p)
        penalty = FLOOR_PRIOR_M2 * (np.eye(3) - np.outer(prior, prior))
        vector = np.linalg.eigh(scatter + penalty)[1][:, 0]
        if abs(vector @ prior) < MIN_FLOOR_COS:  # the points spread along the up direction, not a floor
            break
        normal = vector * np.sign(vector @ prior)
        updated = _near_plane(points @ normal, inliers)
        if updated.sum() < MIN_CONTACTS or (updated == inliers).all():
            break
        inliers = updated
    centre = points[inliers].mean(axis=0)
    return normal, float(-(centre @ normal)), inliers


def _near_plane(heights: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """Points whose height lies within :data:`FLOOR_INLIER_M` (or 2.5 robust sigmas) of the
    median height of the current inliers."""
    residual = heights - np.median(heights[inliers])
    spread = 1.4826 * np.median(np.abs(residual[inliers]))
    return np.abs(residual) < max(FLOOR_INLIER_M, 2.5 * spread)


def estimate_world(tracks_camera: list[np.ndarray], fps: float, up: str = "y",
                   valid: list[np.ndarray] | None = None) -> WorldFrame:
    """One world frame from every track's camera-space joints ((N_i, 17, 3) metres): the floor
    through the planted ankles (lowered by the ankle height) of all of them. With fewer than
    :data:`MIN_CONTACTS` contacts, the floor is under the lowest ankles, levelled on the
    people's mean up direction."""
    if up not in ("y", "z"):
        raise InputError(f"world up axis must be 'y' or 'z', not {up!r}")
    if not tracks_camera:
        raise InputError("no tracks to place in a world")
    ups = [ground_contact(j)[0] * len(j) for j in tracks_camera]  # each person's spine direction
    prior = np.sum(ups, axis=0)
    prior /= max(np.linalg.norm(prior), 1e-9)
    valid = valid or [None] * len(tracks_camera)
    contacts = np.concatenate([points[planted] for points, planted in
                               (foot_contacts(j, prior, fps, v) for j, v in zip(tracks_camera, valid))])
    if len(contacts) >= MIN_CONTACTS:
        normal, ankle_plane_height, inliers = fit_floor(contacts, prior)
        residual = contacts[inliers] @ normal + ankle_plane_height
        floor = {"method": "plane through planted ankles", "contacts": int(len(contacts)),
                 "inliers": int(inliers.sum()), "rms_m": round(float(np.sqrt(np.mean(residual ** 2))), 4),
                 "tilt_from_people_deg": round(math.degrees(math.acos(float(np.clip(normal @ prior, -1, 1)))), 2)}
    else:
        normal = prior
        lowest = np.concatenate([j[:, list(ANKLES)].reshape(-1, 3) for j in tracks_camera]) @ normal
        ankle_plane_height = float(-np.percentile(lowest, 5))
        floor = {"method": "under the lowest ankles, levelled on the people's up", "contacts": int(len(contacts))}
    world = WorldFrame(world_rotation(normal), ankle_plane_height + ANKLE_HEIGHT_M, up, floor)
    log.info("floor: camera %.2f m high, pitch %.1f, roll %.1f degrees (%s)", world.camera_height_m,
             world.angles()["pitch_deg"], world.angles()["roll_deg"], floor["method"])
    return world


def settle_on_floor(joints_camera: np.ndarray, world: WorldFrame, fps: float, valid: np.ndarray | None = None,
                    sigma_seconds: float = SETTLE_SMOOTHING_SECONDS) -> np.ndarray:
    """(N,) metres to move a track's root along the world's up so that its planted ankle stands
    at the ankle height: measured where a foot is planted (slow and within
    :data:`CONTACT_HEIGHT_M` of the floor), interpolated between (a jump keeps its flight),
    smoothed over time. Zero when no foot is ever planted."""
    points, planted = foot_contacts(joints_camera, world.up_camera, fps, valid)
    planted &= world.height(points) < ANKLE_HEIGHT_M + CONTACT_HEIGHT_M  # not the top of a jump
    if not planted.any():
        return np.zeros(len(joints_camera))
    frames = np.arange(len(points), dtype=float)
    lift = np.interp(frames, frames[planted], ANKLE_HEIGHT_M - world.height(points[planted]))
    return smooth_keeping_trends(lift, sigma_seconds * fps)


def size_from_floor(joints_camera: np.ndarray, world: WorldFrame, fps: float, valid: np.ndarray | None = None) -> float:
    """The factor by which to scale a track in camera space (its pose and root alike, which keeps
    its projection) so that its planted ankles stand on ``world``'s floor: a person taller or
    shorter than the body assumed is placed too far or too near along the camera's rays, and
    lands below or above the floor that the others share. 1 when the camera is less than
    :data:`MIN_CAMERA_HEIGHT_M` above the ankles (the floor is seen too flat to tell) or no
    foot is planted; clipped to [0.75, 1.33]."""
    points, planted = foot_contacts(joints_camera, world.up_camera, fps, valid)
    drop = world.camera_height_m - ANKLE_HEIGHT_M  # from the camera down to a planted ankle
    if not planted.any() or drop < MIN_CAMERA_HEIGHT_M:
        return 1.0
    below = -(points[planted] @ world.up_camera)
    return float(np.clip(drop / max(np.median(below), 1e-3), 0.75, 1.33))


def place_in_world(joints_m: list[np.ndarray], roots: list[np.ndarray], fps: float, up: str = "y",
                   valid: list[np.ndarray] | None = None, settle: bool = True,
                   resize: bool = False) -> tuple[WorldFrame, list[float], list[np.ndarray]]:
    """Every track of a video in one world: the floor from all of them (:func:`estimate_world`);
    with ``resize`` and several tracks, each track scaled along the camera's rays so that its
    feet stand on that floor (:func:`size_from_floor`; for people of unknown height) and the
    floor fitted again; with ``settle``, each root moved along the world's up so that planted
    feet stand on it (:func:`settle_on_floor`). joints_m: (N_i, 17, 3) root-relative metres;
    roots: (N_i, 3) camera space. Returns the world, each track's scale (multiply its joints and
    root by it) and the placed roots (scale applied)."""
    valid = valid or [None] * len(joints_m)
    world = estimate_world([j + r[:, None] for j, r in zip(joints_m, roots)], fps, up, valid)
    scales = [1.0] * len(joints_m)
    if resize and len(joints_m) > 1:
        scales = [size_from_floor(j + r[:, None], world, fps, v) for j, r, v in zip(joints_m, roots, valid)]
        joints_m = [j * k for j, k in zip(joints_m, scales)]
        roots = [r * k for r, k in zip(roots, scales)]
        world = estimate_world([j + r[:, None] for j, r in zip(joints_m, roots)], fps, up, valid)
    if settle:
        roots = [r + settle_on_floor(j + r[:, None], world, fps, v)[:, None] * world.up_camera
                 for j, r, v in zip(joints_m, roots, valid)]
    return world, scales, roots
