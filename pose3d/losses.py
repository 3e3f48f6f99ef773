"""Training losses (PoseMamba / MotionAGFormer recipe), on (B, T, 17, 3) model-unit poses.

``mask`` (B,) weights each clip (0 for clips without 3D ground truth, whose loss is then
the 2D consistency term alone; see :func:`projection_2d`).
"""

from __future__ import annotations

import torch

from .skeleton import H36M_17

TEMPORAL_JOINT_WEIGHTS = (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)
# The paper's terms and weights; bone_consistency is this project's addition, off by default;
# projection_2d applies only to clips without 3D (fine-tuning on 2D-only data)
DEFAULT_WEIGHTS = {"mpjpe": 1.0, "n_mpjpe": 0.5, "velocity": 20.0, "temporal": 0.5, "bone_consistency": 0.0,
                   "projection_2d": 1.0}


def _masked_mean(per_clip: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_clip * mask).sum() / mask.sum().clamp_min(1.0)


def mpjpe(pred, target, mask):
    return _masked_mean((pred - target).norm(dim=-1).mean(dim=(1, 2)), mask)


def n_mpjpe(pred, target, mask):
    """MPJPE after scaling each predicted clip by its least-squares best scale."""
    scale = (pred * target).sum(dim=(1, 2, 3), keepdim=True) / (pred * pred).sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return mpjpe(scale * pred, target, mask)


def velocity(pred, target, mask):
    """Mean distance between predicted and true frame-to-frame displacements."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    diff = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])
    return _masked_mean(diff.norm(dim=-1).mean(dim=(1, 2)), mask)


def temporal_consistency(pred, mask=None):
    """Joint-weighted mean squared frame-to-frame motion of the prediction (a smoothness prior;
    needs no ground truth, so every clip counts)."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    w = pred.new_tensor(TEMPORAL_JOINT_WEIGHTS)
    return ((pred[:, 1:] - pred[:, :-1]).square().sum(dim=-1) * w).mean()


def bone_consistency(pred):
    """Mean over clips and bones of the std / mean over the clip's frames of each bone's share
    of the frame's summed bone lengths: 0 when the body keeps its proportions. Shares, not
    lengths, because the model's units follow the person's depth (pose3d.codec), so true
    lengths change from frame to frame. Needs no ground truth, so every clip counts."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    lengths = H36M_17.bone_vectors(pred).norm(dim=-1)  # (B, T, 16)
    shares = lengths / lengths.sum(dim=-1, keepdim=True).clamp_min(1e-6)
    return (shares.std(dim=1) / shares.mean(dim=1).clamp_min(1e-6)).mean()


def projection_2d(pred, keypoints_2d):
    """For 2D-only clips: the x, y of a model-unit pose line up with the normalised 2D input
    (weak perspective), so the root-relative x, y must match the root-relative 2D."""
    xy = pred[..., :2] - pred[..., :1, :2]
    uv = keypoints_2d - keypoints_2d[..., :1, :]
    return (xy - uv).norm(dim=-1).mean(dim=(1, 2))


def training_loss(pred, target, keypoints_2d, has_3d, weights=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the terms, and the value of each, detached, for logging.

    The values stay tensors on the loss's device: a number from a GPU waits for it, so the
    training loop adds them up there and turns them into numbers only when it logs
    (:func:`means`). For the same reason the 2D consistency term is always computed (weighted
    by the clips without 3D, so it is 0 when every clip has 3D) rather than after asking the
    GPU whether any clip lacks 3D."""
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    terms = {
        "mpjpe": mpjpe(pred, target, has_3d),
        "n_mpjpe": n_mpjpe(pred, target, has_3d),
        "velocity": velocity(pred, target, has_3d),
        "temporal": temporal_consistency(pred),
    }
    if weights["bone_consistency"]:
        terms["bone_consistency"] = bone_consistency(pred)
    if weights["projection_2d"]:
        terms["projection_2d"] = _masked_mean(projection_2d(pred, keypoints_2d), 1 - has_3d)
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: v.detach() for k, v in terms.items()}


def means(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """Loss values summed over ``count`` steps (0-dim tensors, as training_loss returns them)
    -> their means as numbers, with one copy from the device and so one wait for it."""
    if not sums:
        return {}
    values = torch.stack([v.double() for v in sums.values()]).cpu().tolist()
    return {k: v / max(count, 1) for k, v in zip(sums, values)}
