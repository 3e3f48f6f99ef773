"""The line every PoseMamba recipe must clear: a single-frame MLP lifter (Martinez et al. 2017)
trained for a fixed CPU budget through pose3d's own Human3.6M data, codec and metrics.

    python benchmarks/baseline_mlp.py --data ../shared/data/h36m --minutes 10 --inputs sh,gt

For each 2D input (Stacked-Hourglass detections or projected ground truth) one MLP is trained
from scratch on random frames of S1 S5 S6 S7 S8 and scored on S9/S11 with the project's
protocol (``pose3d.evaluate``: per action, then averaged; flip averaging on, as for PoseMamba):
the quick protocol every ``--curve-points``-th of the budget, and the quick and the full protocol
at the end. The budget is the process's CPU time (``time.process_time``, one thread by default),
so a busy machine does not change what the model gets; evaluations are not counted.

The model: 36 inputs (root-relative 2D of the 17 joints and the root's own 2D position,
z-scored), Linear 1024, two residual blocks of two (Linear 1024, batch norm, ReLU, dropout 0.5),
Linear to the 16 non-root joints' root-relative 3D in model units, z-scored; 4.3M parameters.
L1 loss, Adam 1e-3 decayed to 0 by a cosine over the budget, batch 256.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

from pose3d.datasets import TRAIN_SUBJECTS, Human36M
from pose3d.evaluate import evaluate_sequences, test_sequences
from pose3d.skeleton import NUM_JOINTS, ROOT


def features(keypoints_2d: torch.Tensor) -> torch.Tensor:
    """(..., 17, 2) normalised 2D -> (..., 36): root-relative joints, then the root itself."""
    root = keypoints_2d[..., ROOT, :]
    relative = keypoints_2d - root[..., None, :]
    return torch.cat([relative.flatten(-2), root], dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(*[m for _ in range(2) for m in (
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))])

    def forward(self, x):
        return x + self.layers(x)


class FrameMLP(nn.Module):
    """Martinez et al.'s lifter with its normalisation inside, so that it takes and returns what
    PoseMamba does: (B, T, 17, 2) normalised 2D -> (B, T, 17, 3) root-relative model units."""

    def __init__(self, x_mean, x_std, y_mean, y_std, width: int = 1024, dropout: float = 0.5):
        super().__init__()
        for name, value in (("x_mean", x_mean), ("x_std", x_std), ("y_mean", y_mean), ("y_std", y_std)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(len(x_mean), width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
                                 ResidualBlock(width, dropout), ResidualBlock(width, dropout),
                                 nn.Linear(width, len(y_mean)))

    def standardised(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        """(N, 17, 2) -> (N, 48) z-scored prediction (the training loss's units)."""
        return self.net((features(keypoints_2d) - self.x_mean) / self.x_std)

    def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        lead = keypoints_2d.shape[:-2]
        z = self.standardised(keypoints_2d.reshape(-1, NUM_JOINTS, 2))
        joints = (z * self.y_std + self.y_mean).reshape(-1, NUM_JOINTS - 1, 3)
        joints = torch.cat([joints[:, :ROOT], joints.new_zeros(len(joints), 1, 3), joints[:, ROOT:]], dim=1)
        return joints.reshape(*lead, NUM_JOINTS, 3)


def training_frames(data: Human36M, input_2d: str) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the training subjects: (N, 17, 2) normalised 2D, (N, 16, 3) targets."""
    sequences = data.sequences(TRAIN_SUBJECTS, input_2d=input_2d)
    x = np.concatenate([s.keypoints_2d for s in sequences])
    y = np.concatenate([s.joints_3d for s in sequences])
    return x, np.delete(y, ROOT, axis=1)


def train_mlp(data: Human36M, input_2d: str, minutes: float, curve_points: int, seed: int = 0,
              batch_size: int = 256, lr: float = 1e-3) -> tuple[FrameMLP, list[dict]]:
    """The MLP after ``minutes`` of CPU time and its quick-protocol curve [{cpu_minutes, p1, p2}]."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = training_frames(data, input_2d)
    fx = features(torch.from_numpy(x)).numpy()
    y_flat = y.reshape(len(y), -1)
    model = FrameMLP(fx.mean(0), np.maximum(fx.std(0), 1e-6), y_flat.mean(0), np.maximum(y_flat.std(0), 1e-6))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    quick = test_sequences(data, input_2d, quick=True)
    budget = 60.0 * minutes
    marks = [budget * (i + 1) / curve_points for i in range(curve_points)]
    curve, used, step = [], 0.0, 0
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y_flat)
    while marks:
        start = time.process_time()
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(used / budget, 1.0)))
        index = torch.from_numpy(rng.integers(0, len(x), batch_size))
        model.train()
        z = model.standardised(x_t[index])
        loss = (z - (y_t[index] - model.y_mean) / model.y_std).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        used += time.process_time() - start
        if used >= marks[0]:
            marks.pop(0)
            model.eval()
            result = evaluate_sequences(model, quick, clip_frames=243, batch_size=64,
                                        description=f"MLP {input_2d} quick")
            curve.append({"cpu_minutes": round(used / 60, 2), "steps": step, "p1": result.p1, "p2": result.p2})
            print(f"  {input_2d}: {used / 60:5.1f} CPU-min, {step} steps, quick P1 {result.p1:.1f} P2 {result.p2:.1f}",
                  flush=True)
    return model.eval(), curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Human3.6M folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU-minutes of training per model")
    parser.add_argument("--inputs", default="sh,gt", help="2D inputs to train and score: sh, gt or both")
    parser.add_argument("--curve-points", type=int, default=5, help="quick evaluations over the budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-full", action="store_true", help="skip the full protocol at the end")
    parser.add_argument("--json", help="write the results and curves here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Human36M(args.data)
    rows, results = [], {}
    for input_2d in args.inputs.split(","):
        model, curve = train_mlp(data, input_2d, args.minutes, args.curve_points)
        full = None
        if not args.no_full:
            full = evaluate_sequences(model, test_sequences(data, input_2d, quick=False), clip_frames=243,
                                      batch_size=64, description=f"MLP {input_2d} full")
        results[input_2d] = {"curve": curve, "full": full and {"p1": full.p1, "p2": full.p2}}
        rows.append((input_2d, curve[-1], full))
    print(f"\nsingle-frame MLP, {args.minutes:g} CPU-minutes ({args.threads} thread), flip averaging:")
    print("| 2D input | quick P1 | quick P2 | full P1 | full P2 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for input_2d, quick, full in rows:
        tail = f"{full.p1:.1f} | {full.p2:.1f}" if full else "- | -"
        print(f"| {input_2d} | {quick['p1']:.1f} | {quick['p2']:.1f} | {tail} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"minutes": args.minutes, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
