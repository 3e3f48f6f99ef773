"""Lifting 2D tracks to metres, keypoint files, post-processing and result files."""

import json

import numpy as np
import pytest
from helpers import keypoint_file, tiny_weights, walking_skeleton

from pose3d import postprocess
from pose3d.errors import InputError
from pose3d.export import SCHEMA_VERSION, read_result, schema_path, write_result
from pose3d.keypoints.files import load_keypoints, parse_size
from pose3d.lift import Lifter, LiftSettings, choose_frame_step, lift_keypoints
from pose3d.skeleton import ANKLE_HEIGHT_M, H36M_BONE_LENGTHS_M, JOINT_NAMES, bone_lengths, standing_height


@pytest.fixture(scope="module")
def lifter(tmp_path_factory):
    return Lifter(tiny_weights(tmp_path_factory.mktemp("w") / "tiny.pt"), device="cpu")


@pytest.fixture(scope="module")
def result(lifter, tmp_path_factory):
    path = keypoint_file(tmp_path_factory.mktemp("kp") / "walk.npz", frames=60)
    return lift_keypoints(path, lifter, LiftSettings())


@pytest.mark.parametrize("fps, step", [(50, 1), (25, 1), (30, 1), (100, 2), (120, 2), (200, 4)])
def test_frame_step_matches_the_trained_rate(fps, step):
    assert choose_frame_step(fps, [50.0, 25.0]) == step


def test_lifted_track_is_in_metres_with_the_reference_body(result):
    assert len(result.tracks) == 1 and result.main_track == 0
    track = result.tracks[0]
    assert track.joints_3d.shape == (60, 17, 3) and np.isfinite(track.joints_3d).all()
    np.testing.assert_allclose(track.joints_3d[:, 0], 0, atol=1e-6)  # root-relative
    # post-processing: every bone at its median length, which sums to the reference body
    lengths = bone_lengths(track.joints_3d)
    assert lengths.std(axis=0).max() < 1e-4
    assert lengths[0].sum() == pytest.approx(sum(H36M_BONE_LENGTHS_M), rel=0.02)
    assert set(track.quality) >= {"jitter_m_s2", "bone_cv_mean", "bone_cv_max", "raw"}
    assert track.up is not None and track.root_height_m.shape == (60,)


def test_height_rescales_the_body(lifter, tmp_path):
    path = keypoint_file(tmp_path / "walk.npz", frames=30)
    tall = lift_keypoints(path, lifter, LiftSettings(height_m=1.9, postprocess=False)).tracks[0]
    expected = sum(H36M_BONE_LENGTHS_M) * 1.9 / standing_height(H36M_BONE_LENGTHS_M)
    assert np.median(bone_lengths(tall.joints_3d).sum(axis=1)) == pytest.approx(expected, rel=1e-3)
    with pytest.raises(InputError, match="height"):
        LiftSettings(height_m=175).check()


def test_postprocess_keeps_smooth_motion_and_fixes_bones():
    joints = walking_skeleton(90, fps=30)
    noisy = joints + np.random.default_rng(0).normal(0, 0.01, joints.shape)
    noisy[:, 0] = 0
    cleaned = postprocess.postprocess(noisy, fps=30)
    assert bone_lengths(cleaned).std(axis=0).max() < 1e-9
    # zero phase: a linear motion passes unchanged (no lag) away from the edges
    ramp = np.linspace(0, 1, 50)[:, None, None] * np.ones((1, 17, 3))
    np.testing.assert_allclose(postprocess.smooth(ramp, fps=50)[5:-5], ramp[5:-5], atol=1e-9)
    assert postprocess.quality(noisy, 30)["jitter_m_s2"] > postprocess.quality(cleaned, 30)["jitter_m_s2"]
    up, height = postprocess.ground_contact(joints)
    np.testing.assert_allclose(up, [0, -1, 0], atol=1e-6)  # y points down in camera axes
    assert height.min() > 0.8  # pelvis above the floor by about a leg length


def test_smoothing_is_a_normalised_gaussian_to_three_sigma_with_mirrored_edges():
    fps, sigma = 100, postprocess.SMOOTH_SECONDS * 100  # 3 frames: taps -9 ... 9
    impulse = np.zeros((41, 17, 3))
    impulse[20] = 1.0
    taps = np.exp(-0.5 * (np.arange(-9, 10) / sigma) ** 2)
    expected = np.zeros(41)
    expected[11:30] = taps / taps.sum()
    np.testing.assert_allclose(postprocess.smooth(impulse, fps)[:, 4, 1], expected, atol=1e-12)
    # at the first frame the track is mirrored about it (frame -k is frame k)
    edge = np.zeros((41, 17, 3))
    edge[2] = 1.0
    mirrored = taps[9 - 2] + taps[9 + 2]  # frame 2 and its mirror image, frame -2
    assert postprocess.smooth(edge, fps)[0, 0, 0] == pytest.approx(mirrored / taps.sum())
    # a track shorter than the taps repeats its end frames instead
    short = np.arange(5.0)[:, None, None] * np.ones((1, 17, 3))
    assert postprocess.smooth(short, fps)[0, 0, 0] < postprocess.smooth(short, fps)[-1, 0, 0]
    np.testing.assert_allclose(postprocess.smooth(np.ones((5, 17, 3)), fps), 1.0)


def test_keypoint_file_gaps_become_interpolated_frames(tmp_path, lifter):
    path = keypoint_file(tmp_path / "walk.npz", frames=40)
    data = dict(np.load(path))
    data["keypoints"][10:13] = np.nan  # a 3-frame gap: filled
    np.savez(path, **data)
    tracks, info = load_keypoints(path)
    assert (info.width, info.height, info.fps) == (640, 480, 30.0)
    assert len(tracks) == 1 and tracks[0].interpolated[10:13].all() and tracks[0].interpolated.sum() == 3
    data["keypoints"][13:] = np.nan  # only the first 10 frames survive
    np.savez(path, **data)
    assert len(load_keypoints(path)[0][0]) == 10


def test_max_gap_decides_between_filling_and_splitting(tmp_path, lifter):
    path = keypoint_file(tmp_path / "walk.npz", frames=60)
    data = dict(np.load(path))
    data["keypoints"][20:41] = np.nan  # 21 frames = 0.7 s at 30 fps
    np.savez(path, **data)
    split = lift_keypoints(path, lifter, LiftSettings(people="all"))
    assert [len(t.frames) for t in split.tracks] == [20, 19]
    filled = lift_keypoints(path, lifter, LiftSettings(people="all", max_gap_seconds=1.0))
    assert len(filled.tracks) == 1 and filled.tracks[0].interpolated.sum() == 21
    for bad in (0.0, -1.0, 60.0):
        with pytest.raises(InputError, match="max-gap"):
            LiftSettings(max_gap_seconds=bad).check()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(keypoints=d["keypoints"][:, :15]), "shape"),
    (lambda d: d.update(keypoints=np.full_like(d["keypoints"], np.nan)), "NaN"),
    (lambda d: d.pop("size"), "size is unknown"),
    (lambda d: d.update(other=d.pop("keypoints")), "no keypoint array"),
])
def test_bad_keypoint_files(tmp_path, change, message):
    path = keypoint_file(tmp_path / "k.npz", frames=8)
    data = dict(np.load(path))
    change(data)
    np.savez(path, **data)
    with pytest.raises(InputError, match=message):
        load_keypoints(path)


def test_size_parsing_and_npy_input(tmp_path):
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(InputError):
        parse_size("1280*720")
    np.save(tmp_path / "k.npy", np.load(keypoint_file(tmp_path / "k.npz", frames=8))["keypoints"])
    tracks, info = load_keypoints(tmp_path / "k.npy", size=(640, 480))
    assert len(tracks[0]) == 8 and info.fps_source == "assumed"


def test_json_round_trip_and_schema(result, tmp_path):
    path = tmp_path / "out.json"
    write_result(result, path)
    payload = json.loads(path.read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(payload, json.loads(schema_path().read_text()))
    # the part scripts rely on
    frame = payload["tracks"][0]["frames"][5]
    assert frame["frame"] == 5 and len(frame["keypoints_2d"]) == 17 and len(frame["joints_3d"]) == 17
    assert payload["joint_names"] == list(JOINT_NAMES) and payload["model"]["sha256"]
    back = read_result(path)
    np.testing.assert_allclose(back.tracks[0].joints_3d, result.tracks[0].joints_3d, atol=1e-4)
    np.testing.assert_allclose(back.tracks[0].keypoints, result.tracks[0].keypoints, atol=1e-3)


def test_npz_and_csv(result, tmp_path):
    write_result(result, tmp_path / "out.npz")
    back = read_result(tmp_path / "out.npz")
    np.testing.assert_allclose(back.tracks[0].joints_3d, result.tracks[0].joints_3d, atol=1e-6)
    assert back.video == result.video
    np.testing.assert_allclose(back.tracks[0].root_camera, result.tracks[0].root_camera, atol=1e-5)
    np.testing.assert_allclose(back.world.matrix(), result.world.matrix(), atol=1e-5)
    with np.load(tmp_path / "out.npz") as arrays:
        np.testing.assert_allclose(arrays["t0_joints_world"], result.world.to_world(result.tracks[0].joints_camera()),
                                   atol=1e-5)
    write_result(result, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("track,frame,time_s,interpolated,hip_x,hip_y,hip_z")
    assert "root_camera_x" in lines[0] and "left_foot_world_z" in lines[0]
    assert len(lines) == 61 and len(lines[1].split(",")) == 4 + 17 * 3 + 3 + 17 * 3


def test_result_has_a_camera_roots_and_a_world(lifter, tmp_path, monkeypatch):
    """The keypoint file is the walking skeleton 4 m in front of a 600 px camera (640x480).
    With a lifter that gets the pose right, the default camera (focal 640) puts it 640 / 600 x
    4 m away, --focal 600 at 4 m, and the floor is under its feet."""
    monkeypatch.setattr("pose3d.lift.predict_sequence", lambda model, kp, **_: walking_skeleton(len(kp), 30))
    result = lift_keypoints(keypoint_file(tmp_path / "walk.npz", frames=60), lifter, LiftSettings())
    track = result.tracks[0]
    assert result.camera.focal_px == 640 and result.camera.source == "default"
    assert track.root_camera.shape == (60, 3) and np.isfinite(track.root_camera).all()
    assert np.median(track.root_camera[:, 2]) == pytest.approx(4.0 * 640 / 600, rel=0.01)
    feet = result.world.height(track.joints_camera()[:, [3, 6]]).min(axis=1)
    # the synthetic walk swings stiff legs from a pelvis that never dips: its lower ankle falls
    # and rises by 11 cm, and the floor goes through the slow (high) turning points of the swing
    assert feet.max() == pytest.approx(ANKLE_HEIGHT_M, abs=0.02) and feet.min() > ANKLE_HEIGHT_M - 0.13
    assert result.world.angles()["pitch_deg"] == pytest.approx(0, abs=1)  # the keypoints' camera is level
    path = tmp_path / "out.json"
    write_result(result, path)
    payload = json.loads(path.read_text())
    assert payload["schema_version"] == 2 and payload["camera"]["world"]["up"] == "y"
    frame = payload["tracks"][0]["frames"][5]
    assert len(frame["root_camera"]) == 3 and len(frame["joints_world"]) == 17
    back = read_result(path)
    np.testing.assert_allclose(back.tracks[0].root_camera, track.root_camera, atol=1e-4)
    assert back.camera.focal_px == 640
    np.testing.assert_allclose(back.world.to_world(back.tracks[0].joints_camera()), frame_world(payload), atol=2e-4)
    z_up = lift_keypoints(keypoint_file(tmp_path / "walk.npz", frames=20), lifter,
                          LiftSettings(up="z", focal_px=600))
    assert z_up.camera.focal_px == 600 and z_up.world.up == "z"
    assert np.median(z_up.tracks[0].root_camera[:, 2]) == pytest.approx(4.0, rel=0.01)
    assert np.median(z_up.world.to_world(z_up.tracks[0].joints_camera())[:, 10, 2]) > 1.4  # the head is up


def frame_world(payload) -> np.ndarray:
    return np.asarray([f["joints_world"] for f in payload["tracks"][0]["frames"]])


def test_version_1_results_still_read(result, tmp_path):
    """A file written before the trajectory (schema version 1) reads back without one, and its
    BVH keeps the old root (height above the person's own floor)."""
    path = tmp_path / "old.json"
    write_result(result, path)
    payload = json.loads(path.read_text())
    payload["schema_version"] = 1
    del payload["camera"]
    for t in payload["tracks"]:
        for f in t["frames"]:
            del f["root_camera"], f["joints_world"]
    path.write_text(json.dumps(payload))
    old = read_result(path)
    assert old.camera is None and old.world is None and old.tracks[0].root_camera is None
    np.testing.assert_allclose(old.tracks[0].joints_3d, result.tracks[0].joints_3d, atol=1e-4)
    write_result(old, tmp_path / "old.bvh")
    write_result(old, tmp_path / "old.csv")
    assert len((tmp_path / "old.csv").read_text().splitlines()[1].split(",")) == 4 + 17 * 3


def test_results_of_a_newer_schema_or_corrupt_are_refused(result, tmp_path):
    path = tmp_path / "out.json"
    write_result(result, path)
    payload = json.loads(path.read_text())
    payload["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(payload))
    with pytest.raises(InputError, match="newer"):
        read_result(path)
    path.write_text(path.read_text()[:100])
    with pytest.raises(InputError, match="JSON"):
        read_result(path)
    with pytest.raises(InputError, match="unknown output type"):
        write_result(result, tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_an_interrupted_2d_pass_stops_the_decoder_thread(tmp_path):
    """Ctrl-C in the 2D stage stops the decoding thread before the interrupt leaves the
    stage: a thread left inside OpenCV at interpreter shutdown can abort the process."""
    import threading

    from helpers import FakeBackend, write_video

    from pose3d.keypoints import extract_tracks
    from pose3d.video import open_source

    class InterruptedBackend(FakeBackend):
        def find_people(self, frame):
            if self.calls == 3:
                raise KeyboardInterrupt
            return super().find_people(frame)

    source = open_source(write_video(tmp_path / "v.mp4", frames=40))
    with pytest.raises(KeyboardInterrupt):
        extract_tracks(source, InterruptedBackend(), people="all")
    assert not [t for t in threading.enumerate() if t.name == "pose3d-decode"]
