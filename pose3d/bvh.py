"""BVH motion files of the Human3.6M-17 skeleton: write (with rotations solved from 3D joint
positions), read back, and forward kinematics to check them.

What the file holds (docs/bvh.md has the long form):

* Hierarchy: the 17 pose3d joints under their own names (pose3d.skeleton), root ``hip``,
  plus four helper joints that sit on their parent (zero offset): ``lower_back`` (pelvis ->
  spine), ``neck_base`` (thorax -> neck), ``left_collar`` / ``right_collar`` (thorax ->
  shoulders). With them every bone direction is reproduced exactly. The five leaves (feet,
  head, wrists) end in an End Site (toes, top of the head, hands).
* Rest pose: upright T-pose facing forward, all rotations zero. Bone offsets are the track's
  median bone lengths (or the ones given); the hips sit where the track's median pelvis has
  them. Forward kinematics gives back the input joints with those bone lengths.
* Rotations: solved per joint from the observed bone directions. Pelvis and thorax from two
  vectors each (hip line and spine; spine and shoulder line); every other joint turns its one
  bone by the smallest rotation, with the twist about the bone carried over smoothly from
  frame to frame and pulled back slowly to a reference: thighs and upper arms follow the plane
  in which the knee or elbow bends, so that knees and elbows turn like hinges.
* Channels: root ``Xposition Yposition Zposition`` + 3 rotations, every other joint 3
  rotations, degrees, in the order written in each CHANNELS line (R = R_1 @ R_2 @ R_3).
  The order is chosen per joint to keep away from gimbal lock; angles are unwrapped (no
  360-degree jumps between frames).
* Axes: ``up="y"``: Y up, the person (in rest pose) faces +Z, their left is +X: the usual BVH
  convention. ``up="z"``: Z up, facing -Y, left +X: Blender's own axes. Either way a person
  facing the video's camera faces the viewer of the front view, their left hip on +X.
* Units: metres or centimetres (``units``). Frame Time = 1 / fps.

For Blender use ``up="y"`` (the default) with the importer's default axes (Forward -Z, Up Y):
the person stands upright on the Z-up floor, facing Blender's front view (-Y). Tick "Update
Scene FPS" and "Update Scene Duration" in the import dialog to take over the frame rate and
length. (A ``up="z"`` file needs Forward Y, Up Z in that dialog.)
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .io_utils import atomic_write_text
from .rotations import (CAMERA_TO_YUP, axis_angle, axis_rotation, euler_from_matrices, euler_order, frame, swing,
                        twist_angle, unit, world_axes)
from .skeleton import ANKLE_HEIGHT_M, BONES, JOINT_NAMES, NUM_JOINTS, Skeleton, bone_lengths

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- skeleton
# The rotations are solved in a Y-up world (right-handed; pose3d.rotations): x = the camera's x
# (right), y = up (-y of the camera), z = towards the camera. A person facing the camera faces +Z.
_UNIT_SCALE = {"m": 1.0, "cm": 100.0}
_X, _Y, _Z = np.eye(3)

# The BVH skeleton: pose3d's 17 joints plus four helper joints that sit on their parent
# (zero offset), as in the CMU motion-capture skeleton: lower_back (pelvis -> spine),
# neck_base (thorax -> neck) and the collars (thorax -> shoulders). Without them one rotation
# would have to place the hips and the spine, or the neck and both shoulders, whose angles
# change in real motion (Human3.6M: shoulders off by up to 7 cm); with them every bone
# direction is reproduced, and the thorax turns with the chest, not with head nods.
# Columns: name, parent, rest (T-pose, Y-up) direction of the bone from its parent (None:
# helper, zero offset), preferred Euler order (Y-up letters).
# Its middle axis, where gimbal lock sits at +-90 degrees, is the one with the smallest range:
# the bone's own (twist) axis for joints turning a vertical bone (Y) or an arm bone (X), and
# left-right (X) for the pelvis and thorax, which turn freely about the vertical. A joint
# whose track still comes within 30 degrees of that lock gets the order farthest from it.
_JOINTS = (
    ("hip", None, None, "ZXY"),
    ("right_hip", "hip", -_X, "ZYX"),
    ("right_knee", "right_hip", -_Y, "ZYX"),
    ("right_foot", "right_knee", -_Y, "ZXY"),
    ("left_hip", "hip", _X, "ZYX"),
    ("left_knee", "left_hip", -_Y, "ZYX"),
    ("left_foot", "left_knee", -_Y, "ZXY"),
    ("lower_back", "hip", None, "ZYX"),
    ("spine", "lower_back", _Y, "ZYX"),
    ("thorax", "spine", _Y, "ZXY"),
    ("neck_base", "thorax", None, "ZYX"),
    ("neck_nose", "neck_base", _Y, "ZYX"),
    ("head", "neck_nose", _Y, "ZXY"),
    ("left_collar", "thorax", None, "ZXY"),
    ("left_shoulder", "left_collar", _X, "ZXY"),
    ("left_elbow", "left_shoulder", _X, "ZXY"),
    ("left_wrist", "left_elbow", _X, "ZXY"),
    ("right_collar", "thorax", None, "ZXY"),
    ("right_shoulder", "right_collar", -_X, "ZXY"),
    ("right_elbow", "right_shoulder", -_X, "ZXY"),
    ("right_wrist", "right_elbow", -_X, "ZXY"),
)
_NAMES, _PARENT_NAMES, _REST_DIRECTIONS, _ORDERS_YUP = zip(*_JOINTS)
BVH_SKELETON = Skeleton(_NAMES, tuple(_NAMES.index(p) if p else -1 for p in _PARENT_NAMES))
BVH_JOINT_NAMES: tuple[str, ...] = BVH_SKELETON.names
BVH_PARENTS: tuple[int, ...] = BVH_SKELETON.parents
# the pose3d joint each BVH joint sits on: its namesake, or a helper's parent
_SOURCE = np.array([JOINT_NAMES.index(n if n in JOINT_NAMES else BVH_JOINT_NAMES[p]) for n, p in
                    zip(BVH_JOINT_NAMES, BVH_PARENTS)])
_HAS_OFFSET = tuple(d is not None for d in _REST_DIRECTIONS)
_J = BVH_SKELETON.index
# End Sites of the leaves, metres (Y-up): toes forward of the ankle, top of the head, hands.
_END_SITE = {_J("right_foot"): 0.10 * _Z, _J("left_foot"): 0.10 * _Z, _J("head"): 0.10 * _Y,
             _J("left_wrist"): 0.08 * _X, _J("right_wrist"): -0.08 * _X}
# Joints turned by a frame built from two observed vectors (from, to): the first is matched
# exactly, the second sets the twist about it. The pelvis: hip line, then the spine; the
# thorax (the chest): the spine's upper bone, then the shoulder line.
_FRAME_VECTORS = {
    _J("hip"): ((_J("right_hip"), _J("left_hip")), (_J("hip"), _J("spine"))),
    _J("thorax"): ((_J("spine"), _J("thorax")), (_J("right_shoulder"), _J("left_shoulder"))),
}

# Knees and elbows bend like hinges: the twist of the thigh and upper arm follows the plane
# of the bend, so that the knee and elbow turn about one fixed local axis (rest pose: across
# the limb; knees bend backwards, elbows forwards). Joint -> rest hinge axis = rest bone x
# rest direction of the next bone's bending.
_HINGE_AXES = {
    _J("right_hip"): np.cross(-_Y, -_Z), _J("left_hip"): np.cross(-_Y, -_Z),
    _J("left_shoulder"): np.cross(_X, _Z), _J("right_shoulder"): np.cross(-_X, _Z),
}

# Twist of single-child joints: carried over from the previous frame (no flips), pulled back
# towards a reference (swing-only from the rest pose, or the hinge) at this rate (no drift),
# except where that reference is ill-defined (bone nearly opposite its rest direction, limb
# straight).
_TWIST_RETURN_DEG_PER_S = 180.0


@dataclass
class BVH:
    """A parsed BVH file (any skeleton); ``forward_kinematics`` turns it into positions."""

    joint_names: list[str]
    parents: list[int]                      # -1 for the root
    offsets: np.ndarray                     # (J, 3) file units, in the parent's frame
    channels: list[tuple[str, ...]]         # per joint, e.g. ("Zrotation", "Xrotation", "Yrotation")
    frame_time: float                       # seconds
    motion: np.ndarray                      # (N, total channels), degrees and file units
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> End Site offset

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


# --------------------------------------------------------------------------- solving rotations
def _bone_directions(positions: np.ndarray) -> np.ndarray:
    """(N, J, 3) unit direction of each BVH bone from its parent (zero rows for the root and
    the helpers); a zero-length bone keeps the previous frame's direction (frame 0: rest)."""
    out = np.zeros_like(positions)
    for j, rest in enumerate(_REST_DIRECTIONS):
        if rest is None:
            continue
        vec = positions[:, j] - positions[:, BVH_PARENTS[j]]
        norm = np.linalg.norm(vec, axis=-1)
        d = vec / np.maximum(norm, 1e-12)[:, None]
        for t in np.flatnonzero(norm < 1e-9):
            d[t] = d[t - 1] if t else rest
        out[:, j] = d
    return out


def _chain_positions(directions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, J, 3) positions rebuilt from the pelvis with these directions and bone lengths."""
    out = np.zeros_like(directions)
    for j, p in enumerate(BVH_PARENTS):
        if p >= 0:
            out[:, j] = out[:, p] + directions[:, j] * lengths[j]
    return out


def _frame_rotation(positions: np.ndarray, rest_positions: np.ndarray, j: int) -> np.ndarray:
    """(N, 3, 3) world rotation of the pelvis or thorax: the rest frame of its two vectors
    turned onto the observed one."""
    (a0, a1), (b0, b1) = _FRAME_VECTORS[j]
    observed = frame(positions[:, a1] - positions[:, a0], positions[:, b1] - positions[:, b0])
    rest = frame(rest_positions[a1] - rest_positions[a0], rest_positions[b1] - rest_positions[b0])
    return observed @ rest.T


def _rest_offsets(directions: np.ndarray, positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(J, 3) bone offsets of the rest pose (Y-up): the T-pose of _JOINTS, except the hips,
    which take the track's median place in the pelvis frame (kept exactly when the pelvis is
    rigid, e.g. not midway between the hips)."""
    rest = np.array([np.zeros(3) if d is None else d for d in _REST_DIRECTIONS])
    pelvis = _frame_rotation(positions, _rest_positions(rest * lengths[:, None]), _J("hip"))
    for hip in (_J("right_hip"), _J("left_hip")):
        median = np.median(np.einsum("nji,nj->ni", pelvis, directions[:, hip]), axis=0)
        if np.linalg.norm(median) > 1e-6:
            rest[hip] = unit(median)
    return rest * lengths[:, None]


def _rest_positions(offsets: np.ndarray) -> np.ndarray:
    out = np.zeros_like(offsets)
    for j, p in enumerate(BVH_PARENTS):
        if p >= 0:
            out[j] = out[p] + offsets[j]
    return out


def _single_child_rotations(rest_dir: np.ndarray, target: np.ndarray, dt: float,
                            hinge: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(N, 3, 3) local rotations taking ``rest_dir`` to ``target`` (N, 3), both in the parent's
    frame, with a twist about the bone that changes smoothly: carried over from the previous
    frame, and pulled (at _TWIST_RETURN_DEG_PER_S) towards a reference where one is defined.

    The reference is the swing-only rotation from the rest pose, or for a thigh or upper arm
    (``hinge``: rest hinge axis, (N, 3) observed direction of the next bone) the rotation
    whose hinge axis lies across the plane in which the knee or elbow bends."""
    swing_only = swing(rest_dir, target)
    # how far the swing-only rotation can be trusted: 1 up to 120 degrees from rest, 0 past ~154
    weight = np.clip((target @ rest_dir + 0.9) / 0.4, 0.0, 1.0)
    reference = np.zeros(len(target))  # twist of the reference over the swing-only rotation
    if hinge is not None:
        rest_axis, next_bone = hinge
        cross = np.cross(target, next_bone)
        bent = np.clip((np.linalg.norm(cross, axis=-1) - 0.17) / 0.33, 0.0, 1.0)  # sin: 10..30 degrees
        hinged = frame(target, cross) @ frame(rest_dir, rest_axis).T
        reference = np.where(bent > 0, twist_angle(hinged, swing_only, target), 0.0)
        weight = np.where(bent > 0, bent, weight)
    # twist of each frame's swing-only rotation relative to the previous one moved minimally
    carried = swing(target[:-1], target[1:]) @ swing_only[:-1]
    delta = twist_angle(swing_only[1:], carried, target[1:])
    max_return = math.radians(_TWIST_RETURN_DEG_PER_S) * dt
    twist = [float(reference[0])]  # twist on top of the swing-only rotation, per frame
    for d, ref, w in zip(delta.tolist(), reference[1:].tolist(), weight[1:].tolist()):
        psi = twist[-1] - d
        off = (psi - ref + math.pi) % (2 * math.pi) - math.pi
        step = max_return * w
        twist.append(psi - min(max(off, -step), step))
    return axis_angle(target, np.array(twist)) @ swing_only


def _solve_local_rotations(directions: np.ndarray, positions: np.ndarray, offsets: np.ndarray,
                           dt: float) -> tuple[np.ndarray, float]:
    """Local rotations (N, J, 3, 3) of the BVH joints (Y-up world), and the largest distance
    (m) by which a child of the pelvis or thorax misses its place (zero for a rigid pelvis)."""
    n, num = directions.shape[:2]
    rest_positions = _rest_positions(offsets)
    glob = np.zeros((n, num, 3, 3))
    local = np.zeros_like(glob)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    residual = 0.0
    for j in range(num):
        parent = glob[:, BVH_PARENTS[j]] if BVH_PARENTS[j] >= 0 else eye
        moved = [c for c in BVH_SKELETON.children[j] if _HAS_OFFSET[c]]
        if j in _FRAME_VECTORS:
            glob[:, j] = _frame_rotation(positions, rest_positions, j)
            for c in moved:
                miss = glob[:, j] @ offsets[c] - (positions[:, c] - positions[:, j])
                residual = max(residual, float(np.linalg.norm(miss, axis=-1).max()))
        elif moved:  # one child (helpers included): swing with a smooth twist
            child = moved[0]
            target = np.einsum("nji,nj->ni", parent, directions[:, child])  # in the parent's frame
            hinge = None
            if j in _HINGE_AXES:
                next_bone = np.einsum("nji,nj->ni", parent, directions[:, BVH_SKELETON.children[child][0]])
                hinge = (_HINGE_AXES[j], next_bone)
            glob[:, j] = parent @ _single_child_rotations(unit(offsets[child]), target, dt, hinge)
        else:  # leaves: nothing observed turns them
            glob[:, j] = parent
        local[:, j] = np.swapaxes(parent, -1, -2) @ glob[:, j]
    return local, residual


# --------------------------------------------------------------------------- writing
def _check_inputs(joints_m, fps, root_m, up, units, bone_lengths_m, person_up):
    joints = np.asarray(joints_m, dtype=float)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise InputError(f"BVH export needs joints of shape (frames, {NUM_JOINTS}, 3), got {joints.shape}")
    if len(joints) == 0:
        raise InputError("BVH export needs at least one frame")
    if not np.all(np.isfinite(joints)):
        raise InputError("BVH export: the joints contain NaN or infinite values")
    if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
        raise InputError(f"BVH export needs a positive frame rate, got {fps!r}")
    if up not in ("y", "z"):
        raise InputError(f"BVH up axis must be 'y' or 'z', got {up!r}")
    if units not in _UNIT_SCALE:
        raise InputError(f"BVH units must be 'm' or 'cm', got {units!r}")
    root = None
    if root_m is not None:
        root = np.asarray(root_m, dtype=float)
        if root.shape != (len(joints), 3):
            raise InputError(f"BVH root trajectory must have shape ({len(joints)}, 3), got {root.shape}")
        if not np.all(np.isfinite(root)):
            raise InputError("BVH root trajectory contains NaN or infinite values")
        if not np.any(root):  # Track3D.root_positions() without a floor estimate: no trajectory
            root = None
    if bone_lengths_m is None:
        lengths = np.median(bone_lengths(joints), axis=0)
    else:
        lengths = np.asarray(bone_lengths_m, dtype=float)
        if lengths.shape != (len(BONES),):
            raise InputError(f"BVH bone lengths must have shape ({len(BONES)},), got {lengths.shape}")
    bad = np.flatnonzero(~(np.isfinite(lengths) & (lengths > 1e-6)))
    if len(bad):
        p, c = BONES[bad[0]]
        raise InputError(f"BVH export: bone {JOINT_NAMES[p]}-{JOINT_NAMES[c]} has no length ({lengths[bad[0]]:.3g} m)")
    if person_up is not None:
        person_up = np.asarray(person_up, dtype=float)
        if person_up.shape != (3,) or not np.all(np.isfinite(person_up)) or np.linalg.norm(person_up) < 1e-9:
            raise InputError("BVH person_up must be a finite, non-zero 3-vector")
    return joints, root, lengths, person_up


def write_bvh(path: str | Path, joints_m, fps: float, *, root_m=None, up: str = "y", units: str = "m",
              bone_lengths_m=None, person_up=None) -> None:
    """Write a track as a BVH file (written atomically).

    joints_m: (N, 17, 3) metres, root-relative, camera axes (x right, y down, z away).
    fps: frames per second (Frame Time = 1 / fps).
    root_m: optional (N, 3) pelvis positions, camera axes, metres, over a floor through the
        origin (pose3d.export passes the root in camera space plus the camera's height along the
        floor's up, with person_up = the floor's up: the root in the video's world; older results,
        Track3D.root_positions()); None or all zeros: the pelvis stays above the origin at the
        track's median standing height (lower ankle 8 cm above the floor).
    up: "y" (Y up, facing +Z; Blender's importer with its default options, most tools) or
        "z" (Z up, facing -Y; tools that read Z-up files, Blender with Forward Y / Up Z).
    units: "m" or "cm" (Unreal, MotionBuilder, Maya default).
    bone_lengths_m: optional (16,) bone lengths in pose3d.skeleton.BONES order; default the
        track's median lengths. The positions are reproduced with these lengths.
    person_up: optional (3,) the person's up direction in camera axes (Track3D.up): the scene is
        turned so that it points straight up (a tilted camera gives an upright person).

    Bad input: InputError. Unwritable path: OutputError.
    """
    joints, root, lengths, person_up = _check_inputs(joints_m, fps, root_m, up, units, bone_lengths_m, person_up)
    to_world = _to_world(person_up)
    world = (joints - joints[:, :1]) @ to_world.T
    directions = _bone_directions(world[:, _SOURCE])
    bone_of_child = {child: b for b, (_, child) in enumerate(BONES)}
    bvh_lengths = np.array([lengths[bone_of_child[_SOURCE[j]]] if _HAS_OFFSET[j] else 0.0
                            for j in range(len(BVH_SKELETON))])  # of the bone from each joint's parent
    positions = _chain_positions(directions, bvh_lengths)  # bones at their BVH lengths
    offsets = _rest_offsets(directions, positions, bvh_lengths)
    local, residual = _solve_local_rotations(directions, positions, offsets, 1.0 / float(fps))
    if root is None:
        lowest_ankle = np.min(positions[:, [_J("right_foot"), _J("left_foot")], 1], axis=1)
        root_world = np.tile([0.0, float(np.median(-lowest_ankle)) + ANKLE_HEIGHT_M, 0.0], (len(world), 1))
    else:
        root_world = root @ to_world.T

    scale = _UNIT_SCALE[units]
    axes = world_axes(up)
    letters = {"X": "X", "Y": "Y", "Z": "Z"} if up == "y" else {"X": "X", "Y": "Z", "Z": "Y"}
    orders = ["".join(letters[a] for a in euler_order(local[:, j], order)) for j, order in enumerate(_ORDERS_YUP)]
    local = axes @ local @ axes.T
    columns = [root_world @ axes.T * scale]
    columns += [euler_from_matrices(local[:, j], orders[j]) for j in range(len(BVH_SKELETON))]
    motion = np.round(np.concatenate(columns, axis=1), 6) + 0.0  # + 0.0: no "-0.000000"

    text = io.StringIO()
    text.write("HIERARCHY\n")
    _write_joint(text, 0, offsets @ axes.T * scale, orders, {j: axes @ e * scale for j, e in _END_SITE.items()}, 0)
    text.write(f"MOTION\nFrames: {len(motion)}\nFrame Time: {1.0 / float(fps):.12g}\n")
    np.savetxt(text, motion, fmt="%.6f")
    atomic_write_text(path, text.getvalue())
    log.info("wrote %s: %d frames at %.3g fps, up=%s, units=%s", path, len(motion), fps, up, units)
    log.debug("largest miss of a pelvis/thorax child: %.1f mm", 1000 * residual)


def _to_world(person_up) -> np.ndarray:
    """Camera axes -> the Y-up world, levelled on ``person_up`` when given."""
    if person_up is None:
        return CAMERA_TO_YUP
    return CAMERA_TO_YUP @ swing(unit(np.asarray(person_up, float)), np.array([0.0, -1.0, 0.0]))


def _write_joint(out: io.StringIO, j: int, offsets, orders, end_sites, depth: int) -> None:
    pad = "  " * depth
    rotations = " ".join(f"{a}rotation" for a in orders[j])
    if j == 0:
        out.write(f"ROOT {BVH_JOINT_NAMES[j]}\n{pad}{{\n")
        out.write(f"{pad}  OFFSET 0.000000 0.000000 0.000000\n")
        out.write(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rotations}\n")
    else:
        out.write(f"{pad}JOINT {BVH_JOINT_NAMES[j]}\n{pad}{{\n")
        out.write(f"{pad}  OFFSET {' '.join(f'{v:.6f}' for v in offsets[j] + 0.0)}\n")
        out.write(f"{pad}  CHANNELS 3 {rotations}\n")
    for child in BVH_SKELETON.children[j]:
        _write_joint(out, child, offsets, orders, end_sites, depth + 1)
    if j in end_sites:
        out.write(f"{pad}  End Site\n{pad}  {{\n")
        out.write(f"{pad}    OFFSET {' '.join(f'{v:.6f}' for v in end_sites[j] + 0.0)}\n{pad}  }}\n")
    out.write(f"{pad}}}\n")


# --------------------------------------------------------------------------- reading
def read_bvh(path: str | Path) -> BVH:
    """Parse a BVH file (any skeleton with one root). InputError when it cannot be read."""
    try:
        tokens = Path(path).read_text().split()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read BVH file {path}: {exc}") from None
    try:
        return _parse(tokens)
    except IndexError:
        raise InputError(f"{path} is not a valid BVH file (it ends early)") from None
    except ValueError as exc:
        raise InputError(f"{path} is not a valid BVH file ({exc})") from None


def _parse(tokens: list[str]) -> BVH:
    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise ValueError("no HIERARCHY")
    names, parents, offsets, channels, end_sites = [], [], [], [], {}
    stack: list[int] = []  # open joints; -2 marks an End Site
    pos = 1
    while tokens[pos].upper() != "MOTION":
        word = tokens[pos].upper()
        if word in ("ROOT", "JOINT"):
            names.append(tokens[pos + 1])
            parents.append(stack[-1] if stack else -1)
            channels.append(())
            offsets.append(np.zeros(3))
            pos += 2
        elif word == "END":
            stack.append(-2)
            pos += 2  # "End Site"
            if tokens[pos] != "{":
                raise ValueError("End Site without '{'")
            pos += 1
            continue
        elif word == "{":
            stack.append(len(names) - 1)
            pos += 1
        elif word == "}":
            stack.pop()
            pos += 1
        elif word == "OFFSET":
            values = np.array([float(v) for v in tokens[pos + 1:pos + 4]])
            if stack[-1] == -2:
                end_sites[stack[-2]] = values
            else:
                offsets[stack[-1]] = values
            pos += 4
        elif word == "CHANNELS":
            count = int(tokens[pos + 1])
            channels[stack[-1]] = tuple(tokens[pos + 2:pos + 2 + count])
            pos += 2 + count
        else:
            raise ValueError(f"unexpected {tokens[pos]!r}")
    if not names or stack:
        raise ValueError("unbalanced hierarchy")
    if tokens[pos + 1].lower() != "frames:" or " ".join(tokens[pos + 3:pos + 5]).lower() != "frame time:":
        raise ValueError("bad MOTION header")
    frames, frame_time = int(tokens[pos + 2]), float(tokens[pos + 5])
    width = sum(len(c) for c in channels)
    values = np.array(tokens[pos + 6:], dtype=float)
    if values.size != frames * width:
        raise ValueError(f"{values.size} motion values for {frames} frames of {width} channels")
    return BVH(names, parents, np.array(offsets), channels, frame_time, values.reshape(frames, width), end_sites)


def forward_kinematics(bvh: BVH) -> np.ndarray:
    """(N, J, 3) joint positions of every frame, in the file's units and axes."""
    n = len(bvh.motion)
    pos = np.zeros((n, len(bvh.joint_names), 3))
    glob = np.zeros((n, len(bvh.joint_names), 3, 3))
    column = 0
    for j, chans in enumerate(bvh.channels):
        translation = np.tile(bvh.offsets[j], (n, 1))
        rot = np.broadcast_to(np.eye(3), (n, 3, 3))
        for name in chans:
            values = bvh.motion[:, column]
            column += 1
            axis, kind = name[0].upper(), name[1:].lower()
            if kind == "position":
                translation[:, "XYZ".index(axis)] += values
            elif kind == "rotation":
                rot = rot @ axis_rotation(axis, values)
        p = bvh.parents[j]
        if p < 0:
            glob[:, j], pos[:, j] = rot, translation
        else:
            glob[:, j] = glob[:, p] @ rot
            pos[:, j] = pos[:, p] + np.einsum("nij,nj->ni", glob[:, p], translation)
    return pos


def bvh_axes_to_camera(points, *, up: str = "y", units: str = "m", person_up=None) -> np.ndarray:
    """Positions (..., 3) from a file written by write_bvh with these options back to pose3d's
    camera axes and metres (not root-relative: the pelvis carries the root trajectory)."""
    # world = axes @ to_world @ camera * scale, with orthonormal matrices
    axes = world_axes(up)
    return np.asarray(points, float) / _UNIT_SCALE[units] @ (axes @ _to_world(person_up))


def camera_joints(bvh: BVH, *, up: str = "y", units: str = "m", person_up=None) -> np.ndarray:
    """(N, 17, 3) the pose3d joints of a file written by write_bvh with these options, by
    forward kinematics, in camera axes and metres (pelvis at the root trajectory)."""
    missing = [name for name in JOINT_NAMES if name not in bvh.joint_names]
    if missing:
        raise InputError(f"the BVH skeleton lacks the pose3d joints {', '.join(missing)}")
    positions = forward_kinematics(bvh)[:, [bvh.joint_names.index(name) for name in JOINT_NAMES]]
    return bvh_axes_to_camera(positions, up=up, units=units, person_up=person_up)
