"""``pose3d lift FOLDER -o OUTDIR``: many videos, resumable, optionally in parallel.

* Each video under the folder (recursive, ``--glob``) gives ``OUTDIR/<relative path>.json``
  (or .npz), written atomically by the worker that lifted it.
* Resume: ``OUTDIR/.pose3d-batch.json`` records, per finished output, a key made of the
  input's absolute path, size and mtime, the lift settings, the weights' hash and the output
  format. A video whose key matches and whose output exists is skipped; anything else (new,
  changed, failed, interrupted) is done again.
* ``workers`` processes each load the models once and take videos one at a time; the parent
  alone writes the manifest. Ctrl-C stops the workers (their temporary files are removed),
  keeps what finished, and the next run resumes.
* ``executor="ray"`` runs the same jobs as Ray tasks, on this machine or a cluster
  (pose3d.batch_ray, the optional extra ``pose3d[ray]``); planning, manifest and outcomes
  are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InputError, Pose3dError
from .io_utils import atomic_write_text, check_writable_dir
from .lift import LiftSettings
from .video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

MANIFEST = ".pose3d-batch.json"


@dataclass
class BatchJob:
    source: Path
    output: Path
    key: str


@dataclass
class JobOutcome:
    source: str
    status: str            # done | skipped | failed
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    reason: str = ""


def find_videos(root: Path, pattern: str = "**/*") -> list[Path]:
    """Video files under ``root`` matching ``pattern`` (recursive by default), sorted."""
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def job_key(source: Path, settings: LiftSettings, weights_sha256: str, suffix: str) -> str:
    stat = source.stat()
    facts = {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "settings": asdict(settings), "weights": weights_sha256, "format": suffix}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def plan_jobs(root: Path, out_dir: Path, pattern: str, settings: LiftSettings, weights_sha256: str,
              suffix: str = ".json") -> tuple[list[BatchJob], list[JobOutcome]]:
    """(jobs to run, outcomes of the videos skipped as already done)."""
    videos = find_videos(root, pattern)
    if not videos:
        raise InputError(f"{root}: no videos found (pattern {pattern!r}, extensions {', '.join(sorted(VIDEO_EXTENSIONS))})")
    check_writable_dir(out_dir / MANIFEST)
    done = _read_manifest(out_dir)
    jobs, skipped = [], []
    for video in videos:
        output = out_dir / video.relative_to(root).with_suffix(suffix)
        key = job_key(video, settings, weights_sha256, suffix)
        if done.get(str(output.relative_to(out_dir))) == key and output.is_file():
            skipped.append(JobOutcome(str(video), "skipped", reason="finished in an earlier run"))
        else:
            jobs.append(BatchJob(video, output, key))
    return jobs, skipped


def _read_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text()).get("done", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _record(out_dir: Path, job: BatchJob) -> None:
    done = _read_manifest(out_dir)
    done[str(job.output.relative_to(out_dir))] = job.key
    atomic_write_text(out_dir / MANIFEST, json.dumps({"done": done}, indent=1))


# --------------------------------------------------------------------------- workers
_worker: dict = {}


def _init_worker(weights, device: str, scan: str, settings: LiftSettings, threads: int | None) -> None:
    """Load the models once per worker process."""
    import torch

    from .keypoints import create_backend
    from .lift import Lifter
    from .progress import set_enabled

    if threads:
        torch.set_num_threads(threads)
    if multiprocessing.current_process().name != "MainProcess":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
        signal.signal(signal.SIGTERM, _exit_cleanly)
        set_enabled(False)
    _worker.clear()
    try:
        _worker.update(lifter=Lifter(weights, device=device, scan=scan), settings=settings,
                       backend=create_backend(settings.backend, **settings.backend_options))
    except Exception as exc:  # reported per job: a failing initializer would be respawned forever
        _worker["error"] = str(exc) if isinstance(exc, Pose3dError) else f"{type(exc).__name__}: {exc}"


def load_worker(weights, device: str, scan: str, settings: LiftSettings, threads: int | None) -> None:
    """The models of this process, loaded unless they already are with these arguments: for
    executors that reuse worker processes across videos and runs (pose3d.batch_ray)."""
    config = (weights, device, scan, settings, threads)
    if _worker.get("config") != config:
        if _worker.get("backend") is not None:  # another run's 2D model
            _worker["backend"].close()
        _init_worker(*config)
        _worker["config"] = config


def _exit_cleanly(signum, frame):
    raise SystemExit(1)  # unwinds through atomic_output, which removes the temporary file


def run_job(job: BatchJob) -> JobOutcome:
    """One video with this process's models (:func:`load_worker`); errors become the outcome."""
    from .export import write_result
    from .lift import lift_video

    started = time.perf_counter()
    if "error" in _worker:
        return JobOutcome(str(job.source), "failed", reason=_worker["error"])
    try:
        result = lift_video(job.source, _worker["lifter"], _worker["settings"], backend=_worker["backend"])
        write_result(result, job.output)
    except Pose3dError as exc:
        return JobOutcome(str(job.source), "failed", reason=str(exc), seconds=time.perf_counter() - started)
    except Exception as exc:  # a bug must not stop the other videos
        log.debug("internal error on %s", job.source, exc_info=True)
        return JobOutcome(str(job.source), "failed", reason=f"internal error: {type(exc).__name__}: {exc}",
                          seconds=time.perf_counter() - started)
    return JobOutcome(str(job.source), "done", frames=result.video.num_frames,
                      people=len(result.tracks), seconds=time.perf_counter() - started)


def _run_indexed(item: tuple[int, BatchJob]) -> tuple[int, JobOutcome]:
    return item[0], run_job(item[1])


def run_batch(jobs: list[BatchJob], out_dir: Path, *, weights, device: str, scan: str, settings: LiftSettings,
              workers: int = 1, on_outcome=None, executor: str = "local", ray_options=None) -> list[JobOutcome]:
    """Run the jobs; ``on_outcome(outcome)`` is called as each finishes (progress, status).

    ``executor``: "local" (``workers`` processes on this machine) or "ray" (one Ray task per
    video, placed by ``ray_options``, a pose3d.batch_ray.RayOptions; ``workers`` is unused:
    the free CPUs and GPUs decide how many videos run at once).

    KeyboardInterrupt propagates after the workers are stopped; finished outputs are kept,
    and those already recorded in the manifest are skipped by the next run (one written in
    the instant before the interrupt, not yet recorded, is done again)."""
    outcomes = []

    def finished(job: BatchJob, outcome: JobOutcome) -> None:
        if outcome.status == "done":
            _record(out_dir, job)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', not {executor!r}")
    if not jobs:
        return outcomes
    if executor == "ray":
        from .batch_ray import RayOptions, run_on_ray

        # closing: an exception here (Ctrl-C while recording) stops the remaining tasks at once
        with contextlib.closing(run_on_ray(jobs, weights=weights, device=device, scan=scan, settings=settings,
                                           options=ray_options or RayOptions())) as results:
            for job, outcome in results:
                finished(job, outcome)
        return outcomes
    if workers <= 1:
        _init_worker(weights, device, scan, settings, None)
        for job in jobs:
            finished(job, run_job(job))
        return outcomes
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (weights, device, scan, settings, threads))
    try:
        for index, outcome in pool.imap_unordered(_run_indexed, enumerate(jobs)):
            finished(jobs[index], outcome)
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM: workers unwind and remove their temporary files
        raise
    finally:
        pool.join()
    return outcomes
