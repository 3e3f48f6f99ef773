"""Batch mode's throughput on one machine: ``pose3d lift FOLDER`` with ``--workers 1``,
``--workers 2`` and ``--ray`` (a local Ray instance), in videos per minute, and what Ray adds.

    python benchmarks/batch_scaling.py [--source VIDEO] [--videos 8] [--ray-cpus 1]

The corpus is ``--videos`` 2-second cuts of VIDEO (default ../shared/videos/traffic_stop_270p.mp4,
else Debian's opencv-doc vtest.avi), lifted with the default settings (mediapipe, shipped
weights, CPU). Each run is a fresh ``pose3d lift`` process into an empty output folder, timed
from start to exit: process start, model loading (and Ray's start) included, as a user sees it.
Ray's own costs are measured apart in a fresh process: starting a local instance, and the
round trip of an empty task. Prints markdown tables; needs ``pip install 'pose3d[ray]'``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soak import CANDIDATES, cut_clips

RAY_COSTS = """
import json, time, ray
started = time.perf_counter()
ray.init(address="local", include_dashboard=False, log_to_driver=False)
start_s = time.perf_counter() - started
noop = ray.remote(lambda: None)
ray.get([noop.remote() for _ in range(20)])  # workers started
started = time.perf_counter()
for _ in range(100):
    ray.get(noop.remote())
round_trip_ms = (time.perf_counter() - started) * 10
started = time.perf_counter()
ray.shutdown()
print(json.dumps({"start_s": start_s, "round_trip_ms": round_trip_ms, "shutdown_s": time.perf_counter() - started}))
"""


def lift(corpus: Path, out: Path, options: list[str]) -> tuple[float, str]:
    """Seconds one ``pose3d lift`` run takes, and its summary line."""
    command = [sys.executable, "-m", "pose3d.cli", "lift", str(corpus), "-o", str(out), *options]
    started = time.perf_counter()
    run = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    summary = next((line for line in run.stderr.splitlines() if re.match(r"\d+ done, \d+ skipped, \d+ failed", line)),
                   run.stderr.strip()[-300:])
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({run.returncode}): {summary}")
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=next((c for c in CANDIDATES if c.is_file()), None))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--ray-cpus", default="1", help="--ray-cpus of the Ray run")
    args = parser.parse_args()
    if args.source is None or not args.source.is_file():
        sys.exit("no source video: pass --source VIDEO (one with a person in it)")
    root = Path(tempfile.mkdtemp(prefix="pose3d-scaling-"))
    try:
        corpus = root / "videos"
        cut_clips(args.source, corpus, args.videos)
        load = os.getloadavg()[0]
        runs = [("local", "--workers 1", ["--workers", "1"]), ("local", "--workers 2", ["--workers", "2"]),
                ("Ray, local instance", f"--ray --ray-cpus {args.ray_cpus}", ["--ray", "--ray-cpus", args.ray_cpus])]
        rows = []
        for executor, shown, options in runs:
            seconds, summary = lift(corpus, root / f"out-{len(rows)}", options)
            rows.append((executor, shown, seconds, summary))
        costs = subprocess.run([sys.executable, "-c", RAY_COSTS], capture_output=True, text=True, check=True)
        ray_costs = __import__("json").loads(costs.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?") if Path("/proc/cpuinfo").is_file() else "?"
    print(f"corpus: {args.videos} cuts of 2 s of {args.source.name}; CPU: {cpu}, "
          f"{os.cpu_count()} logical cores; load average (1 min) before the runs: {load:.1f}\n")
    print("| executor | options | wall seconds | videos per minute | summary |")
    print("| --- | --- | ---: | ---: | --- |")
    for executor, shown, seconds, summary in rows:
        print(f"| {executor} | `{shown}` | {seconds:.1f} | {60 * args.videos / seconds:.1f} | {summary} |")
    local2, on_ray = rows[1][2], rows[2][2]
    print("\n| Ray's cost | |")
    print("| --- | ---: |")
    print(f"| starting a local instance (`ray.init`) | {ray_costs['start_s']:.1f} s |")
    print(f"| stopping it (`ray.shutdown`) | {ray_costs['shutdown_s']:.1f} s |")
    print(f"| round trip of an empty task, warm workers | {ray_costs['round_trip_ms']:.1f} ms |")
    print(f"| `--ray` minus `--workers 2`, per video (start and stop included) | {(on_ray - local2) / args.videos:.2f} s |")
    print(f"| the same without the instance's start and stop | "
          f"{(on_ray - local2 - ray_costs['start_s'] - ray_costs['shutdown_s']) / args.videos:.2f} s |")


if __name__ == "__main__":
    main()
