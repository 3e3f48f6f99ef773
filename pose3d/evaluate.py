"""The Human3.6M protocol: P1 (MPJPE after root alignment) and P2 (after Procrustes), in mm,
per action and averaged over the 15 actions, on non-overlapping clips of the model's length
(the last clip aligned to the sequence end, each frame scored once), flip averaging on."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import codec
from .datasets import CAMERAS, TEST_SUBJECTS, Human36M, Sequence
from .windows import predict_sequence
from .metrics import mpjpe, p_mpjpe, summarize_by_action
from .progress import progress_bar

log = logging.getLogger(__name__)

QUICK_FRAMES = 486  # --quick: this many first frames of each test view, one camera
# S11 "Directions" is corrupt in one camera and earlier work drops the recording
EXCLUDED_RECORDINGS = ("S11/Directions",)


@dataclass
class EvalResult:
    p1: float
    p2: float
    per_action: dict[str, dict[str, float]] = field(default_factory=dict)
    frames: int = 0
    # {"S9/Walking 1/54138969": {"p1", "p2", "frames"}}: where within an action the error is
    per_view: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"p1": self.p1, "p2": self.p2, "per_action": self.per_action, "frames": self.frames,
                "per_view": self.per_view}


def test_sequences(data: Human36M, input_2d: str, quick: bool, pitch: float = 0.0) -> list[Sequence]:
    """The protocol's test views (``pitch``: seen from cameras pitched around the person)."""
    cameras = CAMERAS[:1] if quick else CAMERAS
    seqs = data.sequences(TEST_SUBJECTS, input_2d=input_2d, cameras=cameras,
                          max_frames=QUICK_FRAMES if quick else None, pitch=pitch)
    return [s for s in seqs if s.name.rsplit("/", 1)[0] not in EXCLUDED_RECORDINGS]


def evaluate_sequences(model: torch.nn.Module, sequences: list[Sequence], *, clip_frames: int,
                       flip: bool = True, batch_size: int = 8, description: str = "evaluating") -> EvalResult:
    p1s, p2s = defaultdict(list), defaultdict(list)
    per_view = {}
    frames = 0
    with progress_bar() as progress:
        task = progress.add_task(description, total=sum(len(s) for s in sequences))
        for seq in sequences:
            pred = predict_sequence(model, seq.keypoints_2d, clip_frames=clip_frames, overlap=0,
                                    flip=flip, batch_size=batch_size)
            pred_mm = codec.model_to_metres(pred, seq.scale) * 1000.0
            true_mm = codec.model_to_metres(seq.joints_3d, seq.scale) * 1000.0
            p1, p2 = mpjpe(pred_mm, true_mm), p_mpjpe(pred_mm, true_mm)
            p1s[seq.action].append(p1)
            p2s[seq.action].append(p2)
            per_view[seq.name] = {"p1": float(p1.mean()), "p2": float(p2.mean()), "frames": len(seq)}
            frames += len(seq)
            progress.advance(task, len(seq))
    per_p1, per_p2 = summarize_by_action(p1s), summarize_by_action(p2s)
    per_action = {a: {"p1": per_p1[a], "p2": per_p2[a]} for a in per_p1}
    return EvalResult(p1=float(np.mean(list(per_p1.values()))), p2=float(np.mean(list(per_p2.values()))),
                      per_action=per_action, frames=frames, per_view=per_view)


def evaluate_h36m(model: torch.nn.Module, data_dir: str | Path, *, clip_frames: int, input_2d: str = "sh",
                  quick: bool = False, flip: bool = True, batch_size: int = 8) -> EvalResult:
    sequences = test_sequences(Human36M(data_dir), input_2d, quick)
    return evaluate_sequences(model, sequences, clip_frames=clip_frames, flip=flip, batch_size=batch_size,
                              description=f"eval {'quick' if quick else 'full'} ({input_2d} 2D)")
