"""How fast does the lifter's error grow with the 2D detector's? Human3.6M's Stacked-Hourglass
detections are scored with their error against the projected ground truth scaled.

    python benchmarks/detector_noise.py [--weights W1,W2] [--data DIR] [--factors 0,0.5,1,1.5,2]

For each factor f the 2D input is the projected ground truth plus f times the detector's error
on the same frame (0: ground-truth 2D; 1: the detections as they are; 1.5: half as much error
again, in the same directions), on the quick protocol (S9/S11, camera 54138969, the first 486
frames of each recording), lifted with flip averaging on non-overlapping clips. A real video's
detections are often noisier than Human3.6M's; in three S9 recordings the "error" also holds the
ground truth's own sideways displacement (docs/training.md, "Where the error is"). Prints a
markdown table, one column per weights file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="", help="lifter weights, comma-separated (default: the shipped ones)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Human3.6M folder (docs/training.md)")
    parser.add_argument("--factors", default="0,0.5,1,1.5,2", help="detector error factors, comma-separated")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]

    from pose3d.datasets import CAMERAS, Human36M
    from pose3d.evaluate import QUICK_FRAMES, evaluate_sequences, test_sequences
    from pose3d.lift import Lifter

    lifters = [Lifter(w or None) for w in args.weights.split(",")]
    data = Human36M(args.data)
    detected = test_sequences(data, "sh", quick=True)
    table = {}
    for factor in factors:
        sequences = [s.with_detection_error(factor) for s in detected]
        for i, lifter in enumerate(lifters):
            result = evaluate_sequences(lifter.model, sequences, clip_frames=lifter.clip_frames,
                                        description=f"weights {i + 1}, detector error x {factor:g}")
            table[factor, i] = result.p1, result.p2

    names = [f"{d['weights']} (sha256 {d['sha256'][:12]})" for d in (lifter.describe() for lifter in lifters)]
    print(f"Stacked-Hourglass 2D, error scaled; S9/S11, camera {CAMERAS[0]}, first {QUICK_FRAMES} frames, "
          f"flip averaging on; P1 / P2 in mm\n")
    print("| detector error x | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    for factor in factors:
        cells = " | ".join(f"{table[factor, i][0]:.1f} / {table[factor, i][1]:.1f}" for i in range(len(lifters)))
        print(f"| {factor:g} | {cells} |")


if __name__ == "__main__":
    main()
