"""``pose3d lift`` on real videos: does it run, how steady is its output, does Blender import
the BVH? The table of docs/benchmarks.md, "Real videos".

    python benchmarks/real_videos.py [VIDEOS_DIR] [--weights W] [--out DIR] [--no-blender]

VIDEOS_DIR defaults to ../shared/videos. For every video: ``pose3d lift VIDEO -o OUT.json
--bvh OUT.bvh`` in a fresh process (its wall time, start-up and model loading included), then,
when ``blender`` is on the PATH, a headless Blender import of the BVH checked by
tests/blender_check.py (bone names, frame count and rate, head above the pelvis and ankles
below it at four frames). Figures of the main track, from the JSON's ``quality`` block:
bone-length variation (each bone's std / mean over the track, mean over bones and worst bone)
before post-processing ("raw") and after, and jitter (mean joint acceleration, m/s2).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "videos"
BLENDER_CHECK = ROOT / "tests" / "blender_check.py"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def blender_import(bvh: Path, frames: int, fps: float, workdir: Path) -> str:
    """'OK' or the failure lines of tests/blender_check.py for ``bvh``."""
    from pose3d.bvh import BVH_JOINT_NAMES

    expected = workdir / (bvh.stem + "_expected.json")
    expected.write_text(json.dumps({"bone_names": list(BVH_JOINT_NAMES), "frames": frames, "fps": fps,
                                    "check_frames": sorted({0, frames // 3, frames // 2, frames - 1})}))
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                           str(BLENDER_CHECK), "--", str(bvh), str(expected)],
                          capture_output=True, text=True, timeout=300)
    report = [line for line in proc.stdout.splitlines() if line.startswith("blender_check")]
    return "OK" if proc.returncode == 0 else "; ".join(report) or f"blender exited with {proc.returncode}"


def lift(video: Path, weights: str | None, workdir: Path) -> dict:
    out = workdir / (video.stem + ".json")
    command = [sys.executable, "-m", "pose3d.cli", "lift", str(video), "-o", str(out), "--bvh", str(out.with_suffix(".bvh"))]
    if weights:
        command += ["--weights", weights]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return {"video": video.name, "error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    result = json.loads(out.read_text())
    track = next(t for t in result["tracks"] if t["id"] == result["main_track"])
    q = track["quality"]
    frames = track["frames"]
    return {"video": video.name, "frames": result["video"]["frames"], "track_frames": len(frames),
            "interpolated": sum(bool(f["interpolated"]) for f in frames), "fps": result["video"]["fps"],
            "cv_raw_mean": q["raw"]["bone_cv_mean"], "cv_raw_max": q["raw"]["bone_cv_max"],
            "cv_post_max": q["bone_cv_max"], "jitter_post": q["jitter_m_s2"], "jitter_raw": q["raw"]["jitter_m_s2"],
            "seconds": seconds, "bvh": out.with_suffix(".bvh"), "weights_sha256": result.get("model", {}).get("sha256")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="?", default=str(DEFAULT_VIDEOS), help="folder of videos")
    parser.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    parser.add_argument("--out", default=None, help="keep the outputs here (default: a temporary folder)")
    parser.add_argument("--no-blender", action="store_true", help="skip the Blender import check")
    args = parser.parse_args()

    videos = sorted(p for p in Path(args.videos).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        sys.exit(f"no videos in {args.videos}")
    use_blender = not args.no_blender and shutil.which("blender") is not None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.out or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for video in videos:
            row = lift(video, args.weights, workdir)
            if "error" not in row and use_blender:
                row["blender"] = blender_import(row["bvh"], row["track_frames"], row["fps"], workdir)
            rows.append(row)
            print(f"{video.name}: done", file=sys.stderr, flush=True)
    shas = {r.get("weights_sha256") for r in rows if r.get("weights_sha256")}
    print(f"weights sha256: {', '.join(sorted(s[:12] for s in shas)) or 'unknown'}; "
          f"Blender import: {'checked' if use_blender else 'not checked (no blender on the PATH)'}\n")
    print("| video | frames | main-track frames | interpolated | bone CV raw mean | raw max | after post max "
          "| jitter m/s2 (post) | jitter raw | seconds | Blender import |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['video']} | lift failed: {r['error']} |")
            continue
        print(f"| {r['video']} | {r['frames']} | {r['track_frames']} | {r['interpolated']} | {r['cv_raw_mean']:.3f} "
              f"| {r['cv_raw_max']:.3f} | {r['cv_post_max']:.3f} | {r['jitter_post']:.3f} | {r['jitter_raw']:.3f} "
              f"| {r['seconds']:.1f} | {r.get('blender', '-')} |")


if __name__ == "__main__":
    main()
