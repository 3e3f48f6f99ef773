"""Batch mode on Ray (``pose3d lift FOLDER -o OUT --ray [ADDRESS]``): a laptop or a cluster.

The only module of pose3d that imports ray (``pip install 'pose3d[ray]'``), and only when a
batch runs on it. :func:`run_on_ray` is the executor behind
``pose3d.batch.run_batch(..., executor="ray")``; planning, the manifest, resume and the
summary stay in pose3d.batch and the CLI, so both executors give the same files, table and
exit codes.

* One Ray task per video, declaring ``cpus_per_video`` CPUs and ``gpus_per_video`` GPUs. A
  worker process loads the lifter and the 2D backend for its first video and keeps them for
  the next ones (pose3d.batch.load_worker), so Ray's reuse of worker
  processes saves the model loading.
* A task whose worker dies (killed, out of memory, node lost) is retried ``max_retries``
  times; what the dead worker left half-written (atomic_output's hidden temporaries) is
  removed once the video's task has ended. A video that fails (unreadable, no person) fails
  once: its error is its outcome, not a retry.
* Ctrl-C (any exception) stops the queued and running tasks when this module connected to
  Ray (the CLI always does), removes their temporary files and propagates; finished videos
  are kept and recorded. With the caller's own Ray instance, see :func:`_stop`.
* Paths travel as absolute paths: inputs, outputs and ``weights`` must be on storage that
  every node sees at the same path. A worker that cannot read an input or write an output
  says so, naming its node.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from .errors import DependencyError, OutputError
from .io_utils import check_writable_dir, remove_temporaries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """Where and how the tasks run.

    ``address``: "local" starts a Ray instance on this machine (stopped at the end); "auto"
    joins the cluster this machine belongs to (``ray start`` / ``ray up``, or $RAY_ADDRESS);
    "ray://HOST:PORT" joins one through Ray Client. When ray is already initialised in this
    process (a notebook, the tests), that instance is used as it is.
    ``gpus_per_video``: None means 1 with ``device="cuda"``, else 0."""

    address: str = "local"
    cpus_per_video: float = 1.0
    gpus_per_video: float | None = None
    max_retries: int = 3

    def gpus(self, device: str) -> float:
        if self.gpus_per_video is not None:
            return self.gpus_per_video
        return 1.0 if device.startswith("cuda") else 0.0


def import_ray():
    """The ray module, or a DependencyError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise DependencyError("batch mode on Ray needs ray: pip install 'pose3d[ray]'") from None
    return ray


def _connect(ray, address: str) -> bool:
    """Initialise ray unless it is already; True when this call did (and so shuts it down)."""
    if ray.is_initialized():
        return False
    local = address == "local"
    extra = {"include_dashboard": False} if local else {}
    try:
        # worker output stays in Ray's logs: mediapipe's and torch's chatter would drown the
        # table, and each video's error comes back as its outcome
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **extra)
    except Exception as exc:  # ConnectionError, version mismatch, bad address...
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DependencyError(f"cannot start a local Ray instance: {first_line}" if local
                              else f"cannot connect to Ray at {address}: {first_line}") from None
    return True


def _lift_one(job, weights: str | None, device: str, scan: str, settings, threads: int):
    """A Ray task: one video, with this worker process's models (loaded on its first video)."""
    from . import batch, progress
    from .batch import JobOutcome

    node = socket.gethostname()
    for path in (job.source, weights):
        if path is not None and not Path(path).is_file():
            return JobOutcome(str(job.source), "failed", reason=f"cannot read {path} on Ray node {node}: inputs, "
                              "outputs and weights must be on storage every node sees, at the same path")
    try:
        check_writable_dir(job.output)
    except OutputError as exc:
        return JobOutcome(str(job.source), "failed", reason=f"{exc} (on Ray node {node})")
    progress.set_enabled(False)  # a worker's stderr is Ray's log file
    batch.load_worker(weights, device, scan, settings, threads)
    return batch.run_job(job)


def _absolute(job):
    """The job as any node must see it (workers do not share the driver's working folder)."""
    return replace(job, source=Path(job.source).absolute(), output=Path(job.output).absolute())


def _failure(ray, exc: Exception, job, retries: int):
    from .batch import JobOutcome

    first_line = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.OutOfMemoryError)):
        reason = f"its Ray worker died {retries + 1} times ({type(exc).__name__}): {first_line}"
    else:
        reason = f"Ray: {type(exc).__name__}: {first_line}"
    return JobOutcome(str(job.source), "failed", reason=reason)


def run_on_ray(jobs: list, *, weights, device: str, scan: str, settings,
               options: RayOptions = RayOptions()) -> Iterator[tuple]:
    """Yields (job, JobOutcome) as each video's task ends, in the order they end.

    Closing the generator early or an exception in it (KeyboardInterrupt included) stops the
    remaining tasks. Outcomes name ``job.source`` as the caller spelled it."""
    ray = import_ray()
    owned = _connect(ray, options.address)
    pending: dict = {}
    try:
        task = ray.remote(_lift_one).options(
            num_cpus=options.cpus_per_video, num_gpus=options.gpus(device), max_retries=options.max_retries,
            retry_exceptions=False, name="pose3d-lift")
        weights_path = str(Path(weights).absolute()) if weights else None
        threads = max(1, int(options.cpus_per_video))
        queue = iter(jobs)

        def submit() -> None:
            # a bounded queue: enough to keep every slot busy (and show an autoscaler the demand)
            # without handing thousands of tasks to Ray, or to cancel, at once
            slots = ray.cluster_resources().get("CPU", 1) / max(options.cpus_per_video, 1e-3)
            while len(pending) < max(8, int(2 * slots)):
                job = next(queue, None)
                if job is None:
                    return
                ref = task.remote(_absolute(job), weights_path, device, scan, settings, threads)
                pending[ref] = job

        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                    # the video as the caller spelled it, in the source and the reason alike
                    outcome = replace(outcome, source=str(job.source),
                                      reason=outcome.reason.replace(str(_absolute(job).source), str(job.source)))
                except ray.exceptions.RayError as exc:
                    outcome = _failure(ray, exc, job, options.max_retries)
                remove_temporaries(job.output)  # left by a worker killed while writing
                yield job, outcome
            submit()
    except BaseException:
        _stop(ray, pending, owned)
        raise
    finally:
        if owned:
            ray.shutdown()


def _stop(ray, pending: dict, owned: bool) -> None:
    """Stop the unfinished tasks and remove what they left half-written.

    Ray connected by this call: disconnecting ends the job, Ray kills its workers, and their
    temporaries are swept here (one that a worker on another node writes after the sweep is
    removed when the next run redoes that video). The caller's own Ray instance lives on, and
    its queued tasks finish in the background (complete files, not recorded: the next run
    redoes them). No ray.cancel either way: in Ray 2.60 a cancel that crosses a task's
    completion can abort the driver ("Tried to complete task that was not pending")."""
    if not pending:
        return
    if owned:
        log.info("stopping %d Ray tasks", len(pending))
        ray.shutdown()
        for job in pending.values():
            remove_temporaries(job.output)
    else:
        log.warning("%d videos already handed to Ray finish in the background; the next run redoes them",
                    len(pending))
    pending.clear()
