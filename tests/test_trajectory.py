"""Camera model, root trajectory and floor (pose3d.trajectory) on constructed scenes."""

import math

import numpy as np
import pytest
from helpers import walking_skeleton

from pose3d.errors import InputError
from pose3d.skeleton import ANKLE_HEIGHT_M
from pose3d.trajectory import CameraModel, WorldFrame, estimate_world, fit_root, root_trajectory, world_rotation

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
    assert np.abs(roots - truth).max(axis=0)[:2].max() < 0.03 and np.abs(roots - truth)[:, 2].mean() < 0.1


def test_low_confidence_joints_and_interpolated_frames():
    camera = CameraModel.for_video(640, 480)
    joints = walking_skeleton(40, FPS)
    truth = np.tile([0.2, 0.1, 4.0], (40, 1)) + np.linspace(0, 1, 40)[:, None] * [0.5, 0.0, -1.0]
    keypoints = camera.project(joints + truth[:, None])
    scores = np.ones((40, 17))
    keypoints[:, 13] += 80  # a wrist far off, but with no confidence: ignored
    scores[:, 13] = 0.0
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
