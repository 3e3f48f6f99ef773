"""Camera model, root trajectory and floor (pose3d.trajectory) on constructed scenes."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import walking_skeleton

from pose3d.errors import InputError
from pose3d.skeleton import ANKLE_HEIGHT_M, JOINT_NAMES
from pose3d.trajectory import (CameraModel, WorldFrame, estimate_world, fit_root, place_in_world, root_trajectory,
                               world_rotation)

FPS = 30.0


def camera_from_world(pitch_deg: float, roll_deg: float, height_m: float):
    """(R, t) mapping Y-up world points (x right, y up, z towards the camera; floor y = 0) into
    camera space for a camera ``height_m`` above the floor's origin, pitched down and rolled."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    pitch = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rotation = roll @ pitch @ np.diag([1.0, -1.0, -1.0])  # level camera, then pitch down, then roll
    return rotation, -rotation @ [0.0, height_m, 0.0]


def walker_in_world(frames: int, start, velocity, phase: float = 0.0) -> np.ndarray:
    """(frames, 17, 3) Y-up world joints of the walking skeleton (turned to face +z), its lower
    ankle at ANKLE_HEIGHT_M over y = 0, moving at ``velocity`` m/s from ``start`` (x, z)."""
    body = walking_skeleton(frames + int(phase * FPS), FPS)[int(phase * FPS):] @ np.diag([1.0, -1.0, -1.0])
    lowest = body[:, [3, 6], 1].min(axis=1)
    t = np.arange(frames) / FPS
    root = np.stack([start[0] + velocity[0] * t, ANKLE_HEIGHT_M - lowest, start[1] + velocity[1] * t], axis=1)
    return body + root[:, None, :]


def test_camera_model_defaults_and_overrides():
    cam = CameraModel.for_video(1280, 720)
    assert cam.focal_px == 1280 and cam.centre_px == (640, 360) and cam.source == "default"
    assert cam.fov_deg == pytest.approx(2 * math.degrees(math.atan(0.5)))
    assert CameraModel.for_video(1280, 720, fov_deg=90).focal_px == pytest.approx(640)
    assert CameraModel.for_video(720, 1280, focal_px=900).focal_px == 900  # portrait: any side
    for kwargs in ({"focal_px": -1}, {"fov_deg": 200}, {"focal_px": 900, "fov_deg": 60}):
        with pytest.raises(InputError):
            CameraModel.for_video(640, 480, **kwargs)
    again = CameraModel.from_json(cam.to_json(), 1280, 720)
    assert again.focal_px == cam.focal_px and again.centre_px == cam.centre_px


def test_known_pose_under_known_camera_and_translation_is_recovered():
    camera = CameraModel(1100.0, (630.0, 370.0), 1280, 720)
    joints = walking_skeleton(90, FPS)
    t = np.arange(90) / FPS
    truth = np.stack([-1.0 + 1.2 * t, 0.3 + 0.1 * np.sin(t), 7.0 - 1.3 * t], axis=1)  # walks towards the camera
    keypoints = camera.project(joints + truth[:, None])
    np.testing.assert_allclose(fit_root(joints, keypoints, np.ones((90, 17)), camera), truth, atol=1e-6)
    # 2 px of detector noise: the smoothed trajectory stays within a few cm (depth ~ 7 m)
    noisy = keypoints + np.random.default_rng(0).normal(0, 2.0, keypoints.shape)
    roots = root_trajectory(joints, noisy, np.ones((90, 17)), np.zeros(90, bool), np.arange(90), camera, FPS)
    assert np.abs(roots - truth).max(axis=0)[:2].max() < 0.05 and np.abs(roots - truth)[:, 2].mean() < 0.1


def test_low_confidence_joints_and_interpolated_frames():
    camera = CameraModel.for_video(640, 480)
    joints = walking_skeleton(40, FPS)
    truth = np.tile([0.2, 0.1, 4.0], (40, 1)) + np.linspace(0, 1, 40)[:, None] * [0.5, 0.0, -1.0]
    keypoints = camera.project(joints + truth[:, None])
    scores = np.ones((40, 17))
    keypoints[:, 5] += 80  # a knee far off, but with no confidence: ignored
    scores[:, 5] = 0.0
    interpolated = np.zeros(40, bool)
    interpolated[10:15] = True
    keypoints[10:15] = 0.0  # whatever the 2D holds there, the root is interpolated
    roots = root_trajectory(joints, keypoints, scores, interpolated, np.arange(40), camera, FPS, sigma_seconds=0)
    np.testing.assert_allclose(roots, truth, atol=1e-6)


def test_floor_of_several_walkers_under_a_tilted_camera():
    rotation, translation = camera_from_world(pitch_deg=25.0, roll_deg=-4.0, height_m=3.0)
    walkers = [walker_in_world(60, (-2.0, -8.0), (1.2, 0.3)), walker_in_world(60, (1.5, -12.0), (-0.4, 1.3), 0.3),
               walker_in_world(60, (0.0, -6.0), (0.0, -1.0), 0.6)]
    tracks = [w @ rotation.T + translation for w in walkers]
    world = estimate_world(tracks, FPS)
    assert world.angles()["pitch_deg"] == pytest.approx(25.0, abs=0.5)
    assert world.angles()["roll_deg"] == pytest.approx(-4.0, abs=0.5)
    assert world.camera_height_m == pytest.approx(3.0, abs=0.03)
    for w, track in zip(walkers, tracks):  # the same world up to a turn about the vertical
        placed = world.to_world(track)
        np.testing.assert_allclose(placed[..., 1], w[..., 1], atol=0.05)
        assert placed[:, [3, 6], 1].min(axis=1) == pytest.approx(np.full(60, ANKLE_HEIGHT_M), abs=0.05)
    assert world.floor["method"] == "plane through planted ankles" and world.floor["contacts"] > 30


def test_one_walker_in_a_line_keeps_the_roll_from_the_body():
    """Footsteps along one line leave the floor's tilt about that line open: the people's own
    up direction fills it in, while the slope along the line comes from the steps."""
    rotation, translation = camera_from_world(pitch_deg=10.0, roll_deg=0.0, height_m=1.6)
    track = walker_in_world(120, (0.0, -9.0), (0.0, 1.4)) @ rotation.T + translation
    world = estimate_world([track], FPS)
    assert world.angles()["pitch_deg"] == pytest.approx(10.0, abs=1.0)
    assert abs(world.angles()["roll_deg"]) < 1.0
    assert world.camera_height_m == pytest.approx(1.6, abs=0.05)


def test_world_frame_axes_and_round_trip():
    level = WorldFrame(world_rotation([0.0, -1.0, 0.0]), 1.5)
    np.testing.assert_allclose(level.rotation, np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(level.to_world([[0.0, 1.5, 4.0]]), [[0.0, 0.0, -4.0]])  # 4 m ahead on the floor
    z_up = WorldFrame(level.rotation, 1.5, up="z")
    np.testing.assert_allclose(z_up.to_world([[0.0, 1.5, 4.0]]), [[0.0, 4.0, 0.0]], atol=1e-12)
    tilted = WorldFrame(world_rotation([0.1, -0.9, -0.3]), 2.0, "z", {"method": "test"})
    again = WorldFrame.from_json(tilted.to_json())
    np.testing.assert_allclose(again.rotation, tilted.rotation, atol=1e-6)
    assert again.camera_height_m == pytest.approx(2.0) and again.up == "z" and again.floor == {"method": "test"}
    point = np.array([0.3, 0.2, 5.0])
    assert tilted.height(point) == pytest.approx(tilted.to_world(point)[2])


def test_planted_feet_settle_on_the_floor_and_a_jump_keeps_its_flight():
    rotation, translation = camera_from_world(pitch_deg=15.0, roll_deg=0.0, height_m=2.0)
    walker = walker_in_world(90, (0.0, -7.0), (0.0, 0.0))[:1].repeat(90, axis=0)  # standing still
    jump = np.zeros(90)
    jump[40:55] = 0.4 * np.sin(np.linspace(0, np.pi, 15))  # 0.3 s in the air, up to 40 cm
    walker[..., 1] += jump[:, None]
    track = walker @ rotation.T + translation
    joints, roots = track - track[:, :1], track[:, 0].copy()
    world = estimate_world([track], FPS)
    wobble = 0.06 * np.sin(np.arange(90) / 3.0)  # a root that bobs up and down by 6 cm (camera y)
    roots[:, 1] += wobble
    world, _, (settled,) = place_in_world([joints], [roots], FPS)
    feet = world.to_world(joints + settled[:, None])[:, [3, 6], 1].min(axis=1)
    on_ground = np.ones(90, bool)
    on_ground[38:57] = False
    assert np.abs(feet[on_ground] - ANKLE_HEIGHT_M).max() < 0.03  # within 3 cm (6 before)
    assert feet[47] > ANKLE_HEIGHT_M + 0.3  # still in the air at the top of the jump
    _, _, (unsettled,) = place_in_world([joints], [roots], FPS, settle=False)
    np.testing.assert_allclose(unsettled, roots)


# --------------------------------------------------------------------------- BVH in Blender
BLENDER_CHECK = Path(__file__).with_name("blender_check.py")
needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed")


def blender_positions(tmp_path: Path, bvh: Path, frames: int, fps: float) -> dict[str, np.ndarray]:
    """Import ``bvh`` into Blender (tests/blender_check.py, default options) and return every
    bone head's world position per frame, {bone: (frames, 3)}, Blender axes (Z up)."""
    from pose3d.bvh import BVH_JOINT_NAMES

    dump = tmp_path / "positions.json"
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"bone_names": list(BVH_JOINT_NAMES), "frames": frames, "fps": fps,
                                    "check_frames": [0, frames // 2, frames - 1], "dump": str(dump)}))
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                           str(BLENDER_CHECK), "--", str(bvh), str(expected)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(dump.read_text())
    positions = np.asarray(data["positions"])
    return {name: positions[:, i] for i, name in enumerate(data["bones"])}


def blender_from_world(world_yup: np.ndarray) -> np.ndarray:
    """Y-up world (x right, y up, z towards the camera) -> Blender after a default BVH import."""
    return np.stack([world_yup[..., 0], -world_yup[..., 2], world_yup[..., 1]], axis=-1)


def walking_result(tmp_path: Path):
    """A LiftResult of the synthetic walker crossing a tilted camera's view, placed by pose3d."""
    from pose3d.lift import LiftSettings
    from pose3d.tracks import LiftResult, Track3D, VideoInfo

    rotation, translation = camera_from_world(pitch_deg=12.0, roll_deg=3.0, height_m=1.8)
    walker = walker_in_world(75, (-1.5, -8.0), (0.6, 1.1)) @ rotation.T + translation
    camera = LiftSettings().camera(1280, 720)
    keypoints = camera.project(walker)
    joints = walker - walker[:, :1]
    roots = root_trajectory(joints, keypoints, np.ones((75, 17)), np.zeros(75, bool), np.arange(75), camera, FPS)
    world, _, (roots,) = place_in_world([joints], [roots], FPS)
    track = Track3D(0, np.arange(75), keypoints, np.ones((75, 17)), np.zeros(75, bool), joints_3d=joints,
                    root_camera=roots)
    return LiftResult(VideoInfo(str(tmp_path / "walk.mp4"), FPS, 1280, 720, 75), {"backend": "synthetic"},
                      {"name": "synthetic"}, [track], 0, camera=camera, world=world), walker


@needs_blender
@pytest.mark.slow
def test_blender_hips_travel_in_the_world(tmp_path):
    """The BVH of a placed track moves its hips through Blender's scene as the JSON's
    joints_world has them: every joint within a millimetre, frame by frame."""
    from pose3d.export import joints_world, write_result

    result, _ = walking_result(tmp_path)
    write_result(result, tmp_path / "walk.bvh")
    positions = blender_positions(tmp_path, tmp_path / "walk.bvh", 75, FPS)
    expected = blender_from_world(joints_world(result, result.tracks[0]))
    for j, name in enumerate(JOINT_NAMES):
        np.testing.assert_allclose(positions[name], expected[:, j], atol=1e-3, err_msg=name)
    hips = positions["hip"]
    assert np.linalg.norm(hips[-1, :2] - hips[0, :2]) > 2.5  # 2.5 s at 1.25 m/s
    assert np.abs(hips[:, 2] - hips[0, 2]).max() < 0.15  # the floor is level: the hips stay at hip height


@needs_blender
@pytest.mark.shared
@pytest.mark.slow
def test_street_walk_travels_on_the_floor_in_blender(tmp_path, shared_dir):
    """A real clip: a woman walks towards a hand-held camera for 4 s (the first 2 s mostly
    standing, turning from a hug); depth comes only from her growing size. Her BVH's hips travel
    in Blender at a walking pace, and her lower ankle stays on the floor."""
    from pose3d.export import write_result
    from pose3d.lift import Lifter, lift_video

    pytest.importorskip("mediapipe")
    result = lift_video(shared_dir / "videos" / "street_walk_720p.avi", Lifter())
    write_result(result, tmp_path / "walk.bvh")
    fps, frames = result.video.fps, len(result.tracks[0])
    positions = blender_positions(tmp_path, tmp_path / "walk.bvh", frames, fps)
    report = walk_report(positions, fps)
    print(report)  # pytest -s shows the figures
    assert report["travel_m"] > 2.0  # from about 7 to 4 m away (and sideways)
    assert 0.6 < report["walking_speed_m_s"] < 1.8
    assert report["feet_on_floor"] >= 0.9


def walk_report(positions: dict[str, np.ndarray], fps: float) -> dict:
    """Travel of the hips over the floor, walking speed (the last 2 s, where she walks), the
    share of frames whose lower ankle is within 5 cm of its standing height (its median over
    the frames) and foot skate: the mean horizontal slide, per frame, of an ankle that stays
    within 5 cm of that height on consecutive frames."""
    hips = positions["hip"][:, :2]
    ankles = np.stack([positions["left_foot"], positions["right_foot"]], axis=1)
    lower = ankles[..., 2].min(axis=1)
    standing = np.median(lower)
    last = int(2 * fps)
    planted = ankles[..., 2] < standing + 0.05
    slide = np.linalg.norm(np.diff(ankles[..., :2], axis=0), axis=-1)[planted[1:] & planted[:-1]]
    return {"travel_m": float(np.linalg.norm(hips[-1] - hips[0])),
            "walking_speed_m_s": float(np.linalg.norm(hips[-1] - hips[-last]) / (last / fps)),
            "standing_ankle_m": float(standing), "feet_on_floor": float(np.mean(np.abs(lower - standing) < 0.05)),
            "skate_cm_per_frame": float(100 * slide.mean()), "skate_cm_s": float(100 * fps * slide.mean())}


def test_people_of_unknown_height_are_sized_to_stand_on_the_shared_floor():
    """Three walkers; one was lifted with a body 15% too big (as if taller than the average
    body): along the camera's rays it sits 15% too far, below the others' floor. Resizing puts
    it back at its true place."""
    rotation, translation = camera_from_world(pitch_deg=20.0, roll_deg=0.0, height_m=3.0)
    walkers = [walker_in_world(60, (-2.0, -8.0), (1.2, 0.3)) @ rotation.T + translation,
               walker_in_world(60, (1.5, -12.0), (-0.4, 1.3), 0.3) @ rotation.T + translation,
               walker_in_world(60, (0.0, -6.0), (0.0, -1.0), 0.6) @ rotation.T + translation]
    seen = [w * k for w, k in zip(walkers, (1.0, 1.0, 1.15))]
    joints, roots = [w - w[:, :1] for w in seen], [w[:, 0] for w in seen]
    world, scales, placed = place_in_world(joints, roots, FPS, resize=True)
    np.testing.assert_allclose(scales, [1.0, 1.0, 1 / 1.15], atol=0.01)
    np.testing.assert_allclose(placed[2], walkers[2][:, 0], atol=0.03)
    assert world.camera_height_m == pytest.approx(3.0, abs=0.03)
    _, same, _ = place_in_world(joints, roots, FPS)  # resize=False (a height was given)
    assert same == [1.0, 1.0, 1.0]
