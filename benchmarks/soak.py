"""Soak check of batch mode: 20 short videos, 3 of them broken, a Ctrl-C in the middle, then a
rerun to completion. Prints a markdown table of what each run did.

    python benchmarks/soak.py [--source VIDEO] [--workers 2] [--keep DIR]

The good videos are 2-second cuts of VIDEO (default ../shared/videos/traffic_stop_270p.mp4,
else Debian's opencv-doc vtest.avi). Broken ones: a text file named .mp4, a truncated mp4 and
an empty file. Checks after the interrupted run: only complete outputs (every JSON parses),
no temporary files; after the rerun: 17 done, 3 failed, exit code 1 (some failed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "videos" / "traffic_stop_270p.mp4",
              Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")]


def cut_clips(source: Path, folder: Path, count: int) -> None:
    """``count`` 2-second cuts of ``source``, each starting 0.25 s later, in two subfolders."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    folder.mkdir(parents=True)
    for i in range(count):
        sub = folder / ("set_a" if i % 2 else "set_b")
        sub.mkdir(exist_ok=True)
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-ss", str(0.25 * i), "-i", str(source), "-t", "2",
                        "-c:v", "libx264", "-preset", "ultrafast", "-an", str(sub / f"clip{i:02d}.mp4")], check=True)


def make_corpus(source: Path, folder: Path, good: int = 17) -> None:
    cut_clips(source, folder, good)
    (folder / "notes.mp4").write_text("not a video\n")
    data = (folder / "set_a" / "clip01.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 4])
    (folder / "empty.mp4").touch()


def outputs(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=next((c for c in CANDIDATES if c.is_file()), None))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="build the corpus and results here instead of a temporary folder")
    args = parser.parse_args()
    if args.source is None or not args.source.is_file():
        sys.exit("no source video: pass --source VIDEO (one with a person in it)")
    root = args.keep or Path(tempfile.mkdtemp(prefix="pose3d-soak-"))
    corpus, results = root / "videos", root / "results"
    if corpus.exists():
        shutil.rmtree(corpus)
    if results.exists():
        shutil.rmtree(results)
    make_corpus(args.source, corpus)
    command = ["pose3d", "lift", str(corpus), "-o", str(results), "--workers", str(args.workers)]
    print(f"corpus: 20 videos (17 cuts of {args.source.name}, 3 broken); command: {' '.join(command)}\n")
    rows = []

    started = time.monotonic()
    # SIG_DFL in the child: a background shell job would otherwise pass SIGINT down as ignored
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while len([p for p in outputs(results) if p.suffix == ".json" and not p.name.startswith(".")]) < 6:
        if first.poll() is not None:
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate()
    files = outputs(results)
    finished = [p for p in files if not p.name.startswith(".")]
    temporaries = [p for p in files if p.name.startswith(".") and p.name != ".pose3d-batch.json"]
    for p in finished:
        json.loads(p.read_text())  # raises on a half-written file
    rows.append(("run 1, Ctrl-C after 6 outputs", first.returncode, len(finished), "-", "-",
                 len(temporaries), time.monotonic() - started))

    started = time.monotonic()
    second = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    summary = [line for line in second.stderr.splitlines() if " done, " in line][-1]
    done, skipped, failed = (int(summary.split(" done")[0]), int(summary.split(", ")[1].split()[0]),
                             int(summary.split(", ")[2].split()[0]))
    files = outputs(results)
    temporaries = [p for p in files if p.name.startswith(".") and p.name != ".pose3d-batch.json"]
    rows.append(("run 2, to completion", second.returncode, done, skipped, failed, len(temporaries),
                 time.monotonic() - started))
    valid = sum(1 for p in files if p.suffix == ".json" and not p.name.startswith(".") and json.loads(p.read_text()))

    print("| run | exit code | done | skipped | failed | temporary files left | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} | {row[5]} | {row[6]:.0f} |")
    print(f"\nvalid results after both runs: {valid} of 17 good videos; failures reported: "
          f"{', '.join(sorted(line.split(':')[0].rsplit('/', 1)[-1] for line in second.stderr.splitlines() if 'failed' in line and '.mp4' in line))}")
    ok = first.returncode == 130 and second.returncode == 1 and valid == 17 and failed == 3 and not temporaries
    print("soak check:", "PASS" if ok else "FAIL")
    if not args.keep:
        shutil.rmtree(root)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
