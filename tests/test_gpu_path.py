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
