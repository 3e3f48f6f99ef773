"""Training clips drawn from :class:`pose3d.datasets.Sequence` objects: random, strided,
at one or more frame steps, mirrored, with the detector's error rescaled."""

from __future__ import annotations

import logging

import numpy as np

from .datasets import Sequence, scale_detection_error
from .errors import InputError
from .skeleton import flip_horizontal

log = logging.getLogger(__name__)


def flip_clip(keypoints_2d: np.ndarray, joints_3d: np.ndarray | None):
    """Mirror a clip left-right in model units (skeleton.flip_horizontal about x = 0)."""
    return flip_horizontal(keypoints_2d), None if joints_3d is None else flip_horizontal(joints_3d)


class ClipSampler:
    """Random training clips of ``clip_frames`` frames taken every ``frame_step`` frames
    (1 = the data's rate, 2 = half of it), starts ``stride`` frames apart, shuffled each
    epoch with a random offset; flipped with probability ``flip_prob``. ``error_scale`` (low,
    high): each clip of detected 2D gets its detector error (``Sequence.detection_error``)
    multiplied by a factor drawn uniformly from that range (1, 1: the detections as they are).

    Yields (keypoints_2d (B, T, 17, 2), joints_3d (B, T, 17, 3), has_3d (B,)) float32 arrays;
    clips of 2D-only sequences carry zeros in joints_3d and has_3d = 0.
    """

    def __init__(self, sequences: list[Sequence], clip_frames: int, stride: int,
                 frame_steps=(1,), flip_prob: float = 0.5, error_scale=(1.0, 1.0)):
        self.sequences = [s for s in sequences if len(s) >= clip_frames]
        skipped = len(sequences) - len(self.sequences)
        if skipped:
            log.warning("%d sequences shorter than %d frames are not used for training", skipped, clip_frames)
        if not self.sequences:
            raise InputError(f"no training sequence has {clip_frames} frames or more")
        self.clip_frames, self.stride = clip_frames, stride
        self.frame_steps, self.flip_prob = tuple(frame_steps), flip_prob
        self.error_scale = tuple(float(v) for v in error_scale)

    def clips(self, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """(sequence index, first frame, frame step) of one epoch, shuffled."""
        out = []
        for i, seq in enumerate(self.sequences):
            step = int(rng.choice(self.frame_steps))
            span = (self.clip_frames - 1) * step + 1
            if span > len(seq):
                step, span = 1, self.clip_frames
            last = len(seq) - span
            offset = int(rng.integers(0, min(self.stride, last + 1)))
            out.extend((i, start, step) for start in range(offset, last + 1, self.stride))
        order = rng.permutation(len(out))
        return [out[j] for j in order]

    def batches(self, rng: np.random.Generator, batch_size: int, clips=None):
        clips = self.clips(rng) if clips is None else clips
        for b in range(0, len(clips) - batch_size + 1, batch_size):  # full batches only
            kp, j3, has = [], [], []
            for i, start, step in clips[b : b + batch_size]:
                seq = self.sequences[i]
                frames = slice(start, start + (self.clip_frames - 1) * step + 1, step)
                x = seq.keypoints_2d[frames]
                y = seq.joints_3d[frames] if seq.joints_3d is not None else None
                if self.error_scale != (1.0, 1.0) and seq.detection_error is not None:
                    x = scale_detection_error(x, seq.detection_error[frames], rng.uniform(*self.error_scale))
                if rng.random() < self.flip_prob:
                    x, y = flip_clip(x, y)
                kp.append(x)
                j3.append(y if y is not None else np.zeros(x.shape[:-1] + (3,), np.float32))
                has.append(float(y is not None))
            yield np.stack(kp), np.stack(j3), np.asarray(has, np.float32)
