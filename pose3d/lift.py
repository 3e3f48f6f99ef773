"""The 3D stage and the whole ``pose3d lift`` pipeline: video -> 2D tracks -> 3D tracks.

:class:`Lifter` holds a loaded lifter (load it once, lift many videos). Lifting a 2D track:

1. pixels -> normalised units (pose3d.codec);
2. the model runs on the frame rate it was trained at (every k-th frame, interleaved phases)
   in overlapping, blended windows with flip averaging (pose3d.windows);
3. units -> metres: each frame's scale is chosen so its bone lengths sum to those of the
   reference body (the training subjects' mean, or that body rescaled to ``height_m``),
   smoothed over time (pose3d.codec.scales_from_bone_lengths);
4. optional post-processing (pose3d.postprocess) and quality figures;
5. where the person is (pose3d.trajectory): the root in camera space from the 2D keypoints
   and the metric pose under the video's camera model.

Output joints are root-relative metres in camera axes, with each track's root positions in
camera space and one world frame (floor level at 0) for the whole video (pose3d.tracks).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import codec, postprocess, trajectory
from .devices import choose_device
from .errors import DependencyError, InputError
from .windows import predict_sequence
from .progress import progress_bar
from .scan import resolve_backend
from .skeleton import H36M_BONE_LENGTHS_M, standing_height
from .tracks import LiftResult, Track2D, Track3D, VideoInfo

log = logging.getLogger(__name__)

MIN_HEIGHT_M, MAX_HEIGHT_M = 0.5, 2.6
MAX_GAP_SECONDS = 5.0  # interpolating longer gaps would invent the motion


@dataclass(frozen=True)
class LiftSettings:
    """What ``pose3d lift`` does; part of the key that batch mode uses to resume."""

    backend: str = "mediapipe"      # 2D backend
    backend_options: dict = field(default_factory=dict)  # e.g. mmpose config/checkpoint files
    people: str = "main"            # main | all
    person: int | None = None       # a track id, instead of the main person
    height_m: float | None = None   # rescale the body to this standing height
    flip: bool = True               # flip averaging
    postprocess: bool = True        # smoothing + constant bone lengths + floor
    max_gap_seconds: float = 0.5    # longer gaps split a track
    batch_size: int = 8             # windows per forward pass
    focal_px: float | None = None   # the camera's focal length (default: max(width, height))
    fov_deg: float | None = None    # ... or its field of view across the larger image side
    up: str = "y"                   # the world's up axis in the output: y or z

    def check(self) -> "LiftSettings":
        if self.people not in ("main", "all"):
            raise InputError(f"people must be 'main' or 'all', not {self.people!r}")
        if self.height_m is not None and not (MIN_HEIGHT_M <= self.height_m <= MAX_HEIGHT_M):
            raise InputError(f"--height is in metres and must lie in [{MIN_HEIGHT_M}, {MAX_HEIGHT_M}], "
                             f"not {self.height_m}")
        if not (0 < self.max_gap_seconds <= MAX_GAP_SECONDS):
            raise InputError(f"--max-gap is in seconds and must lie in (0, {MAX_GAP_SECONDS:g}], not {self.max_gap_seconds}")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if self.up not in ("y", "z"):
            raise InputError(f"--up must be 'y' or 'z', not {self.up!r}")
        self.camera(1, 1)  # checks --focal / --fov
        return self

    def camera(self, width: int, height: int) -> trajectory.CameraModel:
        """The camera model of a ``width`` x ``height`` video under these settings."""
        return trajectory.CameraModel.for_video(width, height, focal_px=self.focal_px, fov_deg=self.fov_deg)


def choose_frame_step(video_fps: float, trained_fps: list[float], tolerance: float = 1.3) -> int:
    """The smallest k >= 1 for which video_fps / k lies within ``tolerance`` (a ratio) of a
    frame rate the model was trained at (keeping as many frames as possible); failing that,
    the k that comes closest."""
    candidates = range(1, max(1, int(round(video_fps / min(trained_fps)))) + 2)
    mismatch = {k: min(abs(math.log(video_fps / k / f)) for f in trained_fps) for k in candidates}
    within = [k for k in candidates if mismatch[k] <= math.log(tolerance)]
    return within[0] if within else min(candidates, key=mismatch.get)


class Lifter:
    """A loaded PoseMamba lifter and the training facts it needs (frame rate, body size)."""

    def __init__(self, weights: str | Path | None = None, device: str = "auto", scan: str = "auto"):
        from .weights import load_weights

        self.device = choose_device(device)
        try:
            self.scan = resolve_backend(scan, self.device)
        except ValueError as exc:
            raise DependencyError(str(exc)) from None
        self.model, self.meta = load_weights(weights, device=self.device, scan_backend=self.scan)
        self.clip_frames = self.model.config.max_frames
        fps = float(self.meta.get("fps") or 50.0)
        steps = self.meta.get("frame_steps") or [1]
        self.trained_fps = [fps * min(steps) / s for s in steps]
        self.reference_bones = np.asarray(self.meta.get("reference_bone_lengths_m") or H36M_BONE_LENGTHS_M)

    def describe(self) -> dict:
        return {"name": f"PoseMamba-{self.meta.get('preset', '?')}", "weights": Path(self.meta["path"]).name,
                "sha256": self.meta["sha256"], "clip_frames": self.clip_frames, "trained_fps": self.trained_fps,
                "device": str(self.device), "scan": self.scan}

    def body_bones(self, height_m: float | None) -> np.ndarray:
        """Reference bone lengths (m), rescaled to a standing height when one is given."""
        if height_m is None:
            return self.reference_bones
        return self.reference_bones * (height_m / standing_height(self.reference_bones))

    def lift(self, track: Track2D, video: VideoInfo, settings: LiftSettings,
             camera: trajectory.CameraModel | None = None) -> Track3D:
        """One 2D track (pixels) -> a Track3D (metres), with its root in camera space under
        ``camera`` (default: the settings' camera model for the video)."""
        normalised = codec.normalize_2d_person(track.keypoints.astype(np.float32))
        step = choose_frame_step(video.fps, self.trained_fps)
        pred = predict_sequence(self.model, normalised, clip_frames=self.clip_frames, flip=settings.flip,
                                frame_step=min(step, len(track)), batch_size=settings.batch_size)
        scales = codec.scales_from_bone_lengths(pred, self.body_bones(settings.height_m), video.fps)
        joints = codec.model_to_metres(pred.astype(float), scales)
        raw_quality = postprocess.quality(joints, video.fps)
        up = root_height = None
        if settings.postprocess:
            joints = postprocess.postprocess(joints, video.fps)
            up, root_height = postprocess.ground_contact(joints)
        quality = {**postprocess.quality(joints, video.fps), "raw": raw_quality, "frame_step": step}
        root = trajectory.root_trajectory(joints, track.keypoints, track.scores, track.interpolated, track.frames,
                                          camera or settings.camera(video.width, video.height), video.fps)
        return Track3D(track.id, track.frames, track.keypoints, track.scores, track.interpolated,
                       joints_3d=joints.astype(np.float32), up=up, root_height_m=root_height,
                       scale=float(np.median(scales)), quality=quality, root_camera=root)

    def lift_all(self, tracks: list[Track2D], video: VideoInfo, settings: LiftSettings) -> list[Track3D]:
        out = []
        with progress_bar() as progress:
            task = progress.add_task("3D lifting", total=sum(len(t) for t in tracks))
            for track in tracks:
                out.append(self.lift(track, video, settings))
                progress.advance(task, len(track))
        return out


def _result(video: VideoInfo, keypoints_2d: dict, lifter: Lifter, tracks: list[Track2D], main_id: int | None,
            settings: LiftSettings, timings: dict) -> LiftResult:
    started = time.perf_counter()
    lifted = lifter.lift_all(tracks, video, settings)
    world = None
    if lifted:
        world, scales, roots = trajectory.place_in_world(
            [t.joints_3d for t in lifted], [t.root_camera for t in lifted], video.fps, settings.up,
            valid=[~t.interpolated for t in lifted], settle=settings.postprocess, resize=settings.height_m is None)
        for track, size, root in zip(lifted, scales, roots):
            _resize(track, size)
            track.root_camera = root
    timings["lift_s"] = time.perf_counter() - started
    model = {**lifter.describe(), "flip": settings.flip}
    if settings.height_m is not None:
        model["height_m"] = settings.height_m
    post = {"enabled": settings.postprocess}
    if settings.postprocess:
        post.update(smoothing_sigma_s=postprocess.SMOOTH_SECONDS, bone_lengths="median of the track",
                    floor="under the lower foot, per frame", feet_on_floor="planted feet settled on the shared floor")
    return LiftResult(video=video, keypoints_2d=keypoints_2d, model=model, tracks=lifted, main_track=main_id,
                      postprocess=post, timings={k: round(v, 3) for k, v in timings.items()},
                      camera=settings.camera(video.width, video.height), world=world)


def _resize(track: Track3D, size: float) -> None:
    """Scale a track's body by ``size`` (pose3d.trajectory.size_from_floor: the size at which its
    feet stand on the floor the video's people share)."""
    if size == 1.0:
        return
    track.joints_3d = (track.joints_3d * size).astype(np.float32)
    track.root_height_m = None if track.root_height_m is None else track.root_height_m * size
    track.scale /= size
    track.quality["size_from_floor"] = round(size, 4)


def lift_video(path: str | Path, lifter: Lifter, settings: LiftSettings = LiftSettings(), *,
               backend=None, fps: float | None = None) -> LiftResult:
    """Video file, image folder or image -> LiftResult. ``backend``: a 2D backend instance to
    reuse (created from ``settings.backend`` when None)."""
    from .keypoints import create_backend, extract_tracks, select_tracks
    from .video import open_source

    settings.check()
    source = open_source(path, fps=fps)
    own_backend = backend is None
    backend = create_backend(settings.backend, **settings.backend_options) if own_backend else backend
    try:
        people = "all" if settings.people == "all" or settings.person is not None else "main"
        tracks, facts = extract_tracks(source, backend, people=people, max_gap_seconds=settings.max_gap_seconds)
    finally:
        if own_backend:
            backend.close()
    chosen, main_id = select_tracks(tracks, settings.people, settings.person, str(path))
    keypoints_2d = {"backend": settings.backend, **backend.settings, "strategy": facts["strategy"],
                    "tracks_found": len(tracks)}
    return _result(source.info, keypoints_2d, lifter, chosen, main_id, settings, {"keypoints_2d_s": facts["seconds"]})


def lift_keypoints(path: str | Path, lifter: Lifter, settings: LiftSettings = LiftSettings(), *,
                   size: tuple[int, int] | None = None, fps: float | None = None,
                   video: str | Path | None = None) -> LiftResult:
    """A 2D keypoint file (pose3d.keypoints.files) -> LiftResult. ``video``: the source video,
    for its size, frame rate and path (render uses it)."""
    from .keypoints import select_tracks
    from .keypoints.files import load_keypoints

    settings.check()
    source_info = None
    if video is not None:
        from .video import open_source

        source_info = open_source(video).info
        size = size or (source_info.width, source_info.height)
        fps = fps or (source_info.fps if source_info.fps_source != "assumed" else None)
    tracks, info = load_keypoints(path, size=size, fps=fps, max_gap_seconds=settings.max_gap_seconds)
    if source_info is not None:
        info = replace(info, path=source_info.path, num_frames=max(source_info.num_frames, info.num_frames))
    chosen, main_id = select_tracks(tracks, settings.people, settings.person, str(path))
    keypoints_2d = {"backend": "file", "file": str(path), "tracks_found": len(tracks)}
    return _result(info, keypoints_2d, lifter, chosen, main_id, settings, {})
