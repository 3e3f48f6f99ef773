#!/usr/bin/env python
"""Speed and peak memory of the PoseMamba lifter, printed as markdown tables.

For each device (CPU, and CUDA when present), scan backend (``pose3d.scan.available_backends``),
preset (XS, S, B, L) and clip length T (27, 81, 243) it measures

* inference at batch 1 and batched (``--batch``, default 8 clips): ``model.eval()`` under
  ``torch.inference_mode()``, one forward pass on (B, T, 17, 2);
* one training step (``--train-batch``, default 4 clips): forward, ``pose3d.losses.training_loss``,
  backward and an AdamW step, in train mode;

and reports frames per second (B * T frames / median seconds per call, after ``--warmup``
untimed calls and over ``--repeats`` timed ones) with the milliseconds per call, and the peak
memory of the call: on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before
the first call (weights and inputs), on CPU the growth of the peak resident set size
(``ru_maxrss``) above the resident size before the first call. Every configuration runs in a fresh
subprocess, so one configuration's peak cannot hide another's.

A configuration whose calls would take more than ``--budget`` seconds in all (default 60: the
pure-torch scan on CPU at T = 243 and the larger models' training steps) is skipped, and the
table says so with the time it was estimated to take: from a smaller T of the same preset (cost
grows about linearly with T), a smaller preset at the same T (skipped S means skipped B and L),
or the first timed call.

Full run (on an otherwise idle machine; timings taken while other jobs run are meaningless):

    python benchmarks/lifter_speed.py --json benchmarks/lifter_speed.json | tee benchmarks/lifter_speed.md

Quick check that it works (S at T = 27 only, small batches, one repeat):

    python benchmarks/lifter_speed.py --quick

Other flags: ``--out FILE`` (the tables there instead of the standard output), ``--devices cpu,cuda``, ``--backends fused,torch``, ``--presets S,B``,
``--frames 27,81``, ``--modes infer1,infer,train``, ``--threads N`` (torch's intra-op threads,
which the fused CPU kernel also uses), ``--budget SECONDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("infer1", "infer", "train")
MODE_TITLES = {"infer1": "inference, batch 1", "infer": "inference, batch {batch}", "train": "training step, batch {train_batch}"}
PRESET_ORDER = ("XS", "S", "B", "L")


# --------------------------------------------------------------------------- worker (one configuration)
def _rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def training_step(model, x):
    """One training step of ``model`` on the random clips ``x`` (batch, T, 17, 2): pose3d's
    training loss against random 3D targets, AdamW. Returns the step as a function."""
    import torch

    from pose3d.losses import training_loss

    model.train()
    target = 0.3 * torch.randn(*x.shape[:-1], 3, device=x.device)
    has_3d = torch.ones(x.shape[0], device=x.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def call():
        loss, _ = training_loss(model(x), target, x, has_3d)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return call


def run_worker(spec: dict) -> dict:
    import torch

    from pose3d.model import build_model, count_parameters

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    T, batch, mode = spec["frames"], spec["batch"], spec["mode"]
    model = build_model(spec["preset"], max_frames=T, scan_backend=spec["backend"]).to(device)
    x = 0.3 * torch.randn(batch, T, 17, 2, device=device)
    cuda = device.type == "cuda"

    if mode == "train":
        call = training_step(model, x)
    else:
        model.eval()

        def call():
            with torch.inference_mode():
                model(x)

    def timed() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _rss_bytes()
    result = {**spec, "parameters": count_parameters(model), "threads": torch.get_num_threads()}
    budget, calls = spec["budget"], spec["warmup"] + spec["repeats"]
    times = []
    for i in range(calls):
        seconds = timed()
        if i < spec["warmup"]:
            # stop when what is left would blow the budget (the first call pays one-time costs,
            # so judge by the last warm-up call)
            if i == spec["warmup"] - 1 and seconds * spec["repeats"] > budget:
                return {**result, "skipped": f"~{seconds * spec['repeats']:.0f} s for {spec['repeats']} calls "
                                             f"({seconds:.1f} s each)", "estimate_s": seconds}
            continue
        times.append(seconds)
    peak = (torch.cuda.max_memory_allocated(device) if cuda else _peak_rss_bytes()) - base
    median = statistics.median(times)
    return {**result, "times_s": times, "median_s": median, "fps": batch * T / median,
            "peak_mib": max(peak, 0) / 2**20}


# --------------------------------------------------------------------------- driver
def machine_description(devices: list[str]) -> list[tuple[str, str]]:
    import torch

    from pose3d import scan

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [("CPU", cpu), ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
            ("torch", torch.__version__), ("torch threads", str(torch.get_num_threads())),
            ("python", platform.python_version()), ("platform", platform.platform())]
    try:
        import psutil

        rows.append(("memory", f"{psutil.virtual_memory().total / 2**30:.0f} GiB"))
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        note = " (busy: timings are distorted)" if load > 0.5 * (usable or 1) else ""
        rows.append(("load average (1 min)", f"{load:.2f}{note}"))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append((f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                      f"compute {props.major}.{props.minor}, CUDA {torch.version.cuda}"))
    for device in devices:
        rows.append((f"scan backends ({device})", ", ".join(scan.available_backends(device))))
    try:
        from importlib.metadata import version

        rows.append(("mamba-ssm", version("mamba-ssm")))
    except Exception:
        pass
    return rows


def estimate_seconds(results: dict, key: tuple, args) -> tuple[float, str] | None:
    """(seconds, basis) when the configuration ``key`` = (device, backend, mode, preset, T) is
    estimated from the results so far to take more than the budget in all; else None.

    Rough CPU cost model, used only to avoid starting calls that take minutes: time grows
    linearly with T and with the batch, a training step costs about three forward passes,
    and a larger preset never costs less than a smaller one."""
    device, backend, mode, preset, T = key
    calls = args.warmup + args.repeats
    batch = {"infer1": 1, "infer": args.batch, "train": args.train_batch}[mode]

    def per_clip(r):  # seconds per call per clip of the result r, or None
        if r and "median_s" in r:
            return r["median_s"] / r["batch"]
        if r and r.get("total_estimate_s"):
            return r["total_estimate_s"] / calls / r["batch"]
        return None

    guesses = []
    smaller = [t for t in args.frames if t < T]
    if smaller:  # the same configuration at the next smaller T
        t = max(smaller)
        seconds = per_clip(results.get((device, backend, mode, preset, t)))
        if seconds is not None:
            guesses.append((seconds * batch * T / t * calls, f"T={t}"))
    for lighter in PRESET_ORDER[: PRESET_ORDER.index(preset)]:  # a smaller preset at this T
        seconds = per_clip(results.get((device, backend, mode, lighter, T)))
        if seconds is not None:
            guesses.append((seconds * batch * calls, f"{lighter}"))
    if device == "cpu" and mode != "infer1":  # batch 1 inference of the same model
        seconds = per_clip(results.get((device, backend, "infer1", preset, T)))
        if seconds is not None:
            guesses.append((seconds * batch * (3 if mode == "train" else 1) * calls, "batch 1 inference"))
    over = [g for g in guesses if g[0] > args.budget]
    return max(over) if over else None


def run_configuration(spec: dict, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=args.budget * 1.5 + 120)
    except subprocess.TimeoutExpired:
        limit = args.budget * 1.5 + 120
        return {**spec, "skipped": f"timed out after {limit:.0f} s", "total_estimate_s": limit}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**spec, "error": tail[:200]}
    return json.loads(lines[-1])


def cell_speed(r: dict | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return f"error: {r['error']}"
    if "skipped" in r:
        return f"skipped ({r['skipped']})"
    return f"{r['fps']:,.0f} ({r['median_s'] * 1000:,.1f} ms)"


def cell_memory(r: dict | None) -> str:
    if r is None or "peak_mib" not in r:
        return "-"
    return f"{r['peak_mib']:,.0f}"


def print_tables(results: dict, args, devices: list[str], backends: dict[str, list[str]]) -> None:
    titles = {m: MODE_TITLES[m].format(batch=args.batch, train_batch=args.train_batch) for m in args.modes}

    def table(heading: str, device: str, cell) -> None:
        print(f"\n### {heading}\n")
        print("| preset | T | scan | " + " | ".join(titles[m] for m in args.modes) + " |")
        print("|---|---:|---|" + "---:|" * len(args.modes))
        for preset in args.presets:
            for T in args.frames:
                for backend in backends[device]:
                    cells = [cell(results.get((device, backend, m, preset, T))) for m in args.modes]
                    print(f"| {preset} | {T} | {backend} | " + " | ".join(cells) + " |")

    for device in devices:
        name = "CPU" if device == "cpu" else "CUDA"
        table(f"{name}: frames per second (milliseconds per call)", device, cell_speed)
        kind = ("peak allocated above weights and inputs (torch.cuda.max_memory_allocated)" if device != "cpu"
                else "growth of the peak resident set size above the resident size before the first call")
        table(f"{name}: peak memory, MiB ({kind})", device, cell_memory)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", help="comma-separated: cpu, cuda (default: cpu, and cuda when present)")
    parser.add_argument("--backends", help="comma-separated scan backends (default: every available one per device)")
    parser.add_argument("--presets", default="XS,S,B,L")
    parser.add_argument("--frames", default="27,81,243", help="clip lengths T")
    parser.add_argument("--modes", default=",".join(MODES), help="infer1 (batch 1), infer (--batch), train")
    parser.add_argument("--batch", type=int, default=8, help="clips per batched inference call")
    parser.add_argument("--train-batch", type=int, default=4, help="clips per training step")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (the median is reported)")
    parser.add_argument("--budget", type=float, default=60.0, help="skip a configuration estimated to take longer (s)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--out", type=Path, help="write the tables to this file instead of the standard output")
    parser.add_argument("--quick", action="store_true",
                        help="S at T=27, batch 2, training batch 2, 1 warm-up and 1 timed call, budget 30 s")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.frames, args.batch, args.train_batch = "S", "27", 2, 2
        args.warmup, args.repeats, args.budget = 1, 1, 30.0
    args.presets = [p.strip().upper() for p in args.presets.split(",") if p.strip()]
    args.frames = sorted(int(t) for t in args.frames.split(","))
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES] + [p for p in args.presets if p not in PRESET_ORDER]
    if unknown:
        parser.error(f"unknown mode or preset: {', '.join(unknown)}")
    args.presets.sort(key=PRESET_ORDER.index)
    if args.warmup < 1 or args.repeats < 1:
        parser.error("--warmup and --repeats must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return
    if args.out:
        with open(args.out, "w") as f, contextlib.redirect_stdout(f):
            run_benchmark(args)
    else:
        run_benchmark(args)


def run_benchmark(args) -> None:
    import torch

    from pose3d import scan

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("--devices cuda: torch sees no CUDA GPU")
    wanted = args.backends.split(",") if args.backends else None
    backends = {d: [b for b in scan.available_backends(d) if wanted is None or b in wanted] for d in devices}
    if wanted:
        for d in devices:
            missing = [b for b in wanted if b not in backends[d]]
            if missing:
                print(f"note: scan backend(s) {', '.join(missing)} not usable on {d}; left out", file=sys.stderr)

    print("## PoseMamba lifter speed\n")
    print("| | |\n|---|---|")
    for label, value in machine_description(devices):
        print(f"| {label} | {value} |")
    print(f"\nframes per second = clips per call x T / median seconds per call; {args.warmup} warm-up and "
          f"{args.repeats} timed calls per configuration, each configuration in a fresh process; "
          f"configurations estimated above {args.budget:.0f} s are skipped.")
    sys.stdout.flush()

    results: dict[tuple, dict] = {}
    started = time.perf_counter()
    for device in devices:
        for backend in backends[device]:
            for mode in args.modes:
                for preset in args.presets:
                    for T in args.frames:
                        key = (device, backend, mode, preset, T)
                        batch = {"infer1": 1, "infer": args.batch, "train": args.train_batch}[mode]
                        spec = {"device": device, "backend": backend, "mode": mode, "preset": preset,
                                "frames": T, "batch": batch, "warmup": args.warmup, "repeats": args.repeats,
                                "budget": args.budget, "threads": args.threads}
                        estimate = estimate_seconds(results, key, args)
                        if estimate is not None:
                            seconds, basis = estimate
                            results[key] = {**spec, "skipped": f"~{seconds:.0f} s, estimated from {basis}",
                                            "total_estimate_s": seconds}
                        else:
                            results[key] = run_configuration(spec, args)
                            if "estimate_s" in results[key]:
                                results[key]["total_estimate_s"] = results[key]["estimate_s"] * (args.warmup + args.repeats)
                        print(f"{device} {backend} {mode} {preset} T={T}: {cell_speed(results[key])}",
                              file=sys.stderr, flush=True)
    print_tables(results, args, devices, backends)
    print(f"\n(total benchmark time {time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps([{"key": list(k), **v} for k, v in results.items()], indent=1))


if __name__ == "__main__":
    main()
