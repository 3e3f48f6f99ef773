"""The GPU path, tested on the CPU: distributed training's device, backend, seeds and timeout
(two gloo processes, and a faked CUDA for the backend choice)."""

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist

from pose3d import train as train_module
from pose3d.train import TrainConfig

from test_training import CLIP, write_synthetic_h36m


# --------------------------------------------------------------------------- DDP device and backend
class _Stop(Exception):
    pass


def _fake_torchrun(monkeypatch, calls: list, cuda: bool) -> None:
    """Two ranks of a torchrun on a machine with (``cuda``) or without a GPU; the process group
    is not made: its creation is recorded and stops train()."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)

    def init_process_group(backend, timeout):
        calls.append(("init_process_group", backend, timeout))
        raise _Stop

    monkeypatch.setattr(dist, "init_process_group", init_process_group)


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), ("cuda", "nccl"), ("auto", "nccl")])
def test_ddp_backend_follows_the_chosen_device_on_a_cuda_machine(monkeypatch, tmp_path, device, backend):
    calls = []
    _fake_torchrun(monkeypatch, calls, cuda=True)
    with pytest.raises(_Stop):
        train_module.train(TrainConfig(out_dir=str(tmp_path / "run"), device=device))
    init = calls[-1]
    assert init[:2] == ("init_process_group", backend)
    # a validation on rank 0 may take longer than the collectives' default 10 minutes
    assert init[2] >= train_module.DDP_TIMEOUT > __import__("datetime").timedelta(minutes=30)
    if backend == "nccl":  # this rank's GPU is current before NCCL makes its communicator
        assert calls[0] == ("set_device", "cuda:1")
    else:
        assert [c[0] for c in calls] == ["init_process_group"]


def test_ddp_without_cuda_uses_gloo(monkeypatch, tmp_path):
    calls = []
    _fake_torchrun(monkeypatch, calls, cuda=False)
    with pytest.raises(_Stop):
        train_module.train(TrainConfig(out_dir=str(tmp_path / "run")))
    assert calls == [("init_process_group", "gloo", train_module.DDP_TIMEOUT)]


def test_each_rank_gets_its_own_seed():
    seeds = {train_module._rank_seed(0, rank) for rank in range(8)}
    assert len(seeds) == 8 and train_module._rank_seed(0, 1) == train_module._rank_seed(0, 1)
    assert train_module._rank_seed(1, 0) not in seeds


# --------------------------------------------------------------------------- two gloo processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, world: int, port: int, data: str, out: str, report: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    config = TrainConfig(data=data, out_dir=out, model={"dim": 16, "depth": 1, "drop_path": 0.5},
                         clip_frames=CLIP, batch_size=2, epochs=2, steps_per_epoch=2, device="cpu",
                         scan="torch", val="quick")
    train_module.train(config)
    with open(os.path.join(report, f"rank{rank}.json"), "w") as f:  # the seed its drop-path masks came from
        json.dump({"torch_seed": torch.initial_seed()}, f)


@pytest.mark.slow
def test_two_gloo_processes_train_with_their_own_stochastic_depth(tmp_path):
    """torch.multiprocessing.spawn's two ranks, drop path 0.5, two epochs with a validation
    after each (rank 1 waits in the barrier): both finish, and rank 0 writes the run."""
    data = write_synthetic_h36m(tmp_path / "h36m")
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    torch.multiprocessing.spawn(_ddp_rank, args=(2, _free_port(), str(data), str(out), str(report)), nprocs=2)
    seeds = [json.loads((report / f"rank{rank}.json").read_text())["torch_seed"] for rank in range(2)]
    assert seeds == [train_module._rank_seed(0, 0), train_module._rank_seed(0, 1)]
    assert {"config.json", "metrics.jsonl", "last.pt", "final.pt", "best.pt"} <= {p.name for p in out.iterdir()}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and all("val_p1" in r for r in records)
    assert torch.load(out / "last.pt", weights_only=True)["state"]["epoch"] == 2


# --------------------------------------------------------------------------- host syncs, devices
def test_prefetching_thread_yields_every_batch_and_ends_when_the_consumer_stops_early():
    import threading

    import numpy as np

    batches = [(np.full((2, 3), i, np.float32),) for i in range(10)]
    assert [int(b[0][0, 0]) for b in train_module._prefetched(iter(batches), torch.device("cpu"), threaded=True)] \
        == list(range(10))
    consumer = train_module._prefetched(iter(batches), torch.device("cpu"), threaded=True)
    assert int(next(consumer)[0][0, 0]) == 0  # then a budget stop: the producer is blocked on a full queue
    consumer.close()
    assert not any(t.name == "batch-prefetch" for t in threading.enumerate())


def test_loss_terms_stay_tensors_and_the_2d_term_covers_clips_without_3d():
    from pose3d.losses import means, projection_2d, training_loss

    torch.manual_seed(0)
    pred, target, kp = torch.randn(3, 9, 17, 3), torch.randn(3, 9, 17, 3), torch.randn(3, 9, 17, 2)
    has_3d = torch.tensor([1.0, 0.0, 1.0])
    loss, terms = training_loss(pred, target, kp, has_3d)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in terms.values())
    torch.testing.assert_close(terms["projection_2d"], projection_2d(pred[1:2], kp[1:2]).mean())
    _, all_3d = training_loss(pred, target, kp, torch.ones(3))
    assert all_3d["projection_2d"] == 0
    sums = {k: v + terms[k] for k, v in all_3d.items()}
    averaged = means(sums, 2)
    assert set(averaged) == set(terms) and all(isinstance(v, float) for v in averaged.values())
    assert averaged["mpjpe"] == pytest.approx((all_3d["mpjpe"] + terms["mpjpe"]).item() / 2)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_training_loss_does_not_wait_for_the_gpu():
    from pose3d.losses import training_loss

    pred = torch.randn(4, 27, 17, 3, device="cuda", requires_grad=True)
    target, kp = torch.randn(4, 27, 17, 3, device="cuda"), torch.randn(4, 27, 17, 2, device="cuda")
    has_3d = torch.tensor([1.0, 0.0, 1.0, 1.0], device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, _ = training_loss(pred, target, kp, has_3d)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_widened_model_stays_on_its_gpu():
    from pose3d.model import build_model, widened

    model = build_model("XS", max_frames=9, depth=1, drop_path=0.0, scan_backend="chunked").cuda().eval()
    wide = widened(model)
    assert all(p.is_cuda for p in wide.parameters())
    x = torch.randn(2, 9, 17, 2, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(wide(x), model(x), atol=1e-4, rtol=1e-3)


# --------------------------------------------------------------------------- scripts/gpu_slice.sh
@pytest.mark.slow
def test_gpu_slice_dry_run_trains_evaluates_and_lifts_on_the_cpu(tmp_path):
    """The slice script's --dry-run (XS, T = 27, CPU, a few seconds of training) on a cache of
    the synthetic Human3.6M: the files a GPU slice sends back, and weights that load."""
    import subprocess
    import sys
    from pathlib import Path

    from helpers import keypoint_file

    from pose3d.cache import build_cache
    from pose3d.weights import load_weights

    root = Path(__file__).resolve().parents[1]
    slice_dir = tmp_path / "slice"
    build_cache(write_synthetic_h36m(tmp_path / "h36m"), slice_dir / "h36m_cache.npz")
    keypoint_file(slice_dir / "skater_hrnet_h36m17.npz", frames=40)
    out = tmp_path / "out"
    env = {**os.environ, "POSE3D_SLICE_DIR": str(slice_dir), "PYTHON": sys.executable,
           "POSE3D_SLICE_TRAIN_MINUTES": "0.1", "POSE3D_SLICE_SKIP": "speed", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(root)}
    proc = subprocess.run(["bash", str(root / "scripts" / "gpu_slice.sh"), "--dry-run", str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    log = (out / "slice.log").read_text() if (out / "slice.log").is_file() else proc.stdout
    assert proc.returncode == 0, log[-3000:]
    assert {"posemamba_s243.pt", "slice_metrics.json", "train_metrics.jsonl", "eval_quick.json", "lift_skater.json",
            "slice.log"} <= {p.name for p in out.iterdir()}
    assert len(list(out.iterdir())) <= 8  # what a slice can send back
    summary = json.loads((out / "slice_metrics.json").read_text())
    assert {name: s["exit"] for name, s in summary["steps"].items()} == {
        "train": "0", "eval": "0", "speed": "skipped", "lift": "0"}
    model, meta = load_weights(out / "posemamba_s243.pt")
    assert model.config.max_frames == CLIP and meta["slices"][-1]["from"] == "scratch"
    assert summary["eval_quick"]["p1"] == pytest.approx(json.loads((out / "eval_quick.json").read_text())["p1"])
    assert summary["lift"]["frames"] == 40 and summary["weights_mib"] < 16
