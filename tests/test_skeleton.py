"""The Human3.6M-17 skeleton's left/right bookkeeping and the horizontal flip used for
augmentation (sampling.flip_clip) and flip averaging (windows)."""

import numpy as np
import pytest
import torch

from pose3d import windows
from pose3d.sampling import flip_clip
from pose3d.skeleton import (BONES, FLIP_PERMUTATION, JOINT_NAMES, LEFT_JOINTS, NUM_JOINTS, PARENTS,
                             RIGHT_JOINTS, bone_lengths, flip_horizontal, side)


def mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def test_left_and_right_joint_lists_match_the_names():
    assert [JOINT_NAMES[j] for j in LEFT_JOINTS] == [n for n in JOINT_NAMES if n.startswith("left_")]
    assert [JOINT_NAMES[j] for j in RIGHT_JOINTS] == [n for n in JOINT_NAMES if n.startswith("right_")]
    assert all(side(j) == ("left" if j in LEFT_JOINTS else "right" if j in RIGHT_JOINTS else "centre")
               for j in range(NUM_JOINTS))


def test_flip_permutation_maps_each_joint_to_its_mirror_partner_by_name():
    assert sorted(FLIP_PERMUTATION) == list(range(NUM_JOINTS))
    for j, partner in enumerate(FLIP_PERMUTATION):
        assert JOINT_NAMES[partner] == mirror_name(JOINT_NAMES[j]), (j, partner)
    # an involution: swapping twice restores every joint
    assert [FLIP_PERMUTATION[p] for p in FLIP_PERMUTATION] == list(range(NUM_JOINTS))
    # and it maps the kinematic tree onto itself: the partner's parent is the parent's partner
    for j in range(1, NUM_JOINTS):
        assert PARENTS[FLIP_PERMUTATION[j]] == FLIP_PERMUTATION[PARENTS[j]]


def test_flip_horizontal_negates_x_and_swaps_sides():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(4, NUM_JOINTS, 3))
    flipped = flip_horizontal(pose)
    for j in range(NUM_JOINTS):
        partner = FLIP_PERMUTATION[j]
        np.testing.assert_array_equal(flipped[:, j, 0], -pose[:, partner, 0])
        np.testing.assert_array_equal(flipped[:, j, 1:], pose[:, partner, 1:])
    np.testing.assert_allclose(flip_horizontal(flipped), pose)
    # about another vertical axis (pixels: the image's middle column)
    np.testing.assert_allclose(flip_horizontal(pose, axis_value=320.0)[:, 0, 0], 640.0 - pose[:, 0, 0])
    np.testing.assert_allclose(flip_horizontal(flip_horizontal(pose, 320.0), 320.0), pose)
    # the bone of the left forearm becomes the right forearm, same length
    lengths, flipped_lengths = bone_lengths(pose), bone_lengths(flipped)
    bone_index = {child: i for i, (_, child) in enumerate(BONES)}
    for child, i in bone_index.items():
        np.testing.assert_allclose(flipped_lengths[:, i], lengths[:, bone_index[FLIP_PERMUTATION[child]]])
    assert pose.shape == flipped.shape


def test_flip_leaves_a_left_right_symmetric_pose_unchanged():
    """A person facing the camera in a symmetric pose is their own mirror image."""
    pose = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        pose[j] = [0.0, -0.1 * j, 0.05 * j]  # centre joints on x = 0
    for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS):
        y, z = 0.1 * left, 0.02 * left
        pose[left] = [0.2 + 0.01 * left, y, z]
        pose[right] = [-(0.2 + 0.01 * left), y, z]
    np.testing.assert_allclose(flip_horizontal(pose), pose)
    pose[13, 0] += 0.1  # raise the asymmetry: now it differs
    assert not np.allclose(flip_horizontal(pose), pose)


def test_flip_horizontal_on_torch_tensors_keeps_the_input():
    pose = torch.randn(2, 5, NUM_JOINTS, 3)
    original = pose.clone()
    flipped = flip_horizontal(pose)
    assert isinstance(flipped, torch.Tensor)
    np.testing.assert_allclose(flipped.numpy(), flip_horizontal(pose.numpy()))
    torch.testing.assert_close(pose, original)


@pytest.mark.parametrize("with_3d", [True, False])
def test_flip_clip_agrees_with_flip_horizontal(with_3d):
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(9, NUM_JOINTS, 2)).astype(np.float32)
    j3 = rng.normal(size=(9, NUM_JOINTS, 3)).astype(np.float32) if with_3d else None
    kp_f, j3_f = flip_clip(kp, j3)
    assert kp_f.dtype == np.float32
    np.testing.assert_allclose(kp_f, flip_horizontal(kp))
    if with_3d:
        assert j3_f.dtype == np.float32
        np.testing.assert_allclose(j3_f, flip_horizontal(j3))
        np.testing.assert_allclose(flip_clip(kp_f, j3_f)[1], j3)
    else:
        assert j3_f is None


def test_lifting_flip_averaging_uses_the_same_flip():
    """Flip averaging of a model that is exactly flip-equivariant returns its plain output.

    The model copies x, y and puts (sum of left x) - (sum of right x) in z: a mirror image
    with the sides swapped keeps that z, a mirror image without the swap negates it."""
    left, right = list(LEFT_JOINTS), list(RIGHT_JOINTS)

    class Equivariant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # predict_windows reads the device

        def forward(self, x):
            z = x[..., left, 0].sum(-1) - x[..., right, 0].sum(-1)
            return torch.cat([x, z[..., None, None].expand(*x.shape[:-1], 1)], dim=-1) + self.anchor

    model = Equivariant()
    clips = np.random.default_rng(2).normal(size=(3, 5, NUM_JOINTS, 2)).astype(np.float32)
    plain = windows.predict_windows(model, clips, flip=False, batch_size=2)
    averaged = windows.predict_windows(model, clips, flip=True, batch_size=2)
    assert np.abs(plain[..., 2]).min() > 1e-3
    np.testing.assert_allclose(averaged, plain, atol=1e-5)


def test_the_skeleton_object_derives_the_package_constants():
    from pose3d.skeleton import BONES, H36M_17

    assert H36M_17.names == JOINT_NAMES and H36M_17.parents == PARENTS and len(H36M_17) == NUM_JOINTS
    assert H36M_17.bones == BONES == tuple(zip(H36M_17.bone_parents, H36M_17.bone_children))
    assert H36M_17.left == LEFT_JOINTS == (4, 5, 6, 11, 12, 13)
    assert H36M_17.right == RIGHT_JOINTS == (1, 2, 3, 14, 15, 16)
    assert H36M_17.flip_permutation == FLIP_PERMUTATION == (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)
    assert [H36M_17.bone_side(b) for b in BONES] == [side(c) for _, c in BONES]
    pose = np.random.default_rng(3).normal(size=(2, NUM_JOINTS, 3))
    vectors = H36M_17.bone_vectors(pose)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), bone_lengths(pose))
    np.testing.assert_allclose(H36M_17.bone_vectors(torch.as_tensor(pose)).numpy(), vectors)


def test_any_named_tree_is_a_skeleton_with_its_own_mirror_image():
    """The BVH export's tree (pose3d's joints plus helper joints such as the collars)."""
    from pose3d.bvh import BVH_JOINT_NAMES, BVH_PARENTS
    from pose3d.skeleton import Skeleton

    bvh = Skeleton(BVH_JOINT_NAMES, BVH_PARENTS)
    assert len(bvh.bones) == len(BVH_JOINT_NAMES) - 1
    for j, partner in enumerate(bvh.flip_permutation):
        assert bvh.names[partner] == mirror_name(bvh.names[j])
        if j:
            assert bvh.parents[partner] == bvh.flip_permutation[bvh.parents[j]]
    assert bvh.side(bvh.index("left_collar")) == "left" and bvh.side(bvh.index("neck_base")) == "centre"
    assert [bvh.names[c] for c in bvh.children[bvh.index("thorax")]] == ["neck_base", "left_collar", "right_collar"]
    assert all(bvh.parents[c] == j for j, kids in enumerate(bvh.children) for c in kids)


@pytest.mark.parametrize("names, parents, message", [
    (("root", "a"), (-1,), "one parent per joint"),
    (("root", "root"), (-1, 0), "unique"),
    (("root", "a", "b"), (-1, 2, 0), "before its child"),
    (("root", "a"), (-1, -1), "only root"),
    (("root", "left_arm"), (-1, 0), "left_arm"),
])
def test_a_malformed_skeleton_is_refused(names, parents, message):
    from pose3d.skeleton import Skeleton

    with pytest.raises(ValueError, match=message):
        Skeleton(names, parents)
