"""The data passed between pipeline stages: frames -> 2D tracks -> 3D tracks -> files.

Units and axes at these boundaries:
* 2D keypoints: pixels of the source frame, origin at the top-left corner, x right, y down;
  confidence in [0, 1]. Joint order: pose3d.skeleton (Human3.6M-17).
* 3D joints: metres, root-relative (joint 0, the pelvis, at the origin), camera axes:
  x right, y down, z away from the camera.
* Root positions: metres, camera space (the camera at the origin, the same axes); the world
  frame (floor level at 0) is a pose3d.trajectory.WorldFrame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .skeleton import NUM_JOINTS

if TYPE_CHECKING:
    from .trajectory import CameraModel, WorldFrame


@dataclass
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int
    num_frames: int
    fps_source: str = "container"  # container | assumed (missing or unusable metadata) | user


@dataclass
class Detection:
    """One person in one frame, as a 2D backend finds them (pose3d.association joins them into
    tracks); ``follow_box``: where to look for them in the next frame, when the detector knows
    better than the keypoints' box (a crouching person's box shrinks)."""

    keypoints: np.ndarray     # (17, 2) pixels
    scores: np.ndarray        # (17,) confidence in [0, 1]
    box: np.ndarray           # (4,) x0, y0, x1, y1 pixels: the keypoints' box
    follow_box: np.ndarray | None = None  # (4,) pixels, or None


@dataclass
class Track2D:
    """One person over the frames where they were found (or interpolated)."""

    id: int
    frames: np.ndarray        # (N,) int, increasing frame indices
    keypoints: np.ndarray     # (N, 17, 2) pixels
    scores: np.ndarray        # (N, 17) confidence in [0, 1] (0 where interpolated)
    interpolated: np.ndarray  # (N,) bool: filled in across a short gap

    def __post_init__(self):
        n = len(self.frames)
        assert self.keypoints.shape == (n, NUM_JOINTS, 2) and self.scores.shape == (n, NUM_JOINTS)
        assert self.interpolated.shape == (n,)

    def __len__(self) -> int:
        return len(self.frames)

    def box_heights(self) -> np.ndarray:
        return self.keypoints[..., 1].max(axis=1) - self.keypoints[..., 1].min(axis=1)


@dataclass
class Track3D(Track2D):
    """A 2D track with its lifted 3D joints.

    joints_3d: (N, 17, 3) metres, root-relative, camera axes.
    up: (3,) the person's up direction in camera axes; root_height_m: (N,) pelvis height above
    the floor under the lower foot (both None unless post-processing estimated them).
    scale: the median over the track of the network's normalised units per metre (the
    conversion to metres uses one scale per frame; pose3d.codec.scales_from_bone_lengths).
    quality: figures such as jitter and bone-length variation (pose3d.postprocess.quality).
    root_camera: (N, 3) the pelvis in camera space, metres (pose3d.trajectory), or None (files
    written before schema version 2).
    """

    joints_3d: np.ndarray
    up: np.ndarray | None = None
    root_height_m: np.ndarray | None = None
    scale: float = 1.0
    quality: dict = field(default_factory=dict)
    root_camera: np.ndarray | None = None

    def __post_init__(self):
        super().__post_init__()
        assert self.joints_3d.shape == (len(self.frames), NUM_JOINTS, 3)

    def joints_camera(self) -> np.ndarray:
        """(N, 17, 3) joints in camera space (metres); root-relative when no root is known."""
        return self.joints_3d if self.root_camera is None else self.joints_3d + self.root_camera[:, None, :]

    def root_positions(self) -> np.ndarray:
        """(N, 3) pelvis positions over a floor through the origin (camera axes), for exports
        that move the root; zeros when no floor was estimated."""
        if self.up is None or self.root_height_m is None:
            return np.zeros((len(self), 3))
        return self.root_height_m[:, None] * self.up[None, :]


@dataclass
class LiftResult:
    """Everything ``pose3d lift`` produces; pose3d.export writes it as JSON or npz."""

    video: VideoInfo
    keypoints_2d: dict        # backend name and settings
    model: dict               # lifter name, weights file and hash, settings
    tracks: list[Track3D]
    main_track: int | None    # id of the main person, when chosen
    postprocess: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds per stage
    camera: CameraModel | None = None  # the video's intrinsics (None: files before schema version 2)
    world: WorldFrame | None = None    # floor and world frame shared by all tracks
