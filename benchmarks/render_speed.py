"""How fast ``pose3d render`` is: a synthetic 720p video and result, render_video timed alone.

    python benchmarks/render_speed.py [--frames 300] [--people 1] [--size 720] [--preset veryfast]

Prints the machine and a markdown table. Only render_video is timed (building the inputs is
not); its split says how long the frame loop waited on decoding the source, on drawing and
on the encoder (decoding runs in a thread and ffmpeg in its own process, so they overlap with
drawing and the parts add up to at most the total).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

from pose3d import progress
from pose3d.render import render_video
from pose3d.tracks import LiftResult, Track3D, VideoInfo
from pose3d.video import VideoWriter

FPS = 30.0
# A standing person facing the camera (camera axes, metres, y down, pelvis at the origin).
STANDING = np.array([
    [0, 0, 0], [-0.12, 0, 0], [-0.13, 0.44, 0], [-0.13, 0.88, 0.02], [0.12, 0, 0], [0.13, 0.44, 0],
    [0.13, 0.88, 0.02], [0, -0.24, 0], [0, -0.49, 0], [0, -0.6, -0.06], [0, -0.72, 0],
    [0.17, -0.47, 0], [0.22, -0.2, 0], [0.24, 0.05, -0.05], [-0.17, -0.47, 0], [-0.22, -0.2, 0], [-0.24, 0.05, -0.05],
])


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{model}, {os.cpu_count()} logical cores, load average {load} (at start)"


def synthetic_video(path: Path, frames: int, width: int, height: int) -> None:
    """A textured, moving scene (a gradient, a drifting block and circle) so the encoder has work."""
    gradient = np.linspace(40, 160, width, dtype=np.float32)[None, :, None] * [1.0, 0.9, 0.7]
    base = np.broadcast_to(gradient, (height, width, 3)).astype(np.uint8).copy()
    rng = np.random.default_rng(0)
    base = np.clip(base + rng.integers(-12, 12, base.shape), 0, 255).astype(np.uint8)
    with VideoWriter(path, FPS, preset="ultrafast") as writer:
        for i in range(frames):
            image = np.roll(base, 2 * i, axis=1)
            cv2.rectangle(image, (100 + 3 * i % width, 80), (300 + 3 * i % width, 260), (200, 180, 90), -1)
            cv2.circle(image, (width // 2, height // 2 + int(100 * np.sin(i / 10))), 60, (90, 120, 220), -1)
            writer.write(image)


def synthetic_result(video: Path, frames: int, width: int, height: int, people: int) -> LiftResult:
    """People standing side by side, swinging their arms, seen by a pinhole camera 4 m away."""
    t = np.arange(frames) / FPS
    focal = 1.2 * height
    tracks = []
    for k in range(people):
        joints = np.repeat(STANDING[None], frames, axis=0)
        swing = 0.25 * np.sin(2 * np.pi * 0.7 * t + k)
        joints[:, [13, 16], 2] += np.stack([swing, -swing], -1)
        joints[:, [12, 15], 2] += np.stack([swing, -swing], -1) / 2
        x = (k - (people - 1) / 2) * 1.0 + 0.3 * np.sin(2 * np.pi * 0.2 * t)
        position = np.stack([x, np.full_like(t, 0.1), np.full_like(t, 4.0)], -1)
        seen = joints + position[:, None]
        keypoints = focal * seen[..., :2] / seen[..., 2:] + [width / 2, height / 2]
        scores = np.full((frames, 17), 0.9)
        tracks.append(Track3D(k + 1, np.arange(frames), keypoints, scores, np.zeros(frames, bool), joints_3d=joints))
    return LiftResult(VideoInfo(str(video), FPS, width, height, frames), {"backend": "synthetic"},
                      {"name": "synthetic"}, tracks, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--people", type=int, default=1)
    parser.add_argument("--size", type=int, default=720, help="output height")
    parser.add_argument("--source", default="1280x720", help="source video WxH")
    parser.add_argument("--preset", default="veryfast", help="x264 preset")
    parser.add_argument("--no-video", action="store_true", help="render on a plain background")
    args = parser.parse_args()
    width, height = map(int, args.source.lower().split("x"))
    progress.set_enabled(False)
    print(f"machine: {machine()}; OpenCV threads: {cv2.getNumThreads()}")
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "source.mp4"
        synthetic_video(video, args.frames, width, height)
        result = synthetic_result(video, args.frames, width, height, args.people)
        out = Path(folder) / "render.mp4"
        stats = render_video(result, out, video=None if args.no_video else video, size=args.size, preset=args.preset)
        megabytes = out.stat().st_size / 1e6
    w, h = stats["size"]
    print()
    print("| source | frames | people | output | preset | seconds | frames/s "
          "| waiting on decode / draw / encode (s) | MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {'none' if args.no_video else args.source} | {stats['frames']} | {args.people} | {w}x{h} | {args.preset} "
          f"| {stats['seconds']:.2f} | {stats['fps']:.1f} | {stats['seconds_decode']:.2f} / "
          f"{stats['seconds_draw']:.2f} / {stats['seconds_encode']:.2f} | {megabytes:.1f} |")


if __name__ == "__main__":
    main()
