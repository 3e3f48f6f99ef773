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

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Human3.6M folder (docs/training.md)")
    parser.add_argument("--pitches", default="-15,0,15,30,45,60", help="camera pitches in degrees, comma-separated (write --pitches=-15,0 when the first is negative)")
    args = parser.parse_args()
    pitches = [float(p) for p in args.pitches.split(",")]

    from pose3d.datasets import CAMERAS, Human36M
    from pose3d.evaluate import QUICK_FRAMES, evaluate_sequences, test_sequences
    from pose3d.lift import Lifter

    lifter = Lifter(args.weights)
    data = Human36M(args.data)
    rows = []
    for degrees in pitches:
        result = evaluate_sequences(lifter.model, test_sequences(data, "gt", quick=True, pitch=degrees),
                                    clip_frames=lifter.clip_frames, description=f"camera pitch {degrees:+.0f} degrees")
        rows.append((degrees, result.p1, result.p2))

    model = lifter.describe()
    print(f"weights: {model['weights']} (sha256 {model['sha256'][:12]}); ground-truth 2D from pitched "
          f"cameras; S9/S11, camera {CAMERAS[0]}, first {QUICK_FRAMES} frames, flip averaging on\n")
    print("| camera pitch (degrees, + looks down) | P1 (mm) | P2 (mm) |\n| ---: | ---: | ---: |")
    for degrees, mean_p1, mean_p2 in rows:
        print(f"| {degrees:+.0f} | {mean_p1:.1f} | {mean_p2:.1f} |")


if __name__ == "__main__":
    main()
