#!/usr/bin/env python
"""Training memory of PoseMamba by scan backend, measured on the CPU at small sizes and
extrapolated to PoseMamba-S at T = 243, batch 16 (docs/benchmarks.md, "Training memory").

Two measurements per backend (``torch``: the plain PyTorch scan; ``chunked``: the same scan with
only each chunk's entering state kept and the chunk recomputed in backward):

* kept for backward: the bytes of the distinct storages autograd saves during one forward pass
  of the whole model in train mode (``torch.autograd.graph.saved_tensors_hooks``), at several
  clip lengths T and batch sizes B: exact, and linear in B * T, which is what makes the
  extrapolation sound;
* peak: the growth of the peak resident set size (VmHWM) over one training step
  (forward, loss, backward), in a fresh process per configuration: what the kept tensors cost
  plus the transients of the backward pass.

The extrapolation to T = 243, batch 16 multiplies the kept bytes by (243 * 16) / (T * B) and
adds, for ``chunked``, the transient of recomputing one chunk (the plain scan's per-position
saved bytes of one layer times the chunk length times two, for the graph and its gradients).

    python benchmarks/scan_memory.py            # S, T = 9 and 27, B = 1 and 2 (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

TARGET_T, TARGET_B = 243, 16


def _kept_bytes(preset: str, backend: str, T: int, B: int) -> int:
    import torch

    from pose3d.model import build_model

    torch.manual_seed(0)
    model = build_model(preset, max_frames=max(T, TARGET_T), scan_backend=backend).train()
    x = 0.3 * torch.randn(B, T, 17, 2)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


def _scan_bytes_per_position(backend: str, B: int, L: int, d: int) -> float:
    """Bytes one scan call of PoseMamba's shapes (K = 4, n = 16) keeps for backward, per position."""
    import torch

    from pose3d import scan

    K, n = 4, 16
    inputs = [torch.randn(B, L, K, d), torch.randn(B, L, K, d), -torch.rand(K, d, n), torch.randn(B, L, K, n),
              torch.randn(B, L, K, n), torch.randn(K, d), torch.randn(K, d)]
    for t in inputs:
        t.requires_grad_(True)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        scan.selective_scan(*inputs, backend=backend)
    return sum(storages.values()) / L


def _peak_rss_mib() -> float:
    """This process's peak resident set size, MiB. VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec, so a child of a large parent would
    start at the parent's peak."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_step_worker(spec: dict) -> dict:
    """One training step in this (fresh) process: growth of the peak RSS, MiB."""
    import torch

    from pose3d.losses import training_loss
    from pose3d.model import build_model

    torch.manual_seed(0)
    model = build_model(spec["preset"], max_frames=spec["T"], scan_backend=spec["backend"]).train()
    x = 0.3 * torch.randn(spec["B"], spec["T"], 17, 2)
    target = 0.3 * torch.randn(spec["B"], spec["T"], 17, 3)
    before = _peak_rss_mib()
    loss, _ = training_loss(model(x), target, x, torch.ones(spec["B"]))
    loss.backward()
    return {"peak_mib": _peak_rss_mib() - before}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="S")
    parser.add_argument("--frames", default="9,27", help="clip lengths T measured")
    parser.add_argument("--batches", default="1,2", help="batch sizes measured")
    parser.add_argument("--backends", default="torch,chunked")
    parser.add_argument("--no-peak", action="store_true", help="kept bytes only (no training step per configuration)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_peak_step_worker(json.loads(args.worker))))
        return
    import torch

    from pose3d import scan
    from pose3d.model import preset_config

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    frames = [int(t) for t in args.frames.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    d_inner = preset_config(args.preset).d_inner
    print(f"## PoseMamba-{args.preset} training memory by scan backend (CPU, torch {torch.__version__})\n")
    print("| scan | T | batch | kept for backward (MiB) | per clip-frame (KiB) | peak RSS growth of a step (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    per_frame = {}
    for backend in args.backends.split(","):
        for T in frames:
            for B in batches:
                kept = _kept_bytes(args.preset, backend, T, B)
                per_frame.setdefault(backend, []).append(kept / (T * B))
                peak = float("nan")
                if not args.no_peak:
                    spec = {"preset": args.preset, "backend": backend, "T": T, "B": B}
                    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                          capture_output=True, text=True)
                    if proc.returncode == 0:
                        peak = json.loads(proc.stdout.splitlines()[-1])["peak_mib"]
                print(f"| {backend} | {T} | {B} | {kept / 2**20:,.1f} | {kept / (T * B) / 1024:,.0f} | {peak:,.0f} |",
                      flush=True)
    chunk = scan._RECOMPUTE_CHUNK
    transient = 2 * _scan_bytes_per_position("torch", 1, 17 * 9, d_inner) * TARGET_B * chunk
    print(f"\nExtrapolated to T = {TARGET_T}, batch {TARGET_B} (kept bytes per clip-frame, the largest measured, "
          f"times {TARGET_T * TARGET_B} clip-frames; chunked adds one chunk's recomputation, "
          f"{chunk} positions: {transient / 2**30:.1f} GiB):\n")
    print("| scan | training memory at T = 243, batch 16 (GiB) |\n|---|---:|")
    for backend, values in per_frame.items():
        total = max(values) * TARGET_T * TARGET_B + (transient if backend == "chunked" else 0)
        print(f"| {backend} | {total / 2**30:,.1f} |")


if __name__ == "__main__":
    main()
