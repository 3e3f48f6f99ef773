"""Where one PoseMamba training step's time goes: torch.profiler over a few steps, by operator.

    python benchmarks/profile_step.py --device cuda --preset XS --frames 27 --batch 64 --scan torch

Prints the step's median wall time, how many kernels (CUDA) or operators (CPU) a step runs, and
the operators that take most of the device's time (self time, so nested calls are not counted
twice) as a markdown table. The step is ``benchmarks/lifter_speed.py``'s training step (random
inputs, pose3d's training loss, AdamW).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from lifter_speed import training_step  # this folder is on sys.path when the script runs
from pose3d.model import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--preset", default="XS")
    parser.add_argument("--frames", type=int, default=27)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--scan", default="auto", help="scan backend (pose3d.scan)")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps, after one warm-up step")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(args.preset, max_frames=args.frames, scan_backend=args.scan).to(device)
    call = training_step(model, 0.3 * torch.randn(args.batch, args.frames, 17, 2, device=device))

    def step() -> float:
        began = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - began

    step()
    # acc_events: keep every profiled step's events (the profiler clears them per cycle otherwise)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, acc_events=True) as prof:
        seconds = [step() for _ in range(args.steps)]
    events = prof.key_averages()
    device_time = "self_device_time_total" if cuda else "self_cpu_time_total"
    # on CUDA each kernel is listed twice: as itself and in the self time of the operator that
    # launched it; the busy time sums the kernels, the table shows the operators
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA] if cuda else events
    operators = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU]
    total = sum(getattr(e, device_time) for e in kernels) or 1.0
    launches = sum(e.count for e in kernels)
    median = statistics.median(seconds)
    print(f"{args.preset} T={args.frames} batch {args.batch}, {args.device}, scan {args.scan}: "
          f"{median * 1e3:.1f} ms a step ({args.batch * args.frames / median:,.0f} frames/s), "
          f"{launches / args.steps:,.0f} {'kernels' if cuda else 'operators'} a step, "
          f"{'device' if cuda else 'CPU'} busy {total / 1e3 / args.steps:.1f} ms a step")
    print()
    print("| operator | calls a step | self time a step (ms) | share |")
    print("|---|---:|---:|---:|")
    for e in sorted(operators, key=lambda e: getattr(e, device_time), reverse=True)[: args.top]:
        own = getattr(e, device_time)
        print(f"| {e.key[:60]} | {e.count / args.steps:,.0f} | {own / 1e3 / args.steps:.2f} | {own / total:.0%} |")


if __name__ == "__main__":
    main()
