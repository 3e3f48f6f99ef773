"""BVH export: forward kinematics reproduces the input, channels do not flip, bad input is
refused, and Blender imports the files upright, facing the right way, at the right places."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pose3d.bvh import BVH_JOINT_NAMES, BVH_PARENTS, camera_joints, forward_kinematics, read_bvh, write_bvh
from pose3d.errors import InputError, OutputError
from pose3d.skeleton import BONES, JOINT_NAMES, NUM_JOINTS, PARENTS, bone_lengths

BLENDER_CHECK = Path(__file__).with_name("blender_check.py")
FPS = 50.0

# Rest skeleton in camera axes (x right, y down, z away), facing the camera: T-pose, the
# pelvis on the hip line but nearer the left hip, the spine leaning forward, the nose ahead
# of the neck.
_REST_CAM = {
    1: (-0.13, 0.01, 0.0), 2: (0.0, 0.45, 0.0), 3: (0.0, 0.44, 0.0),
    4: (0.12, -0.12 * 0.01 / 0.13, 0.0), 5: (0.0, 0.45, 0.0), 6: (0.0, 0.44, 0.0),
    7: (0.0, -0.23, -0.06), 8: (0.0, -0.25, 0.0), 9: (0.0, -0.10, -0.06), 10: (0.0, -0.115, 0.0),
    11: (0.14, -0.04, 0.0), 12: (0.28, 0.0, 0.0), 13: (0.25, 0.0, 0.0),
    14: (-0.14, -0.04, 0.0), 15: (-0.28, 0.0, 0.0), 16: (-0.25, 0.0, 0.0),
}
# Bones that move on their own relative to their siblings (spine against the hip line, neck
# and shoulders against each other: shrugs, nods), as in real motion.
_LOOSE_BONES = (7, 9, 11, 14)


def _rotation(axis, angle) -> np.ndarray:
    """Rotation matrices about (..., 3) axes (normalised here) by (...) radians, by scipy
    (independent of pose3d.rotations)."""
    axis = np.asarray(axis, float)
    rotvec = axis / np.linalg.norm(axis, axis=-1, keepdims=True) * np.asarray(angle, float)[..., None]
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(rotvec.shape + (3,))


def _smooth_rotations(frames: int, rng, amplitude: float) -> np.ndarray:
    """(frames, 3, 3) smooth random rotations: a rotation vector made of slow sinusoids."""
    t = np.arange(frames) / FPS
    vec = np.zeros((frames, 3))
    for _ in range(3):
        freq, phase = rng.uniform(0.2, 1.2, 3), rng.uniform(0, 2 * np.pi, 3)
        vec += amplitude / 3 * np.sin(2 * np.pi * freq * t[:, None] + phase)
    angle = np.linalg.norm(vec, axis=1)
    axis = np.where(angle[:, None] > 1e-12, vec, [1.0, 0.0, 0.0])
    return _rotation(axis, angle)


def _forward(local: np.ndarray, rest: dict, loose: dict) -> np.ndarray:
    """Positions (N, 17, 3) from local rotations (N, 17, 3, 3), rest offsets (camera axes) and
    extra rotations (N, 3, 3) of single bones (joint -> rotation of the bone to it)."""
    n = len(local)
    glob = np.zeros((n, NUM_JOINTS, 3, 3))
    pos = np.zeros((n, NUM_JOINTS, 3))
    glob[:, 0] = local[:, 0]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        offset = np.broadcast_to(np.asarray(rest[j], float), (n, 3))
        if j in loose:
            offset = np.einsum("nij,nj->ni", loose[j], offset)
        pos[:, j] = pos[:, p] + np.einsum("nij,nj->ni", glob[:, p], offset)
    return pos


def moving_skeleton(frames: int = 200, seed: int = 0, lopsided_pelvis: bool = False) -> np.ndarray:
    """(frames, 17, 3) camera axes, metres, root-relative, constant bone lengths: a person who
    turns round twice (yaw through 720 degrees) with smooth random joint rotations, the left
    arm windmilling (full circles) and the right forearm circling on a 150-degree cone (close
    to pointing back along the upper arm): motions where naive Euler angles wrap. The spine,
    neck and shoulders also move against their siblings. ``lopsided_pelvis``: the left hip
    1 cm off the line through the pelvis and the right hip, the spine fixed to the pelvis."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / frames
    local = np.stack([_smooth_rotations(frames, rng, 0.5) for _ in range(NUM_JOINTS)], axis=1)
    up = np.array([0.0, -1.0, 0.0])
    local[:, 0] = _rotation(up, 4 * np.pi * t) @ _smooth_rotations(frames, rng, 0.3)
    local[:, 11] = _rotation(_REST_CAM[12], 4 * np.pi * t) @ _rotation([0.0, 0.0, 1.0], np.pi / 2)
    local[:, 15] = _rotation(_REST_CAM[16], 6 * np.pi * t) @ _rotation([0.0, 1.0, 0.0], np.radians(150))
    loose = {j: _smooth_rotations(frames, rng, 0.4) for j in _LOOSE_BONES}
    rest = dict(_REST_CAM)
    if lopsided_pelvis:
        rest[4] = (0.12, -0.005, 0.008)
        del loose[7]
    return _forward(local, rest, loose)


def normalise_bones(joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The same bone directions with the given (16,) lengths, rebuilt from the pelvis."""
    out = np.zeros_like(joints)
    for b, (p, c) in enumerate(BONES):
        d = joints[:, c] - joints[:, p]
        out[:, c] = out[:, p] + d / np.linalg.norm(d, axis=-1, keepdims=True) * lengths[b]
    return out


def standing_pose(frames: int = 30) -> np.ndarray:
    """A person standing upright facing the camera, arms down, swaying a little (camera
    axes: head top 0.7 m above the pelvis, ankles 0.9 m below)."""
    pose = np.array([
        [0, 0, 0], [-0.13, 0, 0], [-0.12, 0.45, 0.01], [-0.11, 0.9, 0.03],
        [0.13, 0, 0], [0.12, 0.45, 0.01], [0.11, 0.9, 0.03],
        [0, -0.23, 0.01], [0, -0.48, 0], [0, -0.58, -0.06], [0, -0.7, -0.01],
        [0.17, -0.46, 0], [0.2, -0.18, 0.02], [0.21, 0.06, -0.03],
        [-0.17, -0.46, 0], [-0.2, -0.18, 0.02], [-0.21, 0.06, -0.03],
    ], float)
    sway = 0.1 * np.sin(np.linspace(0, 2 * np.pi, frames))
    return np.einsum("nij,kj->nki", _rotation([0.0, 0.0, 1.0], sway), pose)


def _roundtrip(tmp_path, joints, **kwargs) -> tuple[np.ndarray, object]:
    """Write, read back, forward kinematics -> (camera axes metres, pelvis included, BVH)."""
    path = tmp_path / "out.bvh"
    write_bvh(path, joints, FPS, **kwargs)
    bvh = read_bvh(path)
    cam = camera_joints(bvh, up=kwargs.get("up", "y"), units=kwargs.get("units", "m"),
                        person_up=kwargs.get("person_up"))
    return cam, bvh


def _local_rotations(bvh) -> np.ndarray:
    """(N, J, 3, 3) each joint's rotation from its channels (their order, in the file)."""
    out = np.tile(np.eye(3), (len(bvh.motion), len(bvh.channels), 1, 1))
    column = 0
    for j, channels in enumerate(bvh.channels):
        for name in channels:
            if name.endswith("rotation"):
                axis = np.eye(3)["XYZ".index(name[0])]
                out[:, j] = out[:, j] @ _rotation(axis, np.radians(bvh.motion[:, column]))
            column += 1
    return out


def _max_error_mm(a, b) -> float:
    return 1000 * float(np.linalg.norm(a - b, axis=-1).max())


# --------------------------------------------------------------------------- forward kinematics
@pytest.mark.parametrize("up", ["y", "z"])
@pytest.mark.parametrize("units", ["m", "cm"])
def test_forward_kinematics_reproduces_input(tmp_path, up, units):
    joints = moving_skeleton()
    cam, bvh = _roundtrip(tmp_path, joints, up=up, units=units)
    # pose3d's joints under their own names and parents, plus the helpers on the way
    assert bvh.joint_names == list(BVH_JOINT_NAMES) and bvh.parents == list(BVH_PARENTS)
    helpers = {"lower_back": "hip", "neck_base": "thorax", "left_collar": "thorax", "right_collar": "thorax"}
    assert set(bvh.joint_names) == set(JOINT_NAMES) | set(helpers)
    for j, name in enumerate(JOINT_NAMES[1:], start=1):
        parent = bvh.joint_names[bvh.parents[bvh.joint_names.index(name)]]
        assert helpers.get(parent, parent) == JOINT_NAMES[PARENTS[j]]
    assert bvh.frame_time == pytest.approx(1 / FPS) and len(bvh.motion) == len(joints)
    assert sorted(bvh.joint_names[j] for j in bvh.end_sites) == sorted(
        ["right_foot", "left_foot", "head", "left_wrist", "right_wrist"])
    assert _max_error_mm(cam - cam[:, :1], joints) < 1.0


def _parse_bvh_independently(text: str):
    """(names, parents, offsets (J, 3), channels per joint, motion (N, C)) read from BVH text
    without pose3d.bvh."""
    tokens = text.split()
    names, parents, offsets, channels, stack = [], [], [], [], []
    pos = tokens.index("HIERARCHY") + 1
    while tokens[pos] != "MOTION":
        word = tokens[pos]
        if word in ("ROOT", "JOINT"):
            names.append(tokens[pos + 1])
            parents.append(stack[-1] if stack else -1)
            pos += 2
        elif word == "End":  # End Site { OFFSET x y z }: no joint, no channels
            pos += 8
        elif word == "{":
            stack.append(len(names) - 1)
            pos += 1
        elif word == "}":
            stack.pop()
            pos += 1
        elif word == "OFFSET":
            offsets.append([float(v) for v in tokens[pos + 1 : pos + 4]])
            pos += 4
        elif word == "CHANNELS":
            count = int(tokens[pos + 1])
            channels.append(tokens[pos + 2 : pos + 2 + count])
            pos += 2 + count
        else:
            raise AssertionError(f"unexpected BVH token {word!r}")
    frames = int(tokens[pos + 2])
    motion = np.array(tokens[pos + 6 :], float).reshape(frames, -1)
    return names, parents, np.array(offsets), channels, motion


@pytest.mark.parametrize("up, units", [("y", "m"), ("z", "cm")])
def test_euler_angles_in_the_file_give_the_joints_by_scipy(tmp_path, up, units):
    """An independent reading of the file: the BVH convention (a joint's channels are
    intrinsic rotations in the listed order, its offset is in its parent's rotated frame, the
    root's position channels place it) with scipy's Rotation.from_euler, none of pose3d.bvh's
    parsing or forward kinematics. It must give the input joints in the file's world axes."""
    joints = moving_skeleton(frames=60)
    root = np.stack([np.linspace(-0.5, 0.5, 60), np.full(60, -0.9), np.linspace(4.0, 3.0, 60)], axis=1)
    path = tmp_path / "out.bvh"
    write_bvh(path, joints, FPS, root_m=root, up=up, units=units)
    names, parents, offsets, channels, motion = _parse_bvh_independently(path.read_text())

    frames = len(motion)
    world = np.zeros((frames, len(names), 3))
    rotation = [None] * len(names)
    column = 0
    for j, chans in enumerate(channels):
        values = motion[:, column : column + len(chans)]
        column += len(chans)
        rot_names = [c for c in chans if c.endswith("rotation")]
        angles = values[:, [chans.index(c) for c in rot_names]]
        local = Rotation.from_euler("".join(c[0] for c in rot_names), angles, degrees=True)  # upper case: intrinsic
        if parents[j] < 0:
            position = values[:, [chans.index(f"{a}position") for a in "XYZ"]]
            world[:, j] = offsets[j] + position
            rotation[j] = local
        else:
            world[:, j] = world[:, parents[j]] + rotation[parents[j]].apply(offsets[j])
            rotation[j] = rotation[parents[j]] * local

    cam = joints + root[:, None]
    scale = 100.0 if units == "cm" else 1.0
    # camera axes (x right, y down, z away) -> the file's world: Y up, or Z up
    expected = np.stack([cam[..., 0], -cam[..., 1], -cam[..., 2]] if up == "y" else
                        [cam[..., 0], cam[..., 2], -cam[..., 1]], axis=-1) * scale
    found = world[:, [names.index(n) for n in JOINT_NAMES]]
    assert 1000 * np.linalg.norm(found - expected, axis=-1).max() / scale < 1.0
    # the helper joints sit on the joint they are named after (zero offset)
    for helper, on in (("lower_back", "hip"), ("neck_base", "thorax"), ("left_collar", "thorax")):
        np.testing.assert_allclose(world[:, names.index(helper)], world[:, names.index(on)], atol=1e-9)


def test_lopsided_pelvis_is_kept(tmp_path):
    """A rigid pelvis off the hip line goes into the rest pose (exact while the spine keeps its
    angle to the pelvis; Human3.6M's pelvis is midway between the hips)."""
    joints = moving_skeleton(lopsided_pelvis=True)
    cam, _ = _roundtrip(tmp_path, joints)
    assert _max_error_mm(cam - cam[:, :1], joints) < 1.0


@pytest.mark.parametrize("up", ["y", "z"])
def test_noisy_bone_lengths_are_normalised_to_the_median(tmp_path, up):
    joints = moving_skeleton(seed=1)
    rng = np.random.default_rng(1)
    noisy = np.zeros_like(joints)
    for p, c in BONES:  # each bone 5 % longer or shorter, frame by frame
        scale = 1 + 0.05 * rng.standard_normal((len(joints), 1))
        noisy[:, c] = noisy[:, p] + (joints[:, c] - joints[:, p]) * scale
    cam, bvh = _roundtrip(tmp_path, noisy, up=up, units="cm")
    expected = normalise_bones(noisy, np.median(bone_lengths(noisy), axis=0))
    assert _max_error_mm(cam - cam[:, :1], expected) < 1.0
    # given bone lengths win over the track's
    lengths = np.asarray(bone_lengths(joints[0])) * 1.1
    cam, _ = _roundtrip(tmp_path, noisy, up=up, bone_lengths_m=lengths)
    assert _max_error_mm(cam - cam[:, :1], normalise_bones(noisy, lengths)) < 1.0


def test_root_trajectory_and_default_height(tmp_path):
    joints = standing_pose()
    root = np.zeros((len(joints), 3))
    root[:, 2] = np.linspace(3.0, 1.0, len(joints))  # walking towards the camera
    root[:, 1] = -0.95                                # pelvis 0.95 m above the floor
    cam, bvh = _roundtrip(tmp_path, joints, root_m=root, up="z")
    assert _max_error_mm(cam, joints + root[:, None]) < 1.0
    # no trajectory (None, or the all-zero one of a track without a floor): the pelvis stays
    # above the origin, the lower ankle at ankle height (8 cm) over the floor
    for absent in (None, np.zeros((len(joints), 3))):
        cam, bvh = _roundtrip(tmp_path, joints, root_m=absent, up="z")
        world = forward_kinematics(bvh)
        feet = [bvh.joint_names.index("right_foot"), bvh.joint_names.index("left_foot")]
        assert np.allclose(world[:, 0, :2], 0) and np.allclose(cam - cam[:, :1], joints, atol=1e-6)
        assert np.median(world[:, feet, 2].min(axis=1)) == pytest.approx(0.08, abs=1e-6)


def test_tilted_camera_is_levelled(tmp_path):
    tilt = _rotation([1.0, 0.0, 0.0], np.radians(25))  # camera looking down at the person
    joints = np.einsum("ij,nkj->nki", tilt, standing_pose())
    person_up = tilt @ np.array([0.0, -1.0, 0.0])
    cam, bvh = _roundtrip(tmp_path, joints, person_up=person_up)
    world = forward_kinematics(bvh)
    lean = world[:, bvh.joint_names.index("head")] - world[:, 0]
    assert np.all(np.abs(lean[:, 0]) < 0.08) and np.all(np.abs(lean[:, 2]) < 0.02)  # Y up
    assert _max_error_mm(cam - cam[:, :1], joints) < 1.0


# --------------------------------------------------------------------------- continuity
def test_rotation_channels_do_not_flip(tmp_path):
    joints = moving_skeleton(frames=400)
    _, bvh = _roundtrip(tmp_path, joints)
    rotation_columns = [i for i, name in enumerate(c for chans in bvh.channels for c in chans)
                        if name.endswith("rotation")]
    angles = bvh.motion[:, rotation_columns]
    assert np.abs(np.diff(angles, axis=0)).max() < 30.0
    # the motion does take angles past +-180 degrees (folded into (-180, 180] they would
    # jump): the root's yaw (twice round) and the arms' channels
    folded_jumps = np.abs(np.diff((angles + 180) % 360 - 180, axis=0)).max(axis=0)
    names = [bvh.joint_names[j] for j, chans in enumerate(bvh.channels) for c in chans if c.endswith("rotation")]
    wrapping = {names[k] for k in np.flatnonzero(folded_jumps > 180)}
    assert "hip" in wrapping and wrapping & {"left_shoulder", "right_shoulder", "left_elbow", "right_elbow"}
    assert np.ptp(angles[:, :3], axis=0).max() > 600


def test_twist_follows_smoothly_without_drift(tmp_path):
    """Bones circling (windmill, cone) keep a continuous twist, and once they stop the twist
    returns to its reference (hinge plane or swing-only rotation): no accumulated drift."""
    joints = moving_skeleton(900)
    # hold the pose: the right forearm 150 degrees from the upper arm, where the elbow's
    # swing-only rotation is barely defined and its twist returns slowly (in ~10 s)
    joints[200:] = joints[199]
    _, bvh = _roundtrip(tmp_path, joints)
    angles = bvh.motion[:, 3:]
    assert np.abs(np.diff(angles, axis=0)).max() < 30.0
    assert np.abs(np.diff(angles[850:], axis=0)).max() < 1e-3  # settled
    # ... on the rotations a file of that pose alone gets (the reference twist)
    _, alone = _roundtrip(tmp_path, joints[-1:])
    assert np.abs(_local_rotations(bvh)[-1] - _local_rotations(alone)[0]).max() < 1e-4


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("joints, fps, kwargs, message", [
    (np.zeros((5, 16, 3)), 30, {}, "shape"),
    (np.zeros((0, 17, 3)), 30, {}, "at least one frame"),
    (np.full((5, 17, 3), np.nan), 30, {}, "NaN"),
    (None, 0, {}, "frame rate"),
    (None, -25, {}, "frame rate"),
    (None, float("nan"), {}, "frame rate"),
    (None, 30, {"root_m": np.zeros((4, 3))}, "root"),
    (None, 30, {"root_m": np.full((5, 3), np.inf)}, "root"),
    (None, 30, {"up": "x"}, "up axis"),
    (None, 30, {"units": "mm"}, "units"),
    (None, 30, {"bone_lengths_m": np.ones(17)}, "bone lengths"),
    (np.zeros((5, 17, 3)), 30, {}, "no length"),
    (None, 30, {"person_up": [0, 0, 0]}, "person_up"),
])
def test_bad_input(tmp_path, joints, fps, kwargs, message):
    joints = standing_pose(5) if joints is None else joints
    path = tmp_path / "bad.bvh"
    with pytest.raises(InputError, match=message) as info:
        write_bvh(path, joints, fps, **kwargs)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_unwritable_path_and_unreadable_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        write_bvh(tmp_path / "file" / "out.bvh", standing_pose(5), 30)
    for text in ("", "HIERARCHY\nROOT hip\n{\n", "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 1 Xposition\n}\n"
                 "MOTION\nFrames: 2\nFrame Time: 0.1\n1\n"):
        (tmp_path / "bad.bvh").write_text(text)
        with pytest.raises(InputError):
            read_bvh(tmp_path / "bad.bvh")
    with pytest.raises(InputError):
        read_bvh(tmp_path / "missing.bvh")


# --------------------------------------------------------------------------- Blender
def _to_blender(cam_m: np.ndarray, units: str) -> np.ndarray:
    """Camera axes -> Blender's world after import (Z up, the video's camera looking along
    +Y, as Blender's front view does): (x, z, -y)."""
    return np.stack([cam_m[..., 0], cam_m[..., 2], -cam_m[..., 1]], axis=-1) * (100.0 if units == "cm" else 1.0)


def _blender_check(tmp_path, joints, expected_cam, *, fps=25.0, up="y", units="m", facing=None, root_m=None,
                   z_up_axes=True, expect_ok=True):
    """Write a BVH, import it in Blender with default options (plus, with ``z_up_axes``, the
    axes a Z-up file needs) and check names, frames, fps, uprightness, facing and joint
    positions; the report lines of tests/blender_check.py."""
    path = tmp_path / f"blender_{up}_{units}.bvh"
    write_bvh(path, joints, fps, up=up, units=units, root_m=root_m)
    if expected_cam is None:  # the file's own forward kinematics
        expected_cam = camera_joints(read_bvh(path), up=up, units=units)
    check_frames = sorted({0, len(joints) // 3, len(joints) // 2, len(joints) - 1})
    expected_blender = _to_blender(expected_cam, units)
    expected = {
        "bone_names": list(BVH_JOINT_NAMES), "frames": len(joints), "fps": fps, "check_frames": check_frames,
        "positions": {str(i): {n: expected_blender[i, j].tolist() for j, n in enumerate(JOINT_NAMES)}
                      for i in check_frames},
        "tolerance": 1e-3 * (100 if units == "cm" else 1),
    }
    if up == "z" and z_up_axes:
        expected["import_options"] = {"axis_forward": "Y", "axis_up": "Z"}
    if facing is not None:
        expected["facing"] = list(facing)
    expected_path = tmp_path / f"expected_{up}_{units}.json"
    expected_path.write_text(json.dumps(expected))
    proc = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(BLENDER_CHECK),
         "--", str(path), str(expected_path)],
        capture_output=True, text=True, timeout=120)
    report = [line for line in proc.stdout.splitlines() if line.startswith("blender_check")]
    if expect_ok:
        assert proc.returncode == 0, "\n".join(report) or proc.stdout[-2000:] + proc.stderr[-2000:]
    else:
        assert proc.returncode != 0 and any("FAIL" in line for line in report), proc.stdout[-2000:]
    print(path.name, *report, sep="\n  ")  # shown with pytest -s
    return report


needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed")


@needs_blender
@pytest.mark.slow
@pytest.mark.parametrize("up, units, fps", [("y", "m", 30.0), ("z", "cm", 29.97)])
def test_blender_imports_standing_person_upright_facing_the_viewer(tmp_path, up, units, fps):
    """A person facing the video's camera faces Blender's front view (-Y), their left hip
    on +X, head above and ankles below the pelvis, every joint where the input puts it."""
    joints = standing_pose()
    root = np.zeros((len(joints), 3))
    root[:, 0] = np.linspace(0.0, 0.5, len(joints))  # stepping to the image's right
    root[:, 1] = -0.95
    _blender_check(tmp_path, joints, joints + root[:, None], fps=fps, up=up, units=units, facing=(0, -1, 0),
                   root_m=root)


@needs_blender
@pytest.mark.slow
def test_blender_check_fails_on_a_z_up_file_imported_with_default_axes(tmp_path):
    """The check can fail: a Z-up file read as Y-up (the importer's default) lies face down."""
    report = _blender_check(tmp_path, standing_pose(), None, up="z", facing=(0, -1, 0), z_up_axes=False,
                            expect_ok=False)
    assert any("not above hip" in line for line in report)


@needs_blender
@pytest.mark.slow
def test_blender_imports_moving_person_at_the_solved_positions(tmp_path):
    joints = moving_skeleton(frames=100)
    cam, _ = _roundtrip(tmp_path, joints)
    _blender_check(tmp_path, joints, cam, fps=FPS)


@needs_blender
@pytest.mark.slow
@pytest.mark.shared
def test_blender_imports_human36m_pose(tmp_path, shared_dir):
    """A real standing sequence (S9 Directions, camera 54138969), world -> camera axes."""
    data_dir = shared_dir / "data" / "h36m"
    if not (data_dir / "poses_3d.npz").is_file():
        pytest.skip("Human3.6M poses are not available")
    with np.load(data_dir / "poses_3d.npz") as poses:
        world = poses["S9/Directions 1"][:100:2].astype(float)  # 25 fps
    camera = json.loads((data_dir / "cameras.json").read_text())["S9"]["54138969"]
    cam = (world - np.asarray(camera["centre_m"])) @ np.asarray(camera["R_w2c"]).T
    joints = cam - cam[:, :1]
    # where the person faces, from the input: forward = (left hip - right hip) x up
    up_cam = np.array([0.0, -1.0, 0.0])
    forward = np.cross(joints[:, 4] - joints[:, 1], up_cam).mean(axis=0)
    facing = _to_blender(forward / np.linalg.norm(forward), "m")
    facing[2] = 0.0
    _blender_check(tmp_path, joints, None, fps=25.0, facing=facing)
    # the file's own positions versus the input: only the pelvis/thorax children can miss
    cam_fk, _ = _roundtrip(tmp_path, joints)
    lengths = np.median(bone_lengths(joints), axis=0)
    error = _max_error_mm(cam_fk - cam_fk[:, :1], normalise_bones(joints, lengths))
    print(f"Human3.6M max FK error after bone normalisation: {error:.4f} mm")
    assert error < 1.0
