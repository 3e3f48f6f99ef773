"""Results on disk: the versioned JSON (``pose3d/schema/pose3d-result.schema.json``), npz for
Python users, CSV for spreadsheets, and BVH (pose3d.bvh) for animation packages.

Every writer is atomic (pose3d.io_utils). :func:`read_result` reads JSON or npz back into a
:class:`~pose3d.tracks.LiftResult` and refuses files of a newer schema version.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError
from .io_utils import atomic_output
from .skeleton import BONES, JOINT_NAMES, NUM_JOINTS
from .tracks import LiftResult, Track3D, VideoInfo
from .trajectory import CameraModel, WorldFrame

log = logging.getLogger(__name__)

FORMAT = "pose3d-result"
SCHEMA_VERSION = 2  # 2: camera model, root_camera, world frame and joints_world (version 1 files still read)
UNITS = {"keypoints_2d": "pixels of the source frame (x right, y down, origin top-left) and confidence in [0, 1]",
         "joints_3d": "metres, root-relative (pelvis at 0), camera axes: x right, y down, z away from the camera",
         "root_camera": "metres, the pelvis in camera space (camera at 0, the axes of joints_3d)",
         "joints_world": "metres, the world shared by all tracks: floor at 0, up along camera.world.up "
                         "(y: x right, y up, z towards the camera; z: x right, y away, z up)",
         "up": "the person's up direction, a unit vector in camera axes",
         "root_height": "metres from the floor (under the lower foot) up to the pelvis"}
RESULT_SUFFIXES = (".json", ".npz")


def schema_path() -> Path:
    return Path(__file__).with_name("schema") / "pose3d-result.schema.json"


# --------------------------------------------------------------------------- JSON
def _rounded(array: np.ndarray, decimals: int) -> list:
    return np.round(np.asarray(array, dtype=float), decimals).tolist()


def result_header(result: LiftResult) -> dict:
    """Everything but the per-frame data (also the npz's ``meta``)."""
    v = result.video
    return {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "pose3d_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "video": {"path": v.path, "fps": v.fps, "fps_source": v.fps_source, "width": v.width,
                  "height": v.height, "frames": v.num_frames},
        "keypoints_2d": result.keypoints_2d, "model": result.model, "postprocess": result.postprocess,
        "timings": result.timings, "units": UNITS,
        "joint_names": list(JOINT_NAMES), "bones": [list(b) for b in BONES], "main_track": result.main_track,
        **({"camera": camera_json(result)} if result.camera is not None else {}),
    }


def camera_json(result: LiftResult) -> dict:
    """The header's ``camera`` block: intrinsics and, when estimated, the world frame."""
    out = result.camera.to_json()
    if result.world is not None:
        out["world"] = result.world.to_json()
    return out


def joints_world(result: LiftResult, track: Track3D) -> np.ndarray | None:
    """(N, 17, 3) the track's joints in the shared world (metres), or None without one."""
    if result.world is None or track.root_camera is None:
        return None
    return result.world.to_world(track.joints_camera())


def _track_json(track: Track3D, world: np.ndarray | None) -> dict:
    kp = np.concatenate([track.keypoints, track.scores[..., None]], axis=-1)
    kp = _rounded(kp, 3)
    j3 = _rounded(track.joints_3d, 4)
    heights = None if track.root_height_m is None else _rounded(track.root_height_m, 4)
    roots = None if track.root_camera is None else _rounded(track.root_camera, 4)
    world = None if world is None else _rounded(world, 4)
    frames = []
    for i, frame in enumerate(track.frames.tolist()):
        entry = {"frame": frame, "interpolated": bool(track.interpolated[i]), "keypoints_2d": kp[i], "joints_3d": j3[i]}
        if heights is not None:
            entry["root_height"] = heights[i]
        if roots is not None:
            entry["root_camera"] = roots[i]
        if world is not None:
            entry["joints_world"] = world[i]
        frames.append(entry)
    out = {"id": int(track.id), "num_frames": len(track), "scale": round(track.scale, 6), "quality": track.quality}
    if track.up is not None:
        out["up"] = _rounded(track.up, 5)
    out["frames"] = frames
    return out


def write_json(result: LiftResult, path: str | Path) -> None:
    payload = {**result_header(result), "tracks": [_track_json(t, joints_world(result, t)) for t in result.tracks]}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, separators=(",", ":")))


# --------------------------------------------------------------------------- npz
def write_npz(result: LiftResult, path: str | Path) -> None:
    """Arrays per track ``t{id}_*``: frames (N,), keypoints_2d (N, 17, 3), joints_3d (N, 17, 3),
    interpolated (N,), root_height (N,) and up (3,) when estimated, root_camera (N, 3) and
    joints_world (N, 17, 3) when known; ``meta``: the JSON header (with the camera block)."""
    arrays = {"meta": np.array(json.dumps({**result_header(result), "track_ids": [t.id for t in result.tracks],
                                           "track_info": {str(t.id): {"scale": t.scale, "quality": t.quality}
                                                          for t in result.tracks}}))}
    for t in result.tracks:
        arrays.update({f"t{t.id}_frames": t.frames, f"t{t.id}_interpolated": t.interpolated,
                       f"t{t.id}_keypoints_2d": np.concatenate([t.keypoints, t.scores[..., None]], -1).astype(np.float32),
                       f"t{t.id}_joints_3d": t.joints_3d.astype(np.float32)})
        if t.up is not None:
            arrays.update({f"t{t.id}_up": t.up, f"t{t.id}_root_height": t.root_height_m})
        if t.root_camera is not None:
            arrays[f"t{t.id}_root_camera"] = t.root_camera.astype(np.float32)
        world = joints_world(result, t)
        if world is not None:
            arrays[f"t{t.id}_joints_world"] = world.astype(np.float32)
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


# --------------------------------------------------------------------------- CSV
def write_csv(result: LiftResult, path: str | Path) -> None:
    """One row per track and frame: track, frame, time_s, interpolated, <joint>_x/_y/_z (metres,
    root-relative, camera axes); with a trajectory also root_camera_x/_y/_z and
    <joint>_world_x/_y/_z (the shared world, pose3d.trajectory)."""
    with_world = all(joints_world(result, t) is not None for t in result.tracks)
    header = ["track", "frame", "time_s", "interpolated"] + [f"{n}_{a}" for n in JOINT_NAMES for a in "xyz"]
    if with_world:
        header += [f"root_camera_{a}" for a in "xyz"] + [f"{n}_world_{a}" for n in JOINT_NAMES for a in "xyz"]
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for t in result.tracks:
                columns = [t.joints_3d.reshape(len(t), -1)]
                if with_world:
                    columns += [t.root_camera, joints_world(result, t).reshape(len(t), -1)]
                flat = np.round(np.concatenate(columns, axis=1).astype(float), 5)
                for i, frame in enumerate(t.frames.tolist()):
                    writer.writerow([t.id, frame, round(frame / result.video.fps, 4), int(t.interpolated[i]),
                                     *flat[i].tolist()])


# --------------------------------------------------------------------------- reading
def read_result(path: str | Path) -> LiftResult:
    """A pose3d result (.json or .npz) -> LiftResult; InputError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({type(exc).__name__}: {exc})") from None
    header = _check_header(payload, path)
    try:
        tracks = [_track_from_json(t) for t in payload["tracks"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed track data ({type(exc).__name__}: {exc})") from None
    return _result_from(header, tracks, path)


def _check_header(payload, path: Path, required=("video", "tracks")) -> dict:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a pose3d result (no \"format\": \"{FORMAT}\")")
    version = payload.get("schema_version")
    if not isinstance(version, int):
        raise InputError(f"{path}: schema_version missing or not an integer")
    if version > SCHEMA_VERSION:
        raise InputError(f"{path}: schema version {version} is newer than this pose3d reads ({SCHEMA_VERSION}); "
                         "upgrade pose3d")
    for key in required:
        if key not in payload:
            raise InputError(f"{path}: missing \"{key}\"")
    return payload


def _track_from_json(t: dict) -> Track3D:
    frames = t["frames"]
    kp = np.asarray([f["keypoints_2d"] for f in frames], dtype=float).reshape(len(frames), NUM_JOINTS, 3)
    j3 = np.asarray([f["joints_3d"] for f in frames], dtype=float).reshape(len(frames), NUM_JOINTS, 3)
    if not (np.isfinite(kp).all() and np.isfinite(j3).all()):
        raise ValueError(f"track {t['id']} has non-finite coordinates")
    heights = [f.get("root_height") for f in frames]
    has_floor = "up" in t and all(h is not None for h in heights)
    roots = None
    if frames and all("root_camera" in f for f in frames):  # schema version 2
        roots = np.asarray([f["root_camera"] for f in frames], dtype=float).reshape(len(frames), 3)
        if not np.isfinite(roots).all():
            raise ValueError(f"track {t['id']} has non-finite root positions")
    return Track3D(int(t["id"]), np.asarray([f["frame"] for f in frames], dtype=int), kp[..., :2], kp[..., 2],
                   np.asarray([bool(f.get("interpolated", False)) for f in frames]), joints_3d=j3,
                   up=np.asarray(t["up"], float) if has_floor else None,
                   root_height_m=np.asarray(heights, float) if has_floor else None,
                   scale=float(t.get("scale", 1.0)), quality=dict(t.get("quality", {})), root_camera=roots)


def _read_npz(path: Path) -> LiftResult:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = _check_header(json.loads(str(arrays["meta"])), path, required=("video", "track_ids"))
        tracks = []
        for tid in header["track_ids"]:
            kp = arrays[f"t{tid}_keypoints_2d"]
            info = header.get("track_info", {}).get(str(tid), {})
            has_floor = f"t{tid}_up" in arrays
            tracks.append(Track3D(int(tid), arrays[f"t{tid}_frames"].astype(int), kp[..., :2].astype(float),
                                  kp[..., 2].astype(float), arrays[f"t{tid}_interpolated"].astype(bool),
                                  joints_3d=arrays[f"t{tid}_joints_3d"].astype(float),
                                  up=arrays[f"t{tid}_up"] if has_floor else None,
                                  root_height_m=arrays[f"t{tid}_root_height"] if has_floor else None,
                                  scale=float(info.get("scale", 1.0)), quality=info.get("quality", {}),
                                  root_camera=arrays[f"t{tid}_root_camera"].astype(float)
                                  if f"t{tid}_root_camera" in arrays else None))
    except InputError:
        raise
    except Exception as exc:  # zip, key, shape and JSON errors alike
        raise InputError(f"{path}: not a readable pose3d .npz result ({type(exc).__name__}: {exc})") from None
    return _result_from(header, tracks, path)


def _result_from(header: dict, tracks: list[Track3D], path: Path) -> LiftResult:
    v = header["video"]
    try:
        video = VideoInfo(str(v["path"]), float(v["fps"]), int(v["width"]), int(v["height"]), int(v["frames"]),
                          str(v.get("fps_source", "container")))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed \"video\" entry ({type(exc).__name__}: {exc})") from None
    if not (video.fps > 0 and video.width > 0 and video.height > 0):
        raise InputError(f"{path}: video fps and size must be positive")
    camera = world = None
    if "camera" in header:  # schema version 2
        try:
            camera = CameraModel.from_json(header["camera"], video.width, video.height)
            world = WorldFrame.from_json(header["camera"]["world"]) if "world" in header["camera"] else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: malformed \"camera\" entry ({type(exc).__name__}: {exc})") from None
    return LiftResult(video=video, keypoints_2d=header.get("keypoints_2d", {}), model=header.get("model", {}),
                      tracks=tracks, main_track=header.get("main_track"), postprocess=header.get("postprocess", {}),
                      timings=header.get("timings", {}), camera=camera, world=world)


# --------------------------------------------------------------------------- dispatch
def select_track(result: LiftResult, track_id: int | None) -> Track3D:
    """The requested track, or the main one (the first when none is marked)."""
    if not result.tracks:
        raise InputError("the result has no tracks")
    wanted = result.main_track if track_id is None else track_id
    for t in result.tracks:
        if t.id == wanted:
            return t
    if track_id is None:
        return result.tracks[0]
    raise InputError(f"no track with id {track_id} (ids: {', '.join(str(t.id) for t in result.tracks)})")


def write_result(result: LiftResult, path: str | Path, *, track_id: int | None = None, bvh_options: dict | None = None) -> None:
    """Write by extension: .json, .npz, .csv (all tracks) or .bvh (one track)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        write_json(result, path)
    elif suffix == ".npz":
        write_npz(result, path)
    elif suffix == ".csv":
        write_csv(result, path)
    elif suffix == ".bvh":
        from .bvh import write_bvh

        track = select_track(result, track_id)
        if result.world is not None and track.root_camera is not None:
            # the shared world: the root over the floor, the scene turned so that the floor is level
            up = result.world.up_camera
            write_bvh(path, track.joints_3d, result.video.fps, root_m=track.root_camera + result.world.camera_height_m * up,
                      person_up=up, **(bvh_options or {}))
        else:
            write_bvh(path, track.joints_3d, result.video.fps, root_m=track.root_positions(), person_up=track.up,
                      **(bvh_options or {}))
    else:
        raise InputError(f"{path}: unknown output type {suffix or '(none)'}; use .json, .npz, .csv or .bvh")
