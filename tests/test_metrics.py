"""pose3d.metrics: P1 (MPJPE after root alignment), P2 (after Procrustes) and the per-action mean,
on poses whose errors are known by construction."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pose3d.metrics import mpjpe, p_mpjpe, procrustes_align, summarize_by_action


def random_pose(rng, frames=None) -> np.ndarray:
    """(17, 3) or (frames, 17, 3) joints in mm, a body-sized cloud around a root far from 0."""
    shape = (17, 3) if frames is None else (frames, 17, 3)
    return rng.normal(scale=300.0, size=shape) + np.array([100.0, -200.0, 4000.0])


def rotation(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return Rotation.from_rotvec(angle * axis).as_matrix()


def test_a_shifted_pose_has_no_error_after_root_alignment():
    pose = random_pose(np.random.default_rng(0))
    assert mpjpe(pose + [50.0, -20.0, 300.0], pose) == pytest.approx(0.0, abs=1e-9)
    assert p_mpjpe(pose + [50.0, -20.0, 300.0], pose) == pytest.approx(0.0, abs=1e-6)


def test_one_joint_displaced_by_30_mm():
    pose = random_pose(np.random.default_rng(1))
    moved = pose.copy()
    moved[13] += [0.0, 30.0, 0.0]  # the left wrist, 30 mm down
    assert mpjpe(moved, pose) == pytest.approx(30.0 / 17)
    # moving the root instead moves the 16 other joints by 30 mm relative to it
    moved = pose.copy()
    moved[0] += [18.0, 0.0, 24.0]  # |(18, 0, 24)| = 30
    assert mpjpe(moved, pose) == pytest.approx(16 * 30.0 / 17)


def test_similarity_transform_is_invisible_to_p2_only():
    rng = np.random.default_rng(2)
    target = random_pose(rng)
    pred = 0.8 * target @ rotation([1, 2, 3], 0.7).T + [10.0, 500.0, -30.0]
    assert p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(procrustes_align(pred, target), target, atol=1e-6)
    assert mpjpe(pred, target) > 50.0


def test_p2_hand_computed_square():
    """A square in the z = 0 plane against a prediction whose diagonals are pushed +-1 in z:
    the best similarity is the identity with scale 8 / 12 = 2/3 (cross terms vanish), leaving
    every corner sqrt(2 (1/3)^2 + (2/3)^2) = sqrt(6) / 3 from its target."""
    target = np.array([[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]])
    pred = target + np.array([[0, 0, 1.0], [0, 0, 1.0], [0, 0, -1.0], [0, 0, -1.0]])
    np.testing.assert_allclose(procrustes_align(pred, target), pred * 2 / 3, atol=1e-12)
    assert p_mpjpe(pred, target) == pytest.approx(np.sqrt(6) / 3)
    # P1 on the same points: the root (corner 0) is moved up 1, so corners 2 and 3 are 2 off
    assert mpjpe(pred, target) == pytest.approx((0 + 0 + 2 + 2) / 4)


def test_mirror_images_are_not_aligned_away():
    """Procrustes may rotate, scale and shift, but not reflect."""
    target = random_pose(np.random.default_rng(3))
    mirrored = target * [-1.0, 1.0, 1.0]
    assert p_mpjpe(mirrored, target) > 50.0
    # mirroring it back (what a reflection would do) gives a perfect match
    assert p_mpjpe(mirrored * [-1.0, 1.0, 1.0], target) == pytest.approx(0.0, abs=1e-6)


def test_batched_frames_are_scored_independently_and_p2_is_at_most_p1():
    rng = np.random.default_rng(4)
    target = random_pose(rng, frames=6)
    pred = target + rng.normal(scale=40.0, size=target.shape)
    p1, p2 = mpjpe(pred, target), p_mpjpe(pred, target)
    assert p1.shape == p2.shape == (6,)
    np.testing.assert_allclose(p1, [mpjpe(pred[i], target[i]) for i in range(6)])
    np.testing.assert_allclose(p2, [p_mpjpe(pred[i], target[i]) for i in range(6)])
    assert (p2 < p1).all() and (p2 > 0).all()
    # (clips, frames) batches too
    assert mpjpe(pred.reshape(2, 3, 17, 3), target.reshape(2, 3, 17, 3)).shape == (2, 3)


def test_summarize_by_action_averages_frames_then_reports_each_action():
    errors = {"Walking": [np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0, 6.0])],
              "Eating": [np.array([10.0])]}
    summary = summarize_by_action(errors)
    assert list(summary) == ["Eating", "Walking"]  # sorted
    # frames of all views pooled: (1 + ... + 6) / 6, not the mean of the view means (1.5 + 4.5) / 2 = 3
    assert summary["Walking"] == pytest.approx(3.5)
    assert summary["Eating"] == pytest.approx(10.0)
    assert all(isinstance(v, float) for v in summary.values())
