"""Where are the people? Root position and floor accuracy of ``pose3d lift`` on Human3.6M.

    python benchmarks/trajectory_accuracy.py [--weights W] [--data DIR] [--full]

Each test view of S9/S11 (quick protocol by default: camera 54138969, the first 486 frames of
each recording, S11 Directions excluded; ``--full``: all four cameras, every frame) goes
through the same steps as a video does in ``pose3d lift`` (pose3d.lift.Lifter.lift: the 2D
track in pixels, lifted, scaled to metres from bone lengths, post-processed, the root fitted
under the camera model, pose3d.trajectory), then the floor of that view is fitted
(pose3d.trajectory.estimate_world). Scored per frame against the ground truth in camera space:

* MRPE: mean root (pelvis) position error, mm;
* absolute MPJPE: mean joint position error without root alignment, mm;
* depth: mean |error| of the root's depth alone, mm;
* floor: the angle between the fitted floor normal and the true one (Human3.6M's world is
  z-up with the floor at z = 0), median over views, degrees.

Rows: 2D input (ground-truth projections or Stacked-Hourglass detections) x intrinsics (the
camera's true focal length and centre, or pose3d's default guess: focal = max(w, h), centre in
the middle) x body size (the subject's standing height from the ground truth's bone lengths,
as ``--height`` would give it, or the default average Human3.6M body). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


def subject_height(data, subject: str) -> float:
    """The subject's standing height (pose3d.skeleton.standing_height) from the median bone
    lengths over all of their recordings' ground truth."""
    from pose3d.skeleton import bone_lengths, standing_height

    lengths = np.concatenate([bone_lengths(data.poses[f"{subject}/{r}"][::10].astype(float))
                              for r in data.recordings(subject)])
    return standing_height(np.median(lengths, axis=0))


def views(data, input_2d: str, quick: bool):
    """(name, camera dict, true camera-space joints (T, 17, 3) m, 2D pixels (T, 17, 2)) per test view."""
    from pose3d import codec
    from pose3d.datasets import world_to_camera
    from pose3d.evaluate import test_sequences

    for seq in test_sequences(data, input_2d, quick):
        subject, recording, camera_id = seq.name.split("/")
        camera = data.cameras[subject][camera_id]
        truth = world_to_camera(data.poses[f"{subject}/{recording}"][: len(seq)].astype(float), camera)
        yield seq.name, camera, truth, codec.denormalize_2d(seq.keypoints_2d.astype(float), seq.width, seq.height)


def lift_views(lifter, data, input_2d: str, quick: bool, heights: dict) -> list[dict]:
    """Every test view lifted as ``pose3d lift`` lifts a video's track, at the subject's height."""
    from pose3d.datasets import H36M_FPS
    from pose3d.lift import LiftSettings
    from pose3d.tracks import Track2D, VideoInfo

    out = []
    for name, camera, truth, keypoints in views(data, input_2d, quick):
        w, h = int(camera["width"]), int(camera["height"])
        track = Track2D(0, np.arange(len(truth)), keypoints, np.ones(keypoints.shape[:2]), np.zeros(len(truth), bool))
        lifted = lifter.lift(track, VideoInfo(name, H36M_FPS, w, h, len(truth)),
                             LiftSettings(height_m=heights[name.split("/")[0]]))
        out.append({"name": name, "camera": camera, "truth": truth, "keypoints": keypoints, "joints": lifted.joints_3d})
    return out


def score(views_lifted: list[dict], intrinsics: str, body_scale: dict) -> dict:
    """MRPE, depth error, absolute MPJPE (m, per frame) and floor angles (degrees, per view) with
    the roots placed as in ``pose3d lift`` (pose3d.trajectory.root_trajectory, place_in_world)."""
    from pose3d.datasets import H36M_FPS
    from pose3d.trajectory import CameraModel, place_in_world, root_trajectory

    row = {"root": [], "depth": [], "joints": [], "floor": []}
    for view in views_lifted:
        camera, truth, keypoints = view["camera"], view["truth"], view["keypoints"]
        w, h = int(camera["width"]), int(camera["height"])
        model = (CameraModel(float(np.mean(camera["f"])), tuple(float(c) for c in camera["c"]), w, h, "true")
                 if intrinsics == "true" else CameraModel.for_video(w, h))
        joints = view["joints"] * body_scale[view["name"].split("/")[0]]
        frames = np.arange(len(joints))
        root = root_trajectory(joints, keypoints, np.ones(keypoints.shape[:2]), np.zeros(len(joints), bool), frames,
                               model, H36M_FPS)
        world, _, (root,) = place_in_world([joints], [root], H36M_FPS)
        true_up = np.asarray(camera["R_w2c"], float) @ [0.0, 0.0, 1.0]
        row["root"].append(np.linalg.norm(root - truth[:, 0], axis=-1))
        row["depth"].append(np.abs(root[:, 2] - truth[:, 0, 2]))
        row["joints"].append(np.linalg.norm(joints + root[:, None] - truth, axis=-1).mean(axis=-1))
        row["floor"].append(math.degrees(math.acos(np.clip(world.up_camera @ true_up, -1, 1))))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Human3.6M folder (docs/training.md)")
    parser.add_argument("--full", action="store_true", help="all cameras and frames (slow) instead of the quick protocol")
    parser.add_argument("--cache", default=None, help="folder keeping the lifted views (lift_gt.pkl, lift_sh.pkl): "
                        "a rerun only places them again (delete it after changing the lifter or its weights)")
    parser.add_argument("--inputs", default="gt,sh", help="2D inputs, comma-separated: gt, sh")
    args = parser.parse_args()

    from pose3d import progress
    from pose3d.datasets import Human36M
    from pose3d.lift import Lifter
    from pose3d.skeleton import standing_height

    progress.set_enabled(False)
    lifter = Lifter(args.weights)
    data = Human36M(args.data)
    heights = {s: subject_height(data, s) for s in ("S9", "S11")}
    average = standing_height(lifter.reference_bones)
    # The average body is the subject's lift scaled by average / subject height: every step
    # (per-frame scale from bone lengths, smoothing, median bone lengths, the root's least
    # squares) commutes with a global scale, so this equals lifting again without --height.
    bodies = {"subject height": {s: 1.0 for s in heights}, "average body": {s: average / hs for s, hs in heights.items()}}
    started = time.perf_counter()
    rows = {}
    frames = 0
    for input_2d in args.inputs.split(","):
        cached = Path(args.cache) / f"lift_{input_2d}{'_full' if args.full else ''}.pkl" if args.cache else None
        if cached is not None and cached.is_file():
            lifted, _ = pickle.loads(cached.read_bytes())
        else:
            lifted = lift_views(lifter, data, input_2d, not args.full, heights)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(pickle.dumps((lifted, heights)))
        frames = sum(len(v["joints"]) for v in lifted)
        for intrinsics in ("true", "default"):
            for body, scale in bodies.items():
                rows[(input_2d, intrinsics, body)] = score(lifted, intrinsics, scale)

    model = lifter.describe()
    protocol = ("all four cameras, every frame" if args.full else
                "camera 54138969, the first 486 frames of each recording (the quick protocol)")
    print(f"weights: {model['weights']} (sha256 {model['sha256'][:12]}); S9/S11, {protocol}, S11 Directions "
          f"excluded: {frames} frames per row; subject heights S9 {heights['S9']:.3f} m, S11 {heights['S11']:.3f} m, "
          f"average body {average:.3f} m; {time.perf_counter() - started:.0f} s\n")
    print("| 2D | intrinsics | body size | MRPE (mm) | depth error (mm) | absolute MPJPE (mm) | floor angle, median (degrees) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for (input_2d, intrinsics, body), row in rows.items():
        print(f"| {input_2d.upper()} | {intrinsics} | {body} | {1000 * np.concatenate(row['root']).mean():.0f} | "
              f"{1000 * np.concatenate(row['depth']).mean():.0f} | {1000 * np.concatenate(row['joints']).mean():.0f} | "
              f"{np.median(row['floor']):.1f} |")


if __name__ == "__main__":
    main()
