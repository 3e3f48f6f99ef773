"""Does the default clean-up of ``pose3d lift`` (smoothing, then constant bone lengths) cost
accuracy? Scores the lifter's output on Human3.6M S9/S11 before and after each step.

    python benchmarks/postprocess_accuracy.py [--weights W] [--data DIR] [--input-2d sh|gt] [--full]

Windows are blended as ``pose3d lift`` does (a third of a clip shared by neighbours), not the
evaluation protocol's non-overlapping clips, and each post-processing step sees a whole
sequence, as it sees a whole track in ``pose3d lift``. ``--full``: all four cameras and every
frame (the quick protocol otherwise: one camera, the first 486 frames). Prints a markdown table.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


def variants(fps: float):
    """name -> function of (predicted mm, true mm) giving the joints to score."""
    from pose3d import postprocess
    from pose3d.skeleton import bone_lengths

    return {
        "raw lifter output": lambda pred, true: pred,
        "smoothing only": lambda pred, true: postprocess.smooth(pred, fps),
        "constant bone lengths only": lambda pred, true: postprocess.enforce_bone_lengths(pred),
        "default (smoothing, then constant bone lengths)": lambda pred, true: postprocess.postprocess(pred, fps),
        "constant bone lengths, the subject's true lengths": lambda pred, true: postprocess.enforce_bone_lengths(
            pred, np.median(bone_lengths(true), axis=0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Human3.6M folder (docs/training.md)")
    parser.add_argument("--input-2d", default="sh", choices=("sh", "gt"))
    parser.add_argument("--full", action="store_true", help="all cameras and frames (default: quick protocol)")
    args = parser.parse_args()

    from pose3d import codec, progress
    from pose3d.datasets import H36M_FPS, Human36M
    from pose3d.evaluate import test_sequences
    from pose3d.lift import Lifter
    from pose3d.windows import predict_sequence
    from pose3d.metrics import mpjpe, p_mpjpe, summarize_by_action
    from pose3d.postprocess import quality
    from pose3d.weights import default_weights_path, file_sha256

    lifter = Lifter(args.weights)
    sequences = test_sequences(Human36M(args.data), args.input_2d, quick=not args.full)
    steps = variants(H36M_FPS)
    p1 = {name: defaultdict(list) for name in steps}
    p2 = {name: defaultdict(list) for name in steps}
    bone_cv = []
    with progress.progress_bar() as bar:
        task = bar.add_task("lifting S9/S11", total=len(sequences))
        for seq in sequences:
            pred = predict_sequence(lifter.model, seq.keypoints_2d, clip_frames=lifter.clip_frames, flip=True)
            pred_mm = codec.model_to_metres(pred, seq.scale) * 1000.0
            true_mm = codec.model_to_metres(seq.joints_3d, seq.scale) * 1000.0
            for name, step in steps.items():
                joints = step(pred_mm, true_mm)
                p1[name][seq.action].append(mpjpe(joints, true_mm))
                p2[name][seq.action].append(p_mpjpe(joints, true_mm))
            q = quality(pred_mm / 1000.0, H36M_FPS)
            bone_cv.append((q["bone_cv_mean"], q["bone_cv_max"]))
            bar.advance(task)

    frames = sum(len(s) for s in sequences)
    weights = Path(args.weights) if args.weights else default_weights_path()
    print(f"weights: {weights.name} (sha256 {file_sha256(weights)[:12]}); 2D: {args.input_2d}; "
          f"{'full' if args.full else 'quick'} protocol, {len(sequences)} sequences, {frames} frames, "
          f"flip averaging on\n")
    print("| output | P1 (mm) | P2 (mm) |\n| --- | ---: | ---: |")
    for name in steps:
        mean_p1 = np.mean(list(summarize_by_action(p1[name]).values()))
        mean_p2 = np.mean(list(summarize_by_action(p2[name]).values()))
        print(f"| {name} | {mean_p1:.2f} | {mean_p2:.2f} |")
    cv = np.array(bone_cv)
    print(f"\nraw bone-length variation (std / mean per bone, then mean and worst bone), median over "
          f"sequences: {np.median(cv[:, 0]):.3f} / {np.median(cv[:, 1]):.3f} "
          f"(0 for the true poses)")


if __name__ == "__main__":
    main()
