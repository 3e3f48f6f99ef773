"""The Human3.6M-17 skeleton: the one joint order used everywhere in pose3d.

Every array of joints in the package has this order on its joint axis. Joint 0 (the pelvis,
midway between the hips) is the root. "Left" and "right" are the person's own sides.

:class:`Skeleton` derives everything about a joint tree (bones, sides, the mirror image) from
its names and parents; :data:`H36M_17` is pose3d's, and the module's constants are its parts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A tree of named joints. Joint 0 is the root; parents come before their children.
    The person's sides come from the names: "left_x" and "right_x" are mirror partners."""

    names: tuple[str, ...]
    parents: tuple[int, ...]  # parent of each joint, -1 for the root

    def __post_init__(self):
        if len(self.parents) != len(self.names) or len(set(self.names)) != len(self.names):
            raise ValueError("a skeleton needs one parent per joint and unique joint names")
        if self.parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(self.parents) if j):
            raise ValueError("joint 0 must be the only root and every parent must come before its child")
        unpaired = [n for n in self.names if self.mirror_name(n) not in self.names]
        if unpaired:
            raise ValueError(f"joints without a mirror partner: {', '.join(unpaired)}")

    @staticmethod
    def mirror_name(name: str) -> str:
        """'left_knee' <-> 'right_knee'; other names are their own mirror image."""
        for this, other in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(this):
                return other + name[len(this):]
        return name

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    @functools.cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        """The children of each joint, in joint order."""
        return tuple(tuple(c for c, p in enumerate(self.parents) if p == j) for j in range(len(self)))

    @functools.cached_property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) per non-root joint, in the child's joint order."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    @functools.cached_property
    def bone_parents(self) -> tuple[int, ...]:
        return tuple(p for p, _ in self.bones)

    @functools.cached_property
    def bone_children(self) -> tuple[int, ...]:
        return tuple(c for _, c in self.bones)

    @functools.cached_property
    def left(self) -> tuple[int, ...]:
        """The person's left joints, in joint order."""
        return tuple(j for j, n in enumerate(self.names) if n.startswith("left_"))

    @functools.cached_property
    def right(self) -> tuple[int, ...]:
        """The mirror partner of each of :attr:`left`, in the same order."""
        return tuple(self.flip_permutation[j] for j in self.left)

    @functools.cached_property
    def flip_permutation(self) -> tuple[int, ...]:
        """``flip_permutation[j]``: the joint that takes j's place in a mirrored pose."""
        return tuple(self.index(self.mirror_name(n)) for n in self.names)

    def side(self, joint: int) -> str:
        """'left', 'right' or 'centre' (the person's own side), e.g. for colours."""
        name = self.names[joint]
        return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"

    def bone_side(self, bone: tuple[int, int]) -> str:
        """A bone takes the side of its child joint."""
        return self.side(bone[1])

    def flip_horizontal(self, joints, axis_value: float = 0.0):
        """Mirror poses left-right: x -> 2 * axis_value - x, then swap left and right joints.

        ``joints``: (..., J, C), 2D or 3D, with x in channel 0; a numpy array or a torch
        tensor, returned as a new one of the same type and dtype (the input is not changed).
        The one flip of pose3d: training augmentation (sampling.flip_clip) and flip
        averaging (pose3d.windows).
        """
        out = joints[..., list(self.flip_permutation), :]  # advanced indexing copies (numpy and torch)
        out[..., 0] = 2 * axis_value - out[..., 0]
        return out

    def bone_vectors(self, joints):
        """(..., J, C) -> (..., bones, C): child minus parent; numpy or torch."""
        return joints[..., list(self.bone_children), :] - joints[..., list(self.bone_parents), :]

    def bone_lengths(self, joints: np.ndarray) -> np.ndarray:
        """Lengths of the bones: (..., J, 3) -> (..., bones), in the input's units."""
        return np.linalg.norm(self.bone_vectors(joints), axis=-1)


H36M_17 = Skeleton(
    names=(
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
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)

# H36M_17's parts under the names the package uses.
JOINT_NAMES: tuple[str, ...] = H36M_17.names
NUM_JOINTS = len(H36M_17)
ROOT = 0
PARENTS: tuple[int, ...] = H36M_17.parents
BONES: tuple[tuple[int, int], ...] = H36M_17.bones  # (parent, child), in joint order of the child
LEFT_JOINTS: tuple[int, ...] = H36M_17.left         # (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = H36M_17.right       # (1, 2, 3, 14, 15, 16)
FLIP_PERMUTATION: tuple[int, ...] = H36M_17.flip_permutation
side = H36M_17.side
bone_side = H36M_17.bone_side
flip_horizontal = H36M_17.flip_horizontal
bone_lengths = H36M_17.bone_lengths

# PoseMamba's "local" spatial scan order: a walk hip -> right leg -> hip -> left leg ->
# thorax -> left arm -> thorax -> right arm (joints 7, 9 and 10 are not in it).
LOCAL_SCAN_ORDER: tuple[int, ...] = (0, 0, 1, 2, 3, 0, 4, 5, 6, 8, 11, 12, 13, 8, 14, 15, 16)

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
