"""Import a BVH file into Blender with the default importer options and check the result.

Run by Blender's Python (Debian's Blender 3.4 runs the system's Python 3.11):

    blender -b --factory-startup --python-exit-code 1 --python tests/blender_check.py -- FILE.bvh EXPECTED.json

EXPECTED.json (written by tests/test_bvh.py):
    bone_names    the armature's bone names, in order
    frames, fps   the BVH's frame count and rate
    import_options  extra keyword arguments for the importer (default: none, i.e. Forward -Z, Up Y)
    check_frames  BVH frame indices (0-based) to look at; Blender frame = 1 + index
    positions     optional {frame index: {bone: [x, y, z]}}: expected joint positions in
                  Blender's world (Z up), within `tolerance` (Blender units)
    facing        optional [x, y, z]: the direction the person faces in Blender's world,
                  with forward = (left_hip - right_hip) x up; checked to within 45 degrees
    dump          optional path: every bone head's world position at every frame is written
                  there as JSON {"bones": [names], "positions": [frames][bones][3]}, for the
                  caller to measure (e.g. how far the hips travel)

Always checked at the check frames: head above the pelvis, both ankles below it (Z up).
Prints one 'blender_check OK: ...' line, or a 'blender_check FAIL: ...' line per failed check
and exits with code 1.
"""

import builtins
import json
import math
import sys

# Blender 3.4's BVH importer opens the file with mode 'rU', which Python 3.11 rejects.
_open = builtins.open


def _open_without_u(file, mode="r", *args, **kwargs):
    if isinstance(mode, str) and "U" in mode:
        mode = mode.replace("U", "") or "r"
    return _open(file, mode, *args, **kwargs)


builtins.open = _open_without_u

import addon_utils  # noqa: E402  (Blender modules)
import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402


def main(bvh_path: str, expected_path: str) -> None:
    with _open(expected_path) as f:
        expected = json.load(f)
    addon_utils.enable("io_anim_bvh", default_set=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 1  # the importer only ever extends the scene
    # Default options, plus taking over the file's frame rate and length.
    bpy.ops.import_anim.bvh(filepath=bvh_path, update_scene_fps=True, update_scene_duration=True,
                            **expected.get("import_options", {}))
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    failures = []

    names = [b.name for b in arm.data.bones]
    if names != expected["bone_names"]:
        failures.append(f"bone names {names} != {expected['bone_names']}")

    n = expected["frames"]
    fps = scene.render.fps / scene.render.fps_base
    if abs(fps - expected["fps"]) > 1e-3 * expected["fps"]:
        failures.append(f"scene fps {fps} != {expected['fps']}")
    first_key, last_key = arm.animation_data.action.frame_range
    # The importer keys BVH frame i at Blender frame 1 + i and sets the scene's end to
    # frame_start + frames (one past the last key).
    if (round(first_key), round(last_key)) != (1, n):
        failures.append(f"keyframes {first_key}..{last_key}, expected 1..{n}")
    if (scene.frame_start, scene.frame_end) != (1, 1 + n):
        failures.append(f"scene frames {scene.frame_start}..{scene.frame_end}, expected 1..{1 + n}")

    worst = 0.0
    for index in expected["check_frames"]:
        scene.frame_set(1 + index)
        head = {pb.name: arm.matrix_world @ pb.head for pb in arm.pose.bones}
        hip = head["hip"]
        if not head["head"].z > hip.z:
            failures.append(f"frame {index}: head z {head['head'].z:.3f} not above hip z {hip.z:.3f}")
        for foot in ("left_foot", "right_foot"):
            if not head[foot].z < hip.z:
                failures.append(f"frame {index}: {foot} z {head[foot].z:.3f} not below hip z {hip.z:.3f}")
        if "facing" in expected:
            forward = (head["left_hip"] - head["right_hip"]).cross(Vector((0, 0, 1))).normalized()
            cos = forward.dot(Vector(expected["facing"]).normalized())
            if cos < math.cos(math.radians(45)):
                failures.append(f"frame {index}: faces {tuple(round(v, 2) for v in forward)}, "
                                f"expected {expected['facing']}")
        for name, pos in expected.get("positions", {}).get(str(index), {}).items():
            err = (head[name] - Vector(pos)).length
            worst = max(worst, err)
            if err > expected.get("tolerance", 1e-3):
                failures.append(f"frame {index}: {name} at {tuple(round(v, 4) for v in head[name])}, "
                                f"expected {tuple(round(v, 4) for v in pos)}")
    if "dump" in expected:
        bones = [pb.name for pb in arm.pose.bones]
        positions = []
        for index in range(n):
            scene.frame_set(1 + index)
            positions.append([list(arm.matrix_world @ arm.pose.bones[name].head) for name in bones])
        with _open(expected["dump"], "w") as f:
            json.dump({"bones": bones, "positions": positions}, f)
    for line in failures:
        print("blender_check FAIL:", line)
    if failures:
        raise SystemExit(1)
    print(f"blender_check OK: {len(names)} bones, keys 1..{n}, scene {scene.frame_start}..{scene.frame_end} "
          f"at {fps:.3f} fps, {len(expected['check_frames'])} frames upright"
          + (", facing as expected" if "facing" in expected else "")
          + (f", max position error {worst:.2e}" if "positions" in expected else ""))


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(args) != 2:
        raise SystemExit("usage: blender -b --python-exit-code 1 --python blender_check.py -- FILE.bvh EXPECTED.json")
    main(*args)
