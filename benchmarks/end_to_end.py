"""End-to-end speed of ``pose3d lift`` (decode, 2D keypoints, 3D lifting) and its memory use
on a short and a long video (the long one is the short one looped).

    python benchmarks/end_to_end.py [VIDEO] [--seconds 10 60] [--device cpu]

VIDEO defaults to ../shared/videos/skater_720p.mp4 (one person, 1280x720). Each run is a
fresh subprocess, so its peak resident memory (ru_maxrss) is its own. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "videos" / "skater_720p.mp4"


def measure(video: str, device: str) -> dict:
    """One run in this process: seconds per stage and frames."""
    from pose3d import progress
    from pose3d.keypoints import create_backend, extract_tracks, select_tracks
    from pose3d.lift import Lifter, LiftSettings
    from pose3d.video import open_source

    progress.set_enabled(False)
    settings = LiftSettings()
    started = time.perf_counter()
    source = open_source(video)
    frames = sum(1 for _ in source)
    decode = time.perf_counter() - started

    lifter = Lifter(None, device=device)
    backend = create_backend("mediapipe")
    started = time.perf_counter()
    source = open_source(video)
    tracks, _ = extract_tracks(source, backend)
    keypoints = time.perf_counter() - started
    chosen, _ = select_tracks(tracks, "main", None, video)
    started = time.perf_counter()
    lifted = lifter.lift_all(chosen, source.info, settings)
    lift = time.perf_counter() - started
    return {"frames": frames, "decode_s": decode, "decode_2d_s": keypoints, "lift_s": lift,
            "main_track_frames": len(lifted[0]), "size": f"{source.info.width}x{source.info.height}"}


def looped(video: Path, seconds: float, folder: Path) -> Path:
    """``video`` repeated to last about ``seconds`` (stream copy, no re-encoding)."""
    import cv2
    import imageio_ffmpeg

    capture = cv2.VideoCapture(str(video))
    duration = capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    out = folder / f"loop_{int(seconds)}s{video.suffix}"
    loops = max(0, math.ceil(seconds / duration) - 1)  # then -t cuts to the exact length
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", str(loops),
                    "-i", str(video), "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stats = measure(args.video, args.device)
        stats["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(stats))
        return
    video = Path(args.video)
    if not video.is_file():
        sys.exit(f"no video at {video}; pass one")
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"device {args.device}\n")
    print("| input | frames | decode fps | decode+2D fps | 3D lift fps | end-to-end fps | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [(video.name, video)] + [(f"{video.stem} looped to {s:g} s", looped(video, s, Path(tmp)))
                                          for s in args.seconds]
        for label, path in inputs:
            run = subprocess.run([sys.executable, __file__, str(path), "--child", "--device", args.device],
                                 capture_output=True, text=True, check=True)
            s = json.loads(run.stdout.strip().splitlines()[-1])
            n = s["frames"]
            total = s["decode_2d_s"] + s["lift_s"]
            print(f"| {label} ({s['size']}) | {n} | {n / s['decode_s']:.0f} | {n / s['decode_2d_s']:.1f} | "
                  f"{s['main_track_frames'] / s['lift_s']:.0f} | {n / total:.1f} | {s['max_rss_mb']:.0f} |", flush=True)
    print("\ndecode+2D: frames decoded (in a thread) and run through BlazePose; 3D lift: the lifter with flip "
          "averaging and post-processing, per frame of the main track; end-to-end: frames / (2D + 3D seconds).")


if __name__ == "__main__":
    main()
