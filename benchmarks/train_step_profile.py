"""Where a training step's CPU time goes: data, forward, loss, backward (and the scan within
forward and backward), optimiser; and frames trained per CPU-second, for PoseMamba at the
sizes and batch sizes given.

    python benchmarks/train_step_profile.py --preset XS -T 27 --batch-sizes 16,64,256
    python benchmarks/train_step_profile.py --preset XS -T 27 --model dim=64,depth=4 --batch-sizes 64 --bf16

Batches come from Human3.6M when ``--data`` is given (the real ClipSampler cost), otherwise
random inputs of the same shapes. ``--threads`` sets torch's intra-op threads (default 1).
``--compile`` wraps the model in torch.compile (the scan's custom autograd function is left
to eager mode). Times are the process's CPU time (``time.process_time``, all threads), so a
busy machine does not distort them; with one thread, frames per CPU-second is the wall-clock
rate of one core. Prints one table row per batch size; name the machine with the table.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import numpy as np
import torch

from pose3d.datasets import TRAIN_SUBJECTS, Human36M
from pose3d.sampling import ClipSampler
from pose3d.losses import DEFAULT_WEIGHTS, training_loss
from pose3d.model import build_model, count_parameters
from pose3d.scan import _FusedScan


def parse_overrides(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key] = float(value) if "." in value else int(value)
    return out


class ScanClock:
    """CPU seconds spent inside the fused scan's forward and backward (the kernel's calls)."""

    def __init__(self):
        self.seconds = 0.0
        for name in ("forward", "backward"):
            original = getattr(_FusedScan, name)
            setattr(_FusedScan, name, staticmethod(self._timed(original)))

    def _timed(self, fn):
        def wrapper(*args):
            start = time.process_time()
            try:
                return fn(*args)
            finally:
                self.seconds += time.process_time() - start
        return wrapper


def profile(model, batches, steps: int, bf16: bool, loss_weights: dict, scan_clock: ScanClock) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = {k: 0.0 for k in ("data", "forward", "loss", "backward", "optimizer")}
    clock = time.process_time
    for step in range(steps + 2):  # two warm-up steps, not counted
        if step == 2:
            scan_clock.seconds = 0.0
        t0 = clock()
        kp, j3, has = (torch.from_numpy(a) for a in next(batches))
        t1 = clock()
        with autocast:
            pred = model(kp)
        t2 = clock()
        loss, _ = training_loss(pred.float(), j3, kp, has, loss_weights)
        t3 = clock()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = clock()
        optimizer.step()
        t5 = clock()
        if step >= 2:
            for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[key] += seconds
    out = {k: v / steps for k, v in times.items()}
    out["scan"] = scan_clock.seconds / steps
    out["step"] = sum(times.values()) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="XS")
    parser.add_argument("-T", "--clip-frames", type=int, default=27)
    parser.add_argument("--model", default="", help="PoseMambaConfig overrides, e.g. dim=64,depth=4")
    parser.add_argument("--batch-sizes", default="16,64,256")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--data", help="Human3.6M folder: real batches instead of random ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.preset, max_frames=args.clip_frames, **parse_overrides(args.model)).train()
    run = torch.compile(model) if args.compile else model
    sampler = None
    if args.data:
        sampler = ClipSampler(Human36M(args.data).sequences(TRAIN_SUBJECTS[:1]), args.clip_frames, args.clip_frames)
    print(f"PoseMamba {args.preset} {args.model or ''} T={args.clip_frames}: {count_parameters(model):,} parameters, "
          f"{args.threads} threads, {'bf16 autocast' if args.bf16 else 'fp32'}{', compiled' if args.compile else ''}")
    scan_clock = ScanClock()
    print("CPU milliseconds per step (process time):")
    print("| batch | data | forward | loss | backward | optimiser | scan (fwd+bwd) | step | frames per CPU-s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        if sampler is not None:
            rng = np.random.default_rng(0)
            batches = iter(b for _ in range(1000) for b in sampler.batches(rng, batch_size))
        else:
            shape = (batch_size, args.clip_frames, 17)
            fixed = (np.random.randn(*shape, 2).astype(np.float32) * 0.3,
                     np.random.randn(*shape, 3).astype(np.float32) * 0.1, np.ones(batch_size, np.float32))
            batches = iter(lambda: fixed, None)
        t = profile(run, batches, args.steps, args.bf16, dict(DEFAULT_WEIGHTS), scan_clock)
        ms = {k: 1000 * v for k, v in t.items()}
        print(f"| {batch_size} | {ms['data']:.1f} | {ms['forward']:.1f} | {ms['loss']:.1f} | {ms['backward']:.1f} | "
              f"{ms['optimizer']:.1f} | {ms['scan']:.1f} | {ms['step']:.1f} | "
              f"{batch_size * args.clip_frames / t['step']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
