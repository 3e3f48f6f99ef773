"""The Human3.6M-17 skeleton: the one joint order used everywhere in pose3d.

Every array of joints in the package has this order on its joint axis. Joint 0 (the pelvis,
midway between the hips) is the root. "Left" and "right" are the person's own sides.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "hip",             # 0  pelvis, root
    "right_hip",       # 1
    "right_knee",      # 2
    "right_foot",      # 3  ankle
    "left_hip",        # 4
    "left_knee",       # 5
    "left_foot",       # 6  ankle
    "spine",           # 7  mid torso
    "thorax",          # 8  between the shoulders
    "neck_nose",       # 9
    "head",            # 10 top of the head
    "left_shoulder",   # 11
    "left_elbow",      # 12
    "left_wrist",      # 13
    "right_shoulder",  # 14
    "right_elbow",     # 15
    "right_wrist",     # 16
)
NUM_JOINTS = len(JOINT_NAMES)
ROOT = 0

# Parent of each joint in the kinematic tree (-1 for the root).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

# Bones as (parent, child), in joint order of the child.
BONES: tuple[tuple[int, int], ...] = tuple((p, j) for j, p in enumerate(PARENTS) if p >= 0)

LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)

# FLIP_PERMUTATION[j] is the joint that takes j's place in a mirrored pose.
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    {**dict(zip(LEFT_JOINTS, RIGHT_JOINTS)), **dict(zip(RIGHT_JOINTS, LEFT_JOINTS))}.get(j, j)
    for j in range(NUM_JOINTS)
)

# PoseMamba's "local" spatial scan order: a walk hip -> right leg -> hip -> left leg ->
# thorax -> left arm -> thorax -> right arm (joints 7, 9 and 10 are not in it).
LOCAL_SCAN_ORDER: tuple[int, ...] = (0, 0, 1, 2, 3, 0, 4, 5, 6, 8, 11, 12, 13, 8, 14, 15, 16)


def side(joint: int) -> str:
    """'left', 'right' or 'centre' (the person's own side), e.g. for colours."""
    if joint in LEFT_JOINTS:
        return "left"
    if joint in RIGHT_JOINTS:
        return "right"
    return "centre"


def bone_side(bone: tuple[int, int]) -> str:
    """A bone takes the side of its child joint."""
    return side(bone[1])


def flip_horizontal(joints, axis_value: float = 0.0):
    """Mirror poses left-right: x -> 2 * axis_value - x, then swap left and right joints.

    ``joints``: (..., 17, C), 2D or 3D, with x in channel 0; a numpy array or a torch tensor,
    returned as a new one of the same type and dtype (the input is not changed). The one flip
    of pose3d: training augmentation (datasets.flip_clip) and flip averaging (lifting).
    """
    out = joints[..., list(FLIP_PERMUTATION), :]  # advanced indexing copies (numpy and torch)
    out[..., 0] = 2 * axis_value - out[..., 0]
    return out


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Lengths of the 16 bones: (..., 17, 3) -> (..., 16), in the input's units."""
    parents = [p for p, _ in BONES]
    children = [c for _, c in BONES]
    return np.linalg.norm(joints[..., children, :] - joints[..., parents, :], axis=-1)


# Mean bone lengths (metres, BONES order) of the Human3.6M training subjects S1 S5 S6 S7 S8:
# the body size assumed when a weights file carries none.
H36M_BONE_LENGTHS_M: tuple[float, ...] = (
    0.1345, 0.4499, 0.4459, 0.1345, 0.4499, 0.4459, 0.2393, 0.2554,
    0.1163, 0.1150, 0.1493, 0.2804, 0.2496, 0.1493, 0.2804, 0.2496,
)
# The "head" joint sits near the top of the head, "foot" at the ankle: add the ankle height.
ANKLE_HEIGHT_M = 0.08


def standing_height(bone_lengths_m) -> float:
    """Approximate standing height (m) of a body with these 16 bone lengths:
    mean leg (thigh + shin) + pelvis-spine-thorax-neck-head chain + ankle height."""
    b = np.asarray(bone_lengths_m, dtype=float)
    leg = 0.5 * (b[1] + b[2] + b[4] + b[5])
    return float(leg + b[6] + b[7] + b[8] + b[9] + ANKLE_HEIGHT_M)
