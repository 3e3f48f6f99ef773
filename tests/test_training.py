"""Training and evaluation end to end on a tiny synthetic Human3.6M: the data loader, a
training step, ``pose3d train`` (resume included), ``pose3d eval``, and DDP with two CPU
processes under torchrun (gloo).

The synthetic data has the packed layout pose3d.datasets.Human36M reads (poses_3d.npz,
sh_2d.npz, cameras.json): a walking skeleton in world metres (z up), four cameras around it
with Human3.6M-like intrinsics and distortion, and "detections" that are the distorted
projections plus a few pixels of noise, as int16 in the Stacked-Hourglass joint order.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pose3d import codec, scan
from pose3d.cli import main
from pose3d.datasets import CAMERAS, TEST_SUBJECTS, TRAIN_SUBJECTS, Human36M, pitched, project, world_to_camera
from pose3d.sampling import ClipSampler
from pose3d.errors import InputError
from pose3d.losses import bone_consistency, training_loss
from pose3d.model import build_model
from pose3d.skeleton import H36M_BONE_LENGTHS_M, PARENTS, bone_lengths
from pose3d.weights import average_weights, load_weights, save_weights

SUBJECTS = TRAIN_SUBJECTS + TEST_SUBJECTS
RECORDINGS = ("Walking 1", "Eating")
FRAMES = 60
CLIP = 27
TINY_MODEL = {"dim": 16, "depth": 1, "drop_path": 0.0}
# MPII-16 joint (Stacked-Hourglass detections) of each Human3.6M-17 joint both skeletons have
SH_DIRECT = {0: 6, 1: 2, 2: 1, 3: 0, 4: 3, 5: 4, 6: 5, 11: 13, 12: 14, 13: 15, 14: 12, 15: 11, 16: 10}
SUBJECT_SIZE = {"S1": 0.95, "S5": 0.92, "S6": 1.05, "S7": 0.97, "S8": 1.03, "S9": 1.0, "S11": 1.04}

# Bone directions at rest in the person's frame (x: the person's right, y: forward, z: up).
_REST = {1: (1, 0, 0), 2: (0, 0, -1), 3: (0, 0, -1), 4: (-1, 0, 0), 5: (0, 0, -1), 6: (0, 0, -1),
         7: (0, 0, 1), 8: (0, 0, 1), 9: (0, 0.3, 1), 10: (0, 0, 1),
         11: (-1, 0, 0), 12: (0, 0, -1), 13: (0, 0, -1), 14: (1, 0, 0), 15: (0, 0, -1), 16: (0, 0, -1)}


def bone_scale(subject: str) -> np.ndarray:
    return np.asarray(H36M_BONE_LENGTHS_M) * SUBJECT_SIZE[subject]


def moving_skeleton(frames: int, bones_m: np.ndarray, phase: float, speed: float) -> np.ndarray:
    """(frames, 17, 3) world metres, z up: a person walking on a slow circle, legs and arms
    swinging in antiphase."""
    t = np.arange(frames) / 50.0
    swing = 0.6 * np.sin(2 * np.pi * speed * t + phase)
    heading = phase + 0.3 * t
    joints = np.zeros((frames, 17, 3))
    joints[:, 0] = np.stack([0.5 * np.cos(heading), 0.5 * np.sin(heading), 0.92 + 0.02 * np.cos(2 * swing)], -1)
    cos_h, sin_h = np.cos(heading), np.sin(heading)
    for j in range(1, 17):
        d = np.tile(np.asarray(_REST[j], float), (frames, 1))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        if j in (2, 3, 5, 6, 12, 13, 15, 16):  # limbs swing forward and back
            sign = 1.0 if j in (2, 3, 12, 13) else -1.0
            d = np.stack([np.zeros(frames), np.sin(sign * swing), -np.cos(sign * swing)], -1)
        # turn the person's frame to the heading (forward = (-sin, cos))
        d = np.stack([cos_h * d[:, 0] - sin_h * d[:, 1], sin_h * d[:, 0] + cos_h * d[:, 1], d[:, 2]], -1)
        joints[:, j] = joints[:, PARENTS[j]] + d * bones_m[j - 1]
    return joints


def camera(angle: float, rng: np.random.Generator) -> dict:
    """A Human3.6M-like camera 4.5 m from the centre, 1.5 m up, looking at the middle of the body."""
    centre = np.array([4.5 * np.cos(angle), 4.5 * np.sin(angle), 1.5])
    forward = np.array([0.0, 0.0, 1.0]) - centre
    forward /= np.linalg.norm(forward)
    down = np.array([0.0, 0.0, -1.0]) - forward * -forward[2]
    down /= np.linalg.norm(down)
    right = np.cross(down, forward)
    return {"R_w2c": np.stack([right, down, forward]).tolist(), "centre_m": centre.tolist(),
            "f": (1145.0 + rng.normal(scale=2.0, size=2)).tolist(), "c": [512.5, 515.4],
            "k": [-0.207, 0.248, -0.003], "p": [-0.0014, -0.001], "width": 1000, "height": 1002}


def to_stacked_hourglass(gt_px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, 17, 2) H36M pixels -> (T, 16, 2) int16 'detections' in the MPII order."""
    sh = np.zeros((len(gt_px), 16, 2))
    for h36m, mpii in SH_DIRECT.items():
        sh[:, mpii] = gt_px[:, h36m]
    sh[:, 7], sh[:, 8], sh[:, 9] = gt_px[:, 8], gt_px[:, 9], gt_px[:, 10]  # thorax, upper neck, head top
    return np.round(sh + rng.normal(scale=2.0, size=sh.shape)).astype(np.int16)


def write_synthetic_h36m(folder: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cameras = {s: {cam: camera(np.pi / 4 + i * np.pi / 2, rng) for i, cam in enumerate(CAMERAS)} for s in SUBJECTS}
    poses, sh = {}, {}
    for s in SUBJECTS:
        for r, recording in enumerate(RECORDINGS):
            world = moving_skeleton(FRAMES, bone_scale(s), phase=rng.uniform(0, 2 * np.pi), speed=0.8 + 0.4 * r)
            poses[f"{s}/{recording}"] = world.astype(np.float32)
            for cam_id, cam in cameras[s].items():
                px = project(world_to_camera(world, cam), cam)
                n = FRAMES - 2 if cam_id == CAMERAS[-1] else FRAMES  # 2D and 3D lengths may differ
                sh[f"{s}/{recording}/{cam_id}"] = to_stacked_hourglass(px[:n], rng)
    np.savez(folder / "poses_3d.npz", **poses)
    np.savez(folder / "sh_2d.npz", **sh)
    (folder / "cameras.json").write_text(json.dumps(cameras))
    return folder


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory) -> Path:
    return write_synthetic_h36m(tmp_path_factory.mktemp("h36m"))


def run_cli(args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code or 0
    return 0


def tiny_config(folder: Path, **extra) -> Path:
    path = folder / "tiny.json"
    path.write_text(json.dumps({"model": TINY_MODEL, "clip_frames": CLIP, "batch_size": 4, **extra}))
    return path


# --------------------------------------------------------------------------- the data
def test_synthetic_data_reads_back_through_the_loader(h36m_dir):
    data = Human36M(h36m_dir)
    seqs = data.sequences(("S1", "S9"), input_2d="gt")
    assert len(seqs) == 2 * len(RECORDINGS) * len(CAMERAS)
    assert {s.action for s in seqs} == {"Walking", "Eating"}
    for seq in seqs:
        # the people are in view and the loader's units invert to the bones they were built with
        assert np.abs(seq.keypoints_2d).max() < 1.0
        metres = codec.model_to_metres(seq.joints_3d, seq.scale)
        subject = seq.name.split("/")[0]
        np.testing.assert_allclose(bone_lengths(metres), np.broadcast_to(bone_scale(subject), (len(seq), 16)), atol=1e-4)
        # normalised 2D and model-unit 3D agree in x, y (weak perspective) to a few per cent of the body
        xy = seq.joints_3d[..., :2]
        uv = seq.keypoints_2d - seq.keypoints_2d[:, :1]
        assert np.abs(xy - uv).mean() < 0.05 * np.abs(xy).max()
    # the last camera's 2D is two frames short: the views are cut to the shorter length
    sh_seqs = data.sequences(("S1",), input_2d="sh")
    assert sorted({len(s) for s in sh_seqs}) == [FRAMES - 2, FRAMES]
    # the fitted SH -> H36M map reproduces the ground-truth 2D to a few pixels
    gt = {s.name: s.keypoints_2d for s in data.sequences(("S1",), input_2d="gt")}
    errors_px = [np.abs(s.keypoints_2d - gt[s.name][: len(s)]).mean() * 500 for s in sh_seqs]
    assert max(errors_px) < 5.0


def test_clip_sampler_batches(h36m_dir):
    seqs = Human36M(h36m_dir).sequences(("S1",), input_2d="gt")
    seqs[0].joints_3d = None  # one 2D-only sequence
    sampler = ClipSampler(seqs, clip_frames=CLIP, stride=CLIP, flip_prob=0.0)
    rng = np.random.default_rng(0)
    clips = sampler.clips(rng)
    for i, seq in enumerate(seqs):  # starts stride apart from a random offset, as many as fit
        starts = sorted(start for k, start, step in clips if k == i)
        assert starts and starts[0] < CLIP and starts[-1] <= len(seq) - CLIP < starts[-1] + CLIP
        assert np.all(np.diff(starts) == CLIP)
    assert {step for _, _, step in clips} == {1}
    batches = list(sampler.batches(rng, 3, clips))
    assert len(batches) == len(clips) // 3
    kp, j3, has = batches[0]
    assert kp.shape == (3, CLIP, 17, 2) and j3.shape == (3, CLIP, 17, 3) and has.dtype == np.float32
    for (i, start, step), x, y, h in zip(clips[:3], kp, j3, has):
        np.testing.assert_array_equal(x, seqs[i].keypoints_2d[start : start + CLIP])
        assert h == (0.0 if i == 0 else 1.0)
        assert (y == 0).all() if i == 0 else np.array_equal(y, seqs[i].joints_3d[start : start + CLIP])


def test_a_pitched_camera_circles_the_pelvis():
    body = np.zeros((2, 17, 3))
    body[:, 0] = [0.1, 0.0, 4.0]          # pelvis 4 m in front of the camera
    body[:, 10] = [0.1, -0.7, 4.0]        # head above it (y points down)
    body[:, 3] = [0.1, 0.9, 4.0]          # a foot below it
    np.testing.assert_allclose(pitched(body, 0.0), body)
    raised = pitched(body, 30.0)
    np.testing.assert_allclose(raised[:, 0], body[:, 0])  # the pelvis stays where it is
    np.testing.assert_allclose(np.linalg.norm(raised - raised[:, :1], axis=-1),
                               np.linalg.norm(body - body[:, :1], axis=-1))  # a rigid rotation
    # seen from above, the head comes nearer the camera and the foot goes further away
    assert raised[0, 10, 2] == pytest.approx(4.0 - 0.7 * np.sin(np.radians(30)))
    assert raised[0, 3, 2] == pytest.approx(4.0 + 0.9 * np.sin(np.radians(30)))
    np.testing.assert_allclose(pitched(raised, -30.0), body, atol=1e-12)


def test_virtual_views_carry_the_detector_error_to_the_new_camera(h36m_dir):
    data = Human36M(h36m_dir)
    for input_2d in ("sh", "gt"):
        real = {s.name: s for s in data.sequences(("S1",), input_2d=input_2d)}
        # a virtual camera at pitch 0 is the real camera: the same 2D, detector error included
        level = data.virtual_views(("S1",), input_2d, 1.0, (0.0, 0.0))
        assert len(level) == len(real)
        for seq in level:
            twin = real[seq.name.rsplit("/", 1)[0]]
            assert seq.name.endswith("/pitch+0") and seq.action == twin.action
            np.testing.assert_allclose(seq.keypoints_2d, twin.keypoints_2d, atol=1e-5)
            np.testing.assert_allclose(seq.joints_3d, twin.joints_3d, atol=1e-5)
    raised = data.virtual_views(("S1",), "sh", 1.5, (20.0, 40.0), seed=3)
    assert len(real) < len(raised) < 2 * len(real) + 1  # one each and a second for about half
    for seq in raised:
        assert 20 <= float(seq.name.rsplit("pitch", 1)[1]) <= 40
        metres = codec.model_to_metres(seq.joints_3d, seq.scale)
        np.testing.assert_allclose(bone_lengths(metres), np.broadcast_to(bone_scale("S1"), (len(seq), 16)), atol=1e-4)
        twin = real[seq.name.rsplit("/", 1)[0]]
        # the body is still in view, but no longer where the real camera saw it
        assert np.abs(seq.keypoints_2d).max() < 1.0
        assert np.abs(seq.keypoints_2d - twin.keypoints_2d).max() > 0.01
    assert [s.name for s in raised] == [s.name for s in data.virtual_views(("S1",), "sh", 1.5, (20.0, 40.0), seed=3)]
    # the protocol's views from a pitched camera (benchmarks/viewpoint_accuracy.py) are the same views
    for seq, virtual in zip(data.sequences(("S1",), "sh", pitch=25.0), data.virtual_views(("S1",), "sh", 1.0, (25.0, 25.0))):
        assert virtual.name == f"{seq.name}/pitch+25"
        np.testing.assert_array_equal(seq.keypoints_2d, virtual.keypoints_2d)
        np.testing.assert_array_equal(seq.joints_3d, virtual.joints_3d)


def test_training_data_with_virtual_cameras(h36m_dir):
    from pose3d.train import TrainConfig, _training_sequences

    train, val, described = _training_sequences(TrainConfig(data=str(h36m_dir), input_2d="gt", virtual_cameras=2.0,
                                                            virtual_pitch=[-10.0, 10.0], val="none"))
    real = [s for s in train if "pitch" not in s.name]
    assert len(real) == len(TRAIN_SUBJECTS) * len(RECORDINGS) * len(CAMERAS) and len(train) == 3 * len(real)
    assert val is None and "2 virtual camera views per view, pitch -10 to 10 degrees" in described
    with pytest.raises(InputError, match="virtual_cameras needs --data"):
        _training_sequences(TrainConfig(user_data=str(h36m_dir / "user.npz"), virtual_cameras=1.0))


def test_detected_2d_carries_its_error_against_the_projected_ground_truth(h36m_dir):
    data = Human36M(h36m_dir)
    assert all(seq.detection_error is None for seq in data.sequences(("S1",), input_2d="gt"))
    exact = {s.name: s for s in data.sequences(("S1",), input_2d="gt")}
    for seq in data.sequences(("S1",), input_2d="sh"):
        n = len(seq)  # SH and 3D lengths can differ
        np.testing.assert_allclose(seq.detection_error, seq.keypoints_2d - exact[seq.name].keypoints_2d[:n], atol=1e-5)
        assert np.abs(seq.detection_error).max() > 0
    # a virtual camera's view carries the real view's error, frame for frame
    real = {s.name: s for s in data.sequences(("S1",), input_2d="sh")}
    for virtual in data.virtual_views(("S1",), "sh", 1.0, (20.0, 40.0)):
        np.testing.assert_array_equal(virtual.detection_error, real[virtual.name.rsplit("/", 1)[0]].detection_error)


def test_clip_sampler_scales_the_detector_error_per_clip(h36m_dir):
    data = Human36M(h36m_dir)
    detected = data.sequences(("S1",), input_2d="sh")
    exact = {s.name: s.keypoints_2d for s in data.sequences(("S1",), input_2d="gt")}

    def first_batch(scale, seed=0):
        sampler = ClipSampler(detected, CLIP, 9, flip_prob=0.0, error_scale=scale)
        clips = sampler.clips(np.random.default_rng(seed))
        return clips, next(sampler.batches(np.random.default_rng(seed), 4, clips))[0]

    clips, as_detected = first_batch((1.0, 1.0))
    _, without_error = first_batch((0.0, 0.0))
    _, doubled = first_batch((2.0, 2.0))
    _, scaled = first_batch((1.0, 3.0))
    for b, (i, start, step) in enumerate(clips[:4]):
        seq, frames = detected[i], slice(start, start + (CLIP - 1) * step + 1, step)
        np.testing.assert_array_equal(as_detected[b], seq.keypoints_2d[frames])
        np.testing.assert_allclose(without_error[b], exact[seq.name][frames], atol=1e-5)  # the projected truth
        np.testing.assert_allclose(doubled[b], seq.keypoints_2d[frames] + seq.detection_error[frames], atol=1e-6)
        # one factor per clip, between 1 and 3
        factor = (scaled[b] - exact[seq.name][frames]) / seq.detection_error[frames]
        factor = factor[np.abs(seq.detection_error[frames]) > 1e-3]
        assert 1.0 <= factor.min() - 1e-3 and factor.max() <= 3.0 + 1e-3 and np.ptp(factor) < 1e-2
    # the default draws nothing more from the generator: earlier runs' batches are unchanged
    sampler = ClipSampler(detected, CLIP, 9, flip_prob=0.5)
    np.testing.assert_array_equal(next(sampler.batches(np.random.default_rng(5), 4))[0],
                                  next(ClipSampler(detected, CLIP, 9, flip_prob=0.5, error_scale=(1, 1))
                                       .batches(np.random.default_rng(5), 4))[0])


def test_protocol_views_with_the_detector_error_scaled(h36m_dir):
    from pose3d.evaluate import test_sequences

    data = Human36M(h36m_dir)
    detected = test_sequences(data, "sh", quick=True)
    exact = {s.name: s.keypoints_2d for s in test_sequences(data, "gt", quick=True)}
    for factor in (0.0, 1.0, 2.5):
        for seq, scaled in zip(detected, [s.with_detection_error(factor) for s in detected]):
            n = len(seq)
            np.testing.assert_allclose(scaled.keypoints_2d, exact[seq.name][:n] + factor * seq.detection_error, atol=1e-5)
            np.testing.assert_array_equal(scaled.joints_3d, seq.joints_3d)
    gt = test_sequences(data, "gt", quick=True)
    assert all(a.keypoints_2d is b.keypoints_2d for a, b in zip(gt, [s.with_detection_error(3.0) for s in gt]))


def test_training_data_with_scaled_detector_error(h36m_dir):
    from pose3d.train import TrainConfig, _training_sequences

    _, _, described = _training_sequences(TrainConfig(data=str(h36m_dir), detection_error_scale=[1.0, 2.0], val="none"))
    assert "detector error x 1 to 2" in described
    with pytest.raises(InputError, match="detection_error_scale needs detected 2D"):
        TrainConfig(data=str(h36m_dir), input_2d="gt", detection_error_scale=[1.0, 2.0])
    with pytest.raises(InputError, match="detection_error_scale needs --data"):
        _training_sequences(TrainConfig(user_data=str(h36m_dir / "user.npz"), detection_error_scale=[1.0, 2.0]))


# --------------------------------------------------------------------------- training
@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss_on_the_same_batch(h36m_dir):
    seqs = Human36M(h36m_dir).sequences(("S1",), input_2d="gt")
    kp, j3, has = next(ClipSampler(seqs, CLIP, CLIP).batches(np.random.default_rng(0), 4))
    x, y, has = torch.from_numpy(kp), torch.from_numpy(j3), torch.from_numpy(has)
    torch.manual_seed(0)
    model = build_model("S", max_frames=CLIP, **TINY_MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(4):
        loss, terms = training_loss(model(x), y, x, has)
        assert set(terms) == {"mpjpe", "n_mpjpe", "velocity", "temporal", "projection_2d"}
        assert terms["projection_2d"] == 0  # every clip has 3D
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = training_loss(model(x), y, x, has)[0].item()
    assert all(math.isfinite(v) for v in losses)
    assert final < losses[0]


def test_bone_consistency_is_zero_for_a_body_that_keeps_its_proportions(h36m_dir):
    seqs = Human36M(h36m_dir).sequences(("S1",), input_2d="gt")
    _, j3, _ = next(ClipSampler(seqs, CLIP, CLIP).batches(np.random.default_rng(0), 4))
    pose = torch.from_numpy(j3)
    # the model's units follow the person's depth: a clip growing by half is still consistent
    growing = pose * torch.linspace(1.0, 1.5, CLIP)[None, :, None, None]
    assert bone_consistency(growing).item() < 1e-5
    # one forearm growing while the rest of the body stays is not
    stretched = pose.clone()
    stretched[:, :, 16] += (stretched[:, :, 16] - stretched[:, :, 15]) * torch.linspace(0, 0.4, CLIP)[None, :, None]
    assert bone_consistency(stretched).item() > 0.005
    # it enters the loss only when weighted
    x = torch.zeros(pose.shape[:-1] + (2,))
    _, terms = training_loss(stretched, pose, x, torch.ones(len(pose)), {"bone_consistency": 1.0})
    assert terms["bone_consistency"] == pytest.approx(bone_consistency(stretched).item())


@pytest.fixture(scope="module")
def trained_run(h36m_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    code = run_cli(["train", "--data", h36m_dir, "--config", tiny_config(out.parent), "--out", out,
                    "--epochs", 1, "--steps-per-epoch", 3, "--device", "cpu"])
    assert code == 0
    return out


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_command_writes_a_run_folder(trained_run, h36m_dir):
    assert {"config.json", "metrics.jsonl", "last.pt", "final.pt", "best.pt"} <= {p.name for p in trained_run.iterdir()}
    (record,) = read_metrics(trained_run)
    assert record["epoch"] == 1 and record["step"] == 3
    assert all(math.isfinite(record[k]) for k in ("train_loss", "train_mpjpe", "val_p1", "val_p2"))
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"] == TINY_MODEL and config["clip_frames"] == CLIP and config["data"] == str(h36m_dir)
    model, meta = load_weights(trained_run / "best.pt")
    assert model.config.dim == 16 and model.config.max_frames == CLIP
    assert meta["val"]["quick"]["p1"] == pytest.approx(record["val_p1"])
    # the reference body is the training subjects' mean bone lengths, back in metres
    expected = np.mean([bone_scale(s) for s in TRAIN_SUBJECTS], axis=0)
    np.testing.assert_allclose(meta["reference_bone_lengths_m"], expected, atol=1e-4)
    checkpoint = torch.load(trained_run / "last.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 1 and checkpoint["state"]["step"] == 3
    final = torch.load(trained_run / "final.pt", weights_only=True)["state_dict"]
    for name, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(final[name], value)


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(trained_run, tmp_path):
    run = tmp_path / "resumed"
    run.mkdir()
    for name in ("config.json", "metrics.jsonl", "last.pt"):
        (run / name).write_bytes((trained_run / name).read_bytes())
    config = json.loads((run / "config.json").read_text())  # still names the old folder
    before = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    assert run_cli(["train", "--out", run, "--epochs", 2, "--resume", "--device", "cpu"]) == 0
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] == 6  # 3 more steps on top of the checkpoint's 3
    assert records[1]["lr"] == pytest.approx(config["lr"] * config["lr_decay"])
    after = torch.load(run / "last.pt", weights_only=True)
    assert after["state"]["epoch"] == 2
    assert any(not torch.equal(after["state_dict"][k], v) for k, v in before.items())
    assert (run / "final.pt").is_file()
    assert len(read_metrics(trained_run)) == 1  # a moved run folder resumes where it is now


@pytest.mark.slow
def test_weight_average_is_what_is_saved_and_it_resumes(h36m_dir, tmp_path):
    decay = 0.75
    out = tmp_path / "ema"
    base = ["train", "--data", h36m_dir, "--config", tiny_config(tmp_path, ema_decay=decay), "--out", out,
            "--steps-per-epoch", 1, "--device", "cpu"]
    assert run_cli(base + ["--epochs", 1]) == 0
    first = torch.load(out / "last.pt", weights_only=True)
    for k, v in first["trained_state_dict"].items():  # after one step the average is that step's weights
        torch.testing.assert_close(first["state_dict"][k], v)
    assert run_cli(base + ["--epochs", 2, "--resume"]) == 0
    second = torch.load(out / "last.pt", weights_only=True)
    trained = second["trained_state_dict"]
    assert any(not torch.equal(trained[k], v) for k, v in first["trained_state_dict"].items())
    for k, v in trained.items():  # average = decay * previous average + (1 - decay) * new weights
        if v.is_floating_point():
            torch.testing.assert_close(second["state_dict"][k], decay * first["state_dict"][k] + (1 - decay) * v)
    # the validated and saved weights are the average
    final, _ = load_weights(out / "final.pt")
    for k, v in final.state_dict().items():
        torch.testing.assert_close(v, second["state_dict"][k])


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from pose3d.train import TrainConfig, learning_rate

    config = TrainConfig(lr=1e-3, schedule="cosine", warmup_steps=10)
    assert learning_rate(config, 0, 0, 0.0) == pytest.approx(1e-4)  # first of ten warm-up steps
    assert learning_rate(config, 0, 9, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 3, 500, 0.5) == pytest.approx(5e-4)  # half-way: half the peak
    assert learning_rate(config, 9, 999, 1.0) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(lr=1e-3, lr_decay=0.5)  # the legacy schedule: x lr_decay per epoch
    assert learning_rate(step, 2, 123, 0.7) == pytest.approx(2.5e-4)


def test_budget_clock_leaves_out_its_pauses(monkeypatch):
    from pose3d import train as train_module

    now = [100.0]
    monkeypatch.setattr(train_module.time, "monotonic", lambda: now[0])
    clock = train_module.BudgetClock("wall", already=30.0)  # a resumed run's 30 s
    now[0] += 10
    clock.pause()
    now[0] += 1000  # validation
    assert clock.seconds() == pytest.approx(40.0)
    clock.resume()
    now[0] += 5
    assert clock.seconds() == pytest.approx(45.0)


@pytest.mark.slow
def test_time_budget_stops_cleanly_saves_and_validates(h36m_dir, tmp_path, monkeypatch):
    from pose3d import train as train_module

    # a fake clock: every call is one second later, so the budget is reached after a few steps
    ticks = iter(range(10**6))
    monkeypatch.setattr(train_module.time, "process_time", lambda: float(next(ticks)))
    out = tmp_path / "budget"
    config = tiny_config(tmp_path, schedule="cosine", time_budget_minutes=0.2, budget_clock="cpu")
    assert run_cli(["train", "--data", h36m_dir, "--config", config, "--out", out, "--epochs", 50,
                    "--steps-per-epoch", 100, "--device", "cpu"]) == 0
    records = read_metrics(out)
    assert len(records) == 1 and 0 < records[0]["step"] < 100  # stopped inside the first epoch
    # the fake clock also ticks at the few readings after the stop
    assert records[0]["cpu_minutes"] <= 0.2 + 3 / 60 and math.isfinite(records[0]["val_p1"])
    assert {"last.pt", "final.pt", "best.pt"} <= {p.name for p in out.iterdir()}
    assert load_weights(out / "final.pt")[1]["steps"] == records[0]["step"]


def test_frames_objective_trains_the_frame_lifter_alone_and_refine_all_but_it(h36m_dir, tmp_path):
    model = {**TINY_MODEL, "frame_lifter": 32}
    frames_run = tmp_path / "frames"
    config = tiny_config(tmp_path, model=model, objective="frames", clip_frames=1, stride=1, batch_size=32)
    assert run_cli(["train", "--data", h36m_dir, "--config", config, "--out", frames_run, "--epochs", 1,
                    "--steps-per-epoch", 5, "--device", "cpu", "--val", "none"]) == 0
    torch.manual_seed(0)  # the run's initial weights
    initial = build_model("S", max_frames=1, **model).state_dict()
    lifter, meta = load_weights(frames_run / "final.pt")
    assert meta["steps"] == 5
    for name, value in lifter.state_dict().items():  # the lifter changes; the blocks and the zero head do not
        assert (not torch.equal(value, initial[name])) == name.startswith("frame_lifter."), name
    refine_run = tmp_path / "refine"
    config = tiny_config(tmp_path, init_weights=str(frames_run / "final.pt"), objective="refine")
    assert run_cli(["train", "--data", h36m_dir, "--config", config, "--out", refine_run, "--epochs", 1,
                    "--steps-per-epoch", 3, "--device", "cpu", "--val", "none"]) == 0
    refined, _ = load_weights(refine_run / "final.pt")
    assert refined.config.max_frames == CLIP
    before = lifter.state_dict()
    for name, value in refined.state_dict().items():  # now everything but the lifter changes
        if name != "temporal_pos":  # stretched from 1 frame to CLIP
            assert torch.equal(value, before[name]) == name.startswith("frame_lifter."), name


def test_average_of_weights_files(tmp_path):
    torch.manual_seed(0)
    models = [build_model("S", max_frames=CLIP, **TINY_MODEL) for _ in range(2)]
    for i, model in enumerate(models):
        save_weights(tmp_path / f"{i}.pt", model, {"fps": 50.0, "epochs": i})
    average, meta = average_weights([tmp_path / "0.pt", tmp_path / "1.pt"])
    for k, v in average.state_dict().items():
        torch.testing.assert_close(v, (models[0].state_dict()[k] + models[1].state_dict()[k]) / 2)
    assert meta["fps"] == 50.0 and "epochs" not in meta and len(meta["averaged_from"]) == 2
    save_weights(tmp_path / "wide.pt", build_model("S", max_frames=CLIP, **{**TINY_MODEL, "dim": 32}), {})
    with pytest.raises(InputError, match="different architectures"):
        average_weights([tmp_path / "0.pt", tmp_path / "wide.pt"])


@pytest.mark.slow
def test_fine_tuning_from_an_average_at_longer_clips(trained_run, h36m_dir, tmp_path):
    """init_weights as a list starts from their average; longer clips than the weights were
    trained on stretch the temporal position embedding."""
    out = tmp_path / "longer"
    config = tiny_config(tmp_path, init_weights=[str(trained_run / "best.pt"), str(trained_run / "final.pt")])
    code = run_cli(["train", "--data", h36m_dir, "--config", config, "--out", out, "--epochs", 1,
                    "--steps-per-epoch", 1, "-T", 2 * CLIP, "--val", "none", "--device", "cpu"])
    assert code == 0
    model, meta = load_weights(out / "final.pt")
    assert model.config.max_frames == 2 * CLIP and meta["clip_frames"] == 2 * CLIP


def test_unusable_run_folder_fails_before_loading_data(h36m_dir, tmp_path, capsys, monkeypatch):
    import pose3d.train

    def must_not_run(*args, **kwargs):
        raise AssertionError("loaded the data despite an unusable --out")

    monkeypatch.setattr(pose3d.train, "_training_sequences", must_not_run)
    (tmp_path / "a_file").write_text("a file, not a folder")
    code = run_cli(["train", "--data", h36m_dir, "--out", tmp_path / "a_file" / "run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and "a_file" in err and "Traceback" not in err and "internal error" not in err


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert run_cli(["train", "--out", tmp_path / "none", "--resume"]) != 0
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "Traceback" not in err


# --------------------------------------------------------------------------- evaluation
@pytest.mark.slow
@pytest.mark.parametrize("input_2d", ["sh", "gt"])
def test_eval_command_writes_protocol_json(trained_run, h36m_dir, tmp_path, input_2d):
    out = tmp_path / "eval.json"
    code = run_cli(["eval", "--data", h36m_dir, "--weights", trained_run / "best.pt", "--quick",
                    "--input-2d", input_2d, "--json", out, "--device", "cpu"])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["per_action"]) == {"Walking", "Eating"}
    values = [result["p1"], result["p2"]] + [v for a in result["per_action"].values() for v in (a["p1"], a["p2"])]
    assert all(math.isfinite(v) and v > 0 for v in values)
    # the protocol's mean is over actions; --quick scores one camera of each test view
    assert result["p1"] == pytest.approx(np.mean([a["p1"] for a in result["per_action"].values()]))
    assert result["p2"] == pytest.approx(np.mean([a["p2"] for a in result["per_action"].values()]))
    assert result["frames"] == len(TEST_SUBJECTS) * len(RECORDINGS) * FRAMES
    # per view: each test view once, its frames counted; an action's P1 is its views' frame-weighted mean
    views = result["per_view"]
    assert sorted(views) == sorted(f"{s}/{r}/{CAMERAS[0]}" for s in TEST_SUBJECTS for r in RECORDINGS)
    assert sum(v["frames"] for v in views.values()) == result["frames"]
    for action, errs in result["per_action"].items():
        mine = [v for name, v in views.items() if name.split("/")[1].split(" ")[0] == action]
        for metric in ("p1", "p2"):
            weighted = sum(v[metric] * v["frames"] for v in mine) / sum(v["frames"] for v in mine)
            assert errs[metric] == pytest.approx(weighted, rel=1e-5)
    if input_2d == "sh":  # the same numbers as the run's own validation after its epoch
        assert result["p1"] == pytest.approx(read_metrics(trained_run)[0]["val_p1"], rel=1e-5)


@pytest.mark.parametrize("json_name", ["eval.txt", "a_file/eval.json"])
def test_eval_json_path_is_checked_before_evaluating(h36m_dir, tmp_path, capsys, monkeypatch, json_name):
    """A bad --json path fails at once with one line, not after the evaluation."""
    import pose3d.evaluate

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated despite a bad --json path")

    monkeypatch.setattr(pose3d.evaluate, "evaluate_h36m", must_not_run)
    (tmp_path / "a_file").write_text("a file, not a folder")
    code = run_cli(["eval", "--data", h36m_dir, "--quick", "--json", tmp_path / json_name, "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "AssertionError" not in err
    assert json_name.split("/")[0] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


# --------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_ddp_with_two_cpu_processes_matches_one_process_with_the_global_batch(h36m_dir, tmp_path):
    """Two gloo ranks with batch 2 each average their gradients: the result equals one
    process training on batches of 4 made of the same clips (no flips, no drop path)."""
    backend = "fused" if "fused" in scan.available_backends("cpu") else "torch"
    common = ["--data", h36m_dir, "--epochs", 1, "--steps-per-epoch", 2, "--device", "cpu", "--scan", backend]
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # --device cpu: gloo
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pose3d.cli", "train", "--config", str(tiny_config(tmp_path, batch_size=2, flip_prob=0.0)),
           "--out", str(ddp_out), *map(str, common)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"config.json", "metrics.jsonl", "last.pt", "final.pt", "best.pt"} <= {p.name for p in ddp_out.iterdir()}
    (record,) = read_metrics(ddp_out)  # rank 0 alone writes
    assert record["step"] == 2 and math.isfinite(record["train_loss"]) and math.isfinite(record["val_p1"])

    single_config = tmp_path / "single.json"
    single_config.write_text(json.dumps({"model": TINY_MODEL, "clip_frames": CLIP, "batch_size": 4, "flip_prob": 0.0}))
    assert run_cli(["train", "--config", single_config, "--out", single_out, *common]) == 0
    ddp = torch.load(ddp_out / "final.pt", weights_only=True)["state_dict"]
    single = torch.load(single_out / "final.pt", weights_only=True)["state_dict"]
    torch.manual_seed(0)  # what train() starts from (seed 0)
    initial = build_model("S", max_frames=CLIP, **TINY_MODEL).state_dict()
    assert set(ddp) == set(single)
    for name, value in single.items():
        torch.testing.assert_close(ddp[name], value, atol=2e-5, rtol=1e-4, msg=name)
    # and the two steps did move the weights (the comparison is not between untouched copies)
    assert sum(not torch.equal(single[k], initial[k]) for k in single) > len(single) // 2


EXAMPLE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


def test_examples_hold_the_documented_training_configs():
    assert {p.name for p in EXAMPLE_CONFIGS} >= {
        "train_cpu_xs27.toml", "train_cpu_xs27_restart.toml", "train_cpu_xs27_stage3.toml", "train_cpu_w64_stage4.toml",
        "train_cpu_xs81_stage5.toml", "train_cpu_xs27_stage6.toml", "train_cpu_xs27_virtual_cams.toml",
        "train_cpu_xs27_detector_error.toml", "finetune_own_data.toml", "train_cpu_budget_xs27.toml",
        "train_cpu_budget_frames.toml", "train_cpu_budget_refine.toml"}


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: p.name)
def test_example_configs_are_valid_training_options(path):
    from pose3d.train import TrainConfig

    values = TrainConfig.from_file(path)
    config = TrainConfig(**values)
    assert config.clip_frames == 1 if config.objective == "frames" else config.clip_frames in (27, 81)
    assert config.epochs > 0


def test_shipped_weights_match_their_description():
    from dataclasses import asdict

    from pose3d.weights import DEFAULT_WEIGHTS_NAME

    folder = Path(__file__).resolve().parents[1] / "weights"
    info = json.loads((folder / DEFAULT_WEIGHTS_NAME).with_suffix(".json").read_text())
    assert info["file"] == DEFAULT_WEIGHTS_NAME
    model, meta = load_weights(folder / info["file"])
    assert asdict(model.config) == info["config"] and meta["clip_frames"] == info["clip_frames"]
    assert meta["frame_steps"] == info["frame_steps"] and meta["fps"] == 50.0
    assert len(meta["reference_bone_lengths_m"]) == 16
    assert {k: v["protocol"] for k, v in info["h36m_s9_s11"].items()} == {"sh": "full, flip", "gt": "full, flip"}


def test_an_unknown_loss_term_is_an_error():
    from pose3d.train import TrainConfig

    with pytest.raises(InputError, match="unknown loss terms bone_consistancy"):
        TrainConfig(loss_weights={"bone_consistancy": 1.0})


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "epochs must be positive"),
    ({"batch_size": 0}, "batch_size must be positive"),
    ({"lr": -1.0}, "lr must be positive"),
    ({"epochs": "ten"}, "epochs must be a whole number"),
    ({"clip_frames": 27.5}, "clip_frames must be a whole number"),
    ({"lr_decay": 1.5}, "lr_decay must lie in"),
    ({"flip_prob": 2.0}, "flip_prob in [0, 1]"),
    ({"frame_steps": (1, 0)}, "frame_steps must be whole numbers"),
    ({"frame_steps": ("2",)}, "frame_steps must be whole numbers"),
    ({"val": "sometimes"}, "val must be one of quick, full, none"),
    ({"input_2d": "hrnet"}, "input_2d must be one of sh, gt"),
    ({"loss_weights": {"mpjpe": -1.0}}, "loss weights must be numbers >= 0"),
    ({"widen_init": "yes", "init_weights": "w.pt"}, "widen_init must be true or false"),
    ({"widen_init": True}, "widen_init needs init_weights"),
    ({"ema_decay": 1.0}, "ema_decay must lie in"),
    ({"init_weights": []}, "init_weights must be a path or a list of paths"),
    ({"virtual_pitch": [50, -30]}, "virtual_pitch must be [low, high] degrees"),
    ({"virtual_pitch": [-30]}, "virtual_pitch must be [low, high] degrees"),
    ({"virtual_cameras": -1.0}, "virtual_cameras must be >= 0"),
    ({"detection_error_scale": [2.0, 1.0]}, "detection_error_scale must be [low, high] within [0, 4]"),
    ({"detection_error_scale": 1.5}, "detection_error_scale must be [low, high] within [0, 4]"),
    ({"preset": "Q"}, "preset must be one of XS, S, B, L"),
    ({"model": {"dimm": 64}}, "unknown model options dimm"),
    ({"model": 64}, "model must be a table of PoseMamba options"),
    ({"schedule": "linear"}, "schedule must be one of step, cosine"),
    ({"budget_clock": "gpu"}, "budget_clock must be one of wall, cpu"),
    ({"precision": "fp16"}, "precision must be one of fp32, bf16"),
    ({"time_budget_minutes": 0}, "time_budget_minutes must be positive"),
    ({"warmup_steps": -5}, "warmup_steps must be >= 0"),
    ({"threads": 0}, "threads must be positive"),
    ({"objective": "poses"}, "objective must be one of clips, frames, refine"),
    ({"objective": "refine"}, "objective refine needs a model with a frame lifter"),
    ({"objective": "frames"}, "objective frames needs a model with a frame lifter"),
])
def test_bad_training_options_fail_before_a_run_folder_is_made(tmp_path, options, message):
    from pose3d.train import TrainConfig

    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(out_dir=str(tmp_path / "run"), **options)
    assert not (tmp_path / "run").exists()
