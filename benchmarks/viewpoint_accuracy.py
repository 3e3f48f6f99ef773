"""How much does the lifter depend on Human3.6M's camera height? Each test pose is seen by a
virtual camera raised (or lowered) around the person at the same distance, and scored.

    python benchmarks/viewpoint_accuracy.py [--weights W] [--data DIR] [--pitches=-15,0,15,30,45,60]

For each pitch the ground-truth poses of S9/S11 (quick protocol: camera 54138969, the first 486
frames of each recording) are rotated about the camera's horizontal axis through the pelvis
(positive: the camera moves up and looks down on the person), projected with the camera's own
intrinsics and distortion (ground-truth 2D, no detector), lifted with flip averaging on
non-overlapping clips, and scored against the rotated poses. Prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Human3.6M folder (docs/training.md)")
    parser.add_argument("--pitches", default="-15,0,15,30,45,60", help="camera pitches in degrees, comma-separated (write --pitches=-15,0 when the first is negative)")
    args = parser.parse_args()
    pitches = [float(p) for p in args.pitches.split(",")]

    from pose3d.datasets import CAMERAS, TEST_SUBJECTS, Human36M, Sequence, pitched, project, world_to_camera
    from pose3d.evaluate import EXCLUDED_RECORDINGS, QUICK_FRAMES, evaluate_sequences
    from pose3d.lift import Lifter
    from pose3d.weights import default_weights_path, file_sha256

    lifter = Lifter(args.weights)
    data = Human36M(args.data)
    camera_id = CAMERAS[0]
    views = []  # (name, camera, camera-frame metres)
    for subject in TEST_SUBJECTS:
        camera = data.cameras[subject][camera_id]
        for rec in data.recordings(subject):
            if f"{subject}/{rec}" not in EXCLUDED_RECORDINGS:
                world = data.poses[f"{subject}/{rec}"][:QUICK_FRAMES].astype(np.float64)
                views.append((f"{subject}/{rec}/{camera_id}", camera, world_to_camera(world, camera)))

    rows = []
    for degrees in pitches:
        sequences = []
        for name, camera, joints_cam in views:
            seen = pitched(joints_cam, degrees)
            sequences.append(Sequence.from_camera_view(name, seen, project(seen, camera), camera))
        result = evaluate_sequences(lifter.model, sequences, clip_frames=lifter.clip_frames,
                                    description=f"camera pitch {degrees:+.0f} degrees")
        rows.append((degrees, result.p1, result.p2))

    weights = Path(args.weights) if args.weights else default_weights_path()
    print(f"weights: {weights.name} (sha256 {file_sha256(weights)[:12]}); ground-truth 2D from pitched "
          f"cameras; S9/S11, camera {camera_id}, first {QUICK_FRAMES} frames, flip averaging on\n")
    print("| camera pitch (degrees, + looks down) | P1 (mm) | P2 (mm) |\n| ---: | ---: | ---: |")
    for degrees, mean_p1, mean_p2 in rows:
        print(f"| {degrees:+.0f} | {mean_p1:.1f} | {mean_p2:.1f} |")


if __name__ == "__main__":
    main()
