"""2D tracks to 3D: overlapping windows of the model's clip length, blended, with flip
averaging, on whatever device the model is on.

Everything here works in model units (pose3d.codec): (N, 17, 2) normalised 2D in,
(N, 17, 3) root-relative 3D out.
"""

from __future__ import annotations

import numpy as np
import torch

from .skeleton import flip_horizontal


def plan_windows(num_frames: int, clip_frames: int, overlap: int) -> list[int]:
    """First frames of the windows covering ``num_frames`` frames.

    Windows are ``min(clip_frames, num_frames)`` long and start ``clip_frames - overlap``
    apart; the last one ends exactly at the last frame, so no window is padded or stretched.
    """
    length = min(clip_frames, num_frames)
    hop = max(1, clip_frames - overlap)
    starts = list(range(0, num_frames - length + 1, hop))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return starts


def window_weights(starts: list[int], length: int, num_frames: int, blend: bool) -> np.ndarray:
    """(len(starts), length) weight of each window's frames.

    blend=True: frames a window shares with a neighbour fade linearly (they have less
    context near the window's edge), so consecutive windows cross-fade.
    blend=False: each frame is taken from the first window that covers it (the evaluation
    protocol's non-overlapping clips, the last one aligned to the end).
    """
    weights = np.zeros((len(starts), length))
    covered = np.zeros(num_frames, bool)
    for i, s in enumerate(starts):
        if not blend:
            weights[i] = ~covered[s : s + length]
            covered[s : s + length] = True
            continue
        w = np.ones(length)
        if i > 0:  # fade in over the frames shared with the previous window
            shared = starts[i - 1] + length - s
            w[:shared] = np.minimum(w[:shared], (np.arange(shared) + 1) / (shared + 1))
        if i + 1 < len(starts):  # fade out over the frames shared with the next one
            shared = s + length - starts[i + 1]
            if shared > 0:
                w[length - shared :] = np.minimum(w[length - shared :], (np.arange(shared, 0, -1)) / (shared + 1))
        weights[i] = w
    return weights


@torch.inference_mode()
def predict_windows(model: torch.nn.Module, windows: np.ndarray, flip: bool, batch_size: int) -> np.ndarray:
    """(W, T, 17, 2) normalised 2D windows -> (W, T, 17, 3); with ``flip`` the prediction is
    averaged with the un-flipped prediction for the mirrored input."""
    device = next(model.parameters()).device
    out = []
    for b in range(0, len(windows), batch_size):
        x = torch.as_tensor(windows[b : b + batch_size], dtype=torch.float32, device=device)
        if flip:
            pred, pred_m = model(torch.cat([x, flip_horizontal(x)])).chunk(2)
            pred = 0.5 * (pred + flip_horizontal(pred_m))
        else:
            pred = model(x)
        out.append(pred.float().cpu().numpy())
    return np.concatenate(out)


def predict_sequence(model: torch.nn.Module, keypoints_2d: np.ndarray, *, clip_frames: int,
                     overlap: int | None = None, flip: bool = True, frame_step: int = 1,
                     batch_size: int = 8) -> np.ndarray:
    """(N, 17, 2) normalised 2D of one person -> (N, 17, 3) model units.

    overlap: frames shared by consecutive windows (default a third of the clip, blended);
    0 gives the evaluation protocol's non-overlapping clips.
    frame_step: run the model on every frame_step-th frame (interleaved phases), to feed it
    the frame rate it was trained at.
    """
    n = len(keypoints_2d)
    out = np.zeros((n, keypoints_2d.shape[1], 3), np.float32)
    overlap = clip_frames // 3 if overlap is None else overlap
    for phase in range(min(frame_step, n)):
        kp = keypoints_2d[phase::frame_step]
        starts = plan_windows(len(kp), clip_frames, overlap)
        length = min(clip_frames, len(kp))
        weights = window_weights(starts, length, len(kp), blend=overlap > 0)
        preds = predict_windows(model, np.stack([kp[s : s + length] for s in starts]), flip, batch_size)
        acc = np.zeros((len(kp), kp.shape[1], 3))
        total = np.zeros(len(kp))
        for s, w, p in zip(starts, weights, preds):
            acc[s : s + length] += w[:, None, None] * p
            total[s : s + length] += w
        out[phase::frame_step] = acc / total[:, None, None]
    return out
