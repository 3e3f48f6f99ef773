"""pose3d.codec: pixels <-> normalised 2D, metres <-> model units, and the scale estimates."""

import numpy as np
import pytest
import torch

from pose3d import codec
from pose3d.skeleton import BONES, H36M_BONE_LENGTHS_M, PARENTS, bone_lengths


def posed_skeleton(frames: int, rng: np.random.Generator, bones_m=H36M_BONE_LENGTHS_M) -> np.ndarray:
    """(frames, 17, 3) metres: every bone of the given length in a random direction, root away
    from the origin (so root alignment matters)."""
    joints = np.zeros((frames, 17, 3))
    joints[:, 0] = rng.normal(size=(frames, 3)) + [0.0, 0.0, 5.0]
    for j in range(1, 17):
        d = rng.normal(size=(frames, 3))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        joints[:, j] = joints[:, PARENTS[j]] + d * bones_m[j - 1]
    return joints


# --------------------------------------------------------------------------- 2D
def test_normalize_2d_known_points_and_round_trip_numpy():
    w, h = 1000, 1002
    px = np.array([[w / 2, h / 2], [0.0, 0.0], [w, h], [w, 0.0]])
    norm = codec.normalize_2d(px, w, h)
    # centre -> (0, 0); both axes divided by the width (aspect ratio kept)
    np.testing.assert_allclose(norm, [[0, 0], [-1, -h / w], [1, h / w], [1, -h / w]], atol=1e-12)
    rng = np.random.default_rng(0)
    points = rng.uniform(0, [w, h], size=(5, 17, 2))
    original = points.copy()
    back = codec.denormalize_2d(codec.normalize_2d(points, w, h), w, h)
    np.testing.assert_allclose(back, original, atol=1e-9)
    np.testing.assert_array_equal(points, original)  # the input is not modified in place


def test_normalize_2d_round_trip_torch():
    w, h = 640, 480
    points = torch.rand(3, 9, 17, 2, dtype=torch.float64) * torch.tensor([w, h], dtype=torch.float64)
    original = points.clone()
    norm = codec.normalize_2d(points, w, h)
    assert isinstance(norm, torch.Tensor)
    np.testing.assert_allclose(norm.numpy(), codec.normalize_2d(points.numpy(), w, h))
    torch.testing.assert_close(codec.denormalize_2d(norm, w, h), original)
    torch.testing.assert_close(points, original)
    torch.testing.assert_close(norm, codec.normalize_2d(original, w, h))  # denormalize left norm alone


def test_person_normalisation_ignores_where_and_how_big_the_person_is():
    kp = posed_skeleton(20, np.random.default_rng(3))[..., :2] * 200 + [640, 360]  # (20, 17, 2) px
    out = codec.normalize_2d_person(kp)
    heights = out[..., 1].max(-1) - out[..., 1].min(-1)
    np.testing.assert_allclose(np.median(heights), codec.TRAIN_PERSON_HEIGHT)
    np.testing.assert_allclose(np.median(out[:, 0], axis=0), codec.TRAIN_ROOT_2D)
    # the same motion a third of the size in a corner of the frame: the same network input
    np.testing.assert_allclose(codec.normalize_2d_person(kp / 3 + [20, 15]), out, atol=1e-9)
    # one similarity for the whole track: frame-to-frame motion is kept, only scaled
    np.testing.assert_allclose(out[5] - out[4], (kp[5] - kp[4]) * codec.TRAIN_PERSON_HEIGHT / np.median(
        kp[..., 1].max(-1) - kp[..., 1].min(-1)))


def test_integer_pixels_normalise_like_floats():
    """Stacked-Hourglass detections are int16 pixels."""
    px = np.array([[[500, 614], [479, 538]]], dtype=np.int16)
    np.testing.assert_allclose(codec.normalize_2d(px, 1000, 1002), codec.normalize_2d(px.astype(float), 1000, 1002))


# --------------------------------------------------------------------------- 3D
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_metres_model_round_trip(lib):
    rng = np.random.default_rng(1)
    joints = posed_skeleton(7, rng)
    scale = rng.uniform(0.2, 0.8, size=7)
    if lib == "torch":
        joints, scale = torch.from_numpy(joints), torch.from_numpy(scale)
    model = codec.metres_to_model(joints, scale)
    back = codec.model_to_metres(model, scale)
    expected = joints - joints[:, :1]
    np.testing.assert_allclose(np.asarray(back), np.asarray(expected), atol=1e-12)
    # the root is at the origin and each frame is multiplied by its own scale
    np.testing.assert_allclose(np.asarray(model[:, 0]), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(model[3]), np.asarray(expected[3]) * float(scale[3]), atol=1e-12)


def test_camera_scale_hand_computed_and_matches_pinhole_projection():
    # 2 * 1000 / (1000 * 4) = 0.5 normalised units per metre at 4 m
    assert codec.camera_scale(1000.0, 1000, 4.0) == pytest.approx(0.5)
    np.testing.assert_allclose(codec.camera_scale(1145.0, 1000, np.array([2.0, 5.0])), [1.145, 0.458])
    # its meaning: a 1 cm sideways step at the root's depth moves the normalised 2D by scale * 0.01
    f, w, h, depth = 1145.0, 1000, 1002, 4.5
    points = np.array([[0.3, -0.2, depth], [0.31, -0.2, depth]])
    px = f * points[:, :2] / points[:, 2:] + [w / 2, h / 2]
    norm = codec.normalize_2d(px, w, h)
    assert norm[1, 0] - norm[0, 0] == pytest.approx(codec.camera_scale(f, w, depth) * 0.01)


# --------------------------------------------------------------------------- scale estimates
def test_scales_from_bone_lengths_recover_a_known_scale():
    rng = np.random.default_rng(2)
    reference = np.asarray(H36M_BONE_LENGTHS_M)
    joints_m = posed_skeleton(20, rng)
    joints_model = codec.metres_to_model(joints_m, np.full(20, 0.37))
    np.testing.assert_allclose(codec.scales_from_bone_lengths(joints_model, reference, fps=25), 0.37, rtol=1e-9)
    # a body 10 % taller than the reference reads as a 10 % larger scale
    tall = posed_skeleton(20, rng, bones_m=reference * 1.1)
    np.testing.assert_allclose(codec.scales_from_bone_lengths(tall * 0.37, reference, fps=25), 0.37 * 1.1, rtol=1e-9)
    assert len(BONES) == len(reference)


def test_a_person_walking_towards_the_camera_keeps_their_size_in_metres():
    # the network's output grows with the person's size in the image (here 0.3 -> 0.6 units
    # per metre over 4 s at 50 fps); per-frame scales undo that, even at the first and last frames
    rng = np.random.default_rng(4)
    reference = np.asarray(H36M_BONE_LENGTHS_M)
    joints_m = posed_skeleton(200, rng)
    true_scale = np.linspace(0.3, 0.6, 200)
    joints_model = codec.metres_to_model(joints_m, true_scale)
    scales = codec.scales_from_bone_lengths(joints_model, reference, fps=50)
    np.testing.assert_allclose(scales, true_scale, rtol=1e-6)
    metres = codec.model_to_metres(joints_model, scales)
    np.testing.assert_allclose(bone_lengths(metres), bone_lengths(joints_m), rtol=1e-6)


def test_per_frame_scales_are_smoothed_over_time():
    # frame-to-frame wobble of the predicted size (alternating +-5 %) is not passed on
    rng = np.random.default_rng(5)
    reference = np.asarray(H36M_BONE_LENGTHS_M)
    wobble = 0.37 * (1 + 0.05 * (-1) ** np.arange(100))
    joints_model = codec.metres_to_model(posed_skeleton(100, rng), wobble)
    scales = codec.scales_from_bone_lengths(joints_model, reference, fps=50)
    assert np.abs(scales / 0.37 - 1).max() < 0.01


def test_fit_weak_perspective_scale_recovers_per_frame_scale():
    rng = np.random.default_rng(3)
    joints_m = posed_skeleton(6, rng)
    true_scale = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # 2D = scale * (x, y) plus any per-frame translation (the root's place in the image)
    kp = true_scale[:, None, None] * joints_m[..., :2] + rng.normal(size=(6, 1, 2))
    np.testing.assert_allclose(codec.fit_weak_perspective_scale(kp, joints_m), true_scale, rtol=1e-9)


def test_fit_weak_perspective_scale_approximates_the_camera_scale():
    """On a real perspective projection of a person far from the camera, the fitted scale is
    close to 2 f / (w Z_root)."""
    rng = np.random.default_rng(4)
    f, w, h = 1145.0, 1000, 1002
    joints_m = posed_skeleton(5, rng)
    root = np.stack([np.full(5, 0.2), np.full(5, -0.1), np.linspace(6.0, 10.0, 5)], axis=1)
    joints_m = joints_m - joints_m[:, :1] + root[:, None]  # 6-10 m away: weak perspective holds
    px = f * joints_m[..., :2] / joints_m[..., 2:] + [w / 2, h / 2]
    fitted = codec.fit_weak_perspective_scale(codec.normalize_2d(px, w, h), joints_m)
    np.testing.assert_allclose(fitted, codec.camera_scale(f, w, root[:, 2]), rtol=0.1)
    # and it follows the depth: twice as far, about half the scale
    assert fitted[0] / fitted[-1] == pytest.approx(10.0 / 6.0, rel=0.1)
