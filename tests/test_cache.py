"""The compact Human3.6M cache (pose3d.cache): its coding round trip, and that training and
evaluation read it like the folder it was built from (a synthetic folder; the real one when
../shared is there)."""

import json
import zipfile

import numpy as np
import pytest
import torch

from pose3d import cache
from pose3d.datasets import TRAIN_SUBJECTS, Human36M
from pose3d.errors import InputError
from pose3d.evaluate import evaluate_h36m
from pose3d.evaluate import test_sequences as protocol_views
from pose3d.model import build_model

from test_training import CLIP, TINY_MODEL, read_metrics, run_cli, tiny_config, write_synthetic_h36m


@pytest.fixture(scope="module")
def folder_and_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    folder = write_synthetic_h36m(root / "h36m", seed=3)
    assert run_cli(["cache", "build", "--data", folder, "-o", root / "h36m.npz"]) == 0
    return folder, root / "h36m.npz"


def test_pose_coding_rounds_to_the_quantum():
    rng = np.random.default_rng(0)
    for frames in (1, 2, 3, 200):
        world = (np.cumsum(rng.normal(scale=0.01, size=(frames, 17, 3)), axis=0) + [1.0, -2.0, 0.9]).astype(np.float32)
        first, stream = cache.encode_poses(world)
        assert first.dtype == np.int32 and stream.dtype == np.int16 and stream.shape == world.shape
        back = cache.decode_poses(first, stream)
        assert np.abs(back - world).max() <= cache.QUANTUM_M / 2 + 1e-6


def test_detection_coding_is_lossless_and_planes_invert():
    sh = np.random.default_rng(1).integers(0, 1000, size=(50, 16, 2)).astype(np.int16)
    stream = cache.encode_detections(sh)
    np.testing.assert_array_equal(cache.decode_detections(stream), sh)
    np.testing.assert_array_equal(cache._from_planes(cache._planes(stream)), stream.reshape(-1))


def test_a_jump_too_large_for_int16_is_an_error():
    with pytest.raises(InputError, match="too large"):
        cache.encode_poses(np.array([[[0.0, 0.0, 0.0]] * 17, [[40.0, 0.0, 0.0]] * 17]))


def test_cache_reads_like_the_folder(folder_and_cache):
    folder, path = folder_and_cache
    full, packed = Human36M(folder), Human36M(path)
    assert sorted(packed.poses.files) == sorted(full.poses.files) and sorted(packed.sh.files) == sorted(full.sh.files)
    assert packed.cameras == json.loads((folder / "cameras.json").read_text())
    np.testing.assert_array_equal(packed.sh_mapping, full.sh_mapping)  # fitted on full precision
    for name in ("S1", "S9"):
        assert packed.recordings(name) == full.recordings(name)
    a, b = full.sequences(TRAIN_SUBJECTS), packed.sequences(TRAIN_SUBJECTS)
    assert [s.name for s in a] == [s.name for s in b]
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.keypoints_2d, t.keypoints_2d)  # the 2D input is lossless
        np.testing.assert_allclose(t.joints_3d, s.joints_3d, atol=1e-3)  # model units: 0.25 mm at ~4 m
        np.testing.assert_allclose(t.scale, s.scale, rtol=1e-4)
    assert [s.name for s in protocol_views(packed, "sh", quick=False)] == \
           [s.name for s in protocol_views(full, "sh", quick=False)]


def test_the_cache_is_small_and_compressed(folder_and_cache):
    folder, path = folder_and_cache
    entries = {i.filename: i for i in zipfile.ZipFile(path).infolist()}
    assert set(entries) == {"meta.npy", "poses_first.npy", "poses_planes.npy", "sh_planes.npy"}
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in entries.values())
    folder_bytes = sum(p.stat().st_size for p in folder.iterdir())
    assert path.stat().st_size < folder_bytes / 2


def test_evaluation_from_the_cache_scores_as_from_the_folder(folder_and_cache):
    folder, path = folder_and_cache
    torch.manual_seed(0)
    model = build_model("S", max_frames=CLIP, scan_backend="torch", **TINY_MODEL).eval()
    results = [evaluate_h36m(model, where, clip_frames=CLIP, quick=True) for where in (folder, path)]
    assert results[1].frames == results[0].frames > 0
    assert results[1].p1 == pytest.approx(results[0].p1, abs=0.05)
    assert results[1].p2 == pytest.approx(results[0].p2, abs=0.05)


def test_train_reads_the_cache(folder_and_cache, tmp_path):
    _, path = folder_and_cache
    out = tmp_path / "run"
    assert run_cli(["train", "--data", path, "--config", tiny_config(tmp_path), "--out", out, "--epochs", 1,
                    "--steps-per-epoch", 2, "--device", "cpu", "--scan", "torch"]) == 0
    (record,) = read_metrics(out)
    assert np.isfinite(record["val_p1"])


def test_a_file_that_is_not_a_cache_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(InputError, match="not a pose3d Human3.6M cache"):
        Human36M(bad)
    assert run_cli(["cache", "build", "--data", tmp_path, "-o", tmp_path / "c.npz"]) != 0
    assert "not a Human3.6M data folder" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.slow
@pytest.mark.shared
def test_eval_quick_on_the_real_cache_equals_the_folder(shared_dir, tmp_path):
    folder = shared_dir / "data" / "h36m"
    path = tmp_path / "h36m.npz"
    summary = cache.build_cache(folder, path)
    assert summary["bytes"] <= 48 * 2 ** 20  # what travels to a GPU slice beside the code
    from pose3d.weights import load_weights

    model, _ = load_weights(None, device=torch.device("cpu"))
    results = [evaluate_h36m(model, where, clip_frames=model.config.max_frames, quick=True) for where in (folder, path)]
    assert results[1].frames == results[0].frames
    assert results[1].p1 == pytest.approx(results[0].p1, abs=0.05)
    assert results[1].p2 == pytest.approx(results[0].p2, abs=0.05)


@pytest.mark.slow
@pytest.mark.shared
def test_real_cache_gives_the_quick_protocol_the_same_2d_and_targets_within_half_a_millimetre(shared_dir, tmp_path):
    """|P1(cache) - P1(folder)| <= the mean distance between their targets (triangle inequality,
    frame by frame): the bound without running a model."""
    from pose3d import codec

    folder = shared_dir / "data" / "h36m"
    path = tmp_path / "h36m.npz"
    cache.build_cache(folder, path)
    views = [protocol_views(Human36M(where), "sh", quick=True) for where in (folder, path)]
    assert [s.name for s in views[0]] == [s.name for s in views[1]]
    moved = []
    for s, t in zip(*views):
        np.testing.assert_array_equal(s.keypoints_2d, t.keypoints_2d)
        moved.append(np.linalg.norm(codec.model_to_metres(s.joints_3d, s.scale)
                                    - codec.model_to_metres(t.joints_3d, t.scale), axis=-1).ravel())
    moved_mm = 1000 * np.concatenate(moved)
    assert moved_mm.mean() < 0.5 and moved_mm.max() < 1.0  # measured: 0.31 and 0.82 mm
