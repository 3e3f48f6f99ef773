"""The ``pose3d`` command line: parses options and calls the library.

Errors the user can fix print one line (``error: ...``) and exit non-zero; ``--debug``
anywhere on the command line shows tracebacks, ``--verbose`` shows progress logs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from .errors import DependencyError, InputError, Interrupted, Pose3dError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn videos of people into 3D human poses (2D keypoints + the PoseMamba lifter).")
console = Console()
err_console = Console(stderr=True)
_debug = False


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ScanChoice(str, Enum):
    auto = "auto"
    torch = "torch"
    chunked = "chunked"
    fused = "fused"
    mamba_ssm = "mamba-ssm"


class Input2D(str, Enum):
    sh = "sh"
    gt = "gt"


class ValChoice(str, Enum):
    quick = "quick"
    full = "full"
    none = "none"


class BudgetClockChoice(str, Enum):
    wall = "wall"
    cpu = "cpu"


class PrecisionChoice(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


DEVICE_OPTION = typer.Option(DeviceChoice.auto, "--device", help="Where the lifter runs.")
SCAN_OPTION = typer.Option(ScanChoice.auto, "--scan", help="Selective scan backend (auto: fused kernel on CPU, mamba-ssm on CUDA when installed, else chunked).")


# --------------------------------------------------------------------------- info
@app.command()
def info() -> None:
    """Versions, devices, and which scan and 2D backends are usable here."""
    from .environment import describe

    table = Table(show_header=False, box=None)
    for label, value in describe():
        table.add_row(f"[bold]{label}", value)
    console.print(table)


# --------------------------------------------------------------------------- lift
class BackendChoice(str, Enum):
    mediapipe = "mediapipe"
    mmpose = "mmpose"


class ResultFormat(str, Enum):
    json = "json"
    npz = "npz"


@app.command()
def lift(
    source: Optional[Path] = typer.Argument(None, metavar="INPUT", show_default=False,
                                            help="Video file, folder of images, one image, or a folder of videos (batch mode)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Result .json or .npz (batch mode: a folder). Default: INPUT's name + .json in the current folder."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", help="Lift these 2D keypoints (.npz/.npy, H36M-17 pixels) instead of running a 2D detector."),
    size: Optional[str] = typer.Option(None, "--size", help="With --keypoints: image size WIDTHxHEIGHT."),
    video: Optional[Path] = typer.Option(None, "--video", help="With --keypoints: the source video (size, fps, and for render)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate, when the file has none or a wrong one."),
    backend: BackendChoice = typer.Option(BackendChoice.mediapipe, "--backend", help="2D keypoint backend."),
    person: Optional[int] = typer.Option(None, "--person", help="Lift the track with this id instead of the main person (ids: see --all-people)."),
    all_people: bool = typer.Option(False, "--all-people", help="Lift every person found, each with a stable id."),
    height: Optional[float] = typer.Option(None, "--height", help="The person's height in metres (default: average Human3.6M body)."),
    focal: Optional[float] = typer.Option(None, "--focal", help="The camera's focal length in pixels (default: the larger image side); places people in depth."),
    fov: Optional[float] = typer.Option(None, "--fov", help="Instead of --focal: the camera's field of view across the larger image side, degrees."),
    up: str = typer.Option("y", "--up", help="The world's up axis in joints_world and --bvh: y (x right, z towards the camera) or z (y away from the camera)."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Flip averaging (slower, more accurate)."),
    postprocess: bool = typer.Option(True, "--postprocess/--raw", help="Smoothing, constant bone lengths and floor contact."),
    max_gap: float = typer.Option(0.5, "--max-gap", help="Seconds a person may go undetected and be filled in by interpolation (marked); a longer gap splits the track."),
    bvh: Optional[Path] = typer.Option(None, "--bvh", help="Also write the main (or --person) track as BVH."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Lifter weights (default: the shipped ones)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Windows per forward pass."),
    glob: str = typer.Option("**/*", "--glob", help="Batch mode: which files under INPUT (recursive by default)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Batch mode: videos processed in parallel."),
    result_format: ResultFormat = typer.Option(ResultFormat.json, "--format", help="Batch mode: output type."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Batch mode on Ray (pip install 'pose3d\\[ray]'): alone, a local Ray instance; 'auto' or ray://HOST:PORT, a cluster. See docs/batch.md."),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus", min=0.01, help="With --ray: CPUs each video's task declares."),
    ray_gpus: Optional[float] = typer.Option(None, "--ray-gpus", min=0, help="With --ray: GPUs each video's task declares (default: 1 with --device cuda, else 0)."),
    mmpose_pose2d: Optional[str] = typer.Option(None, "--mmpose-pose2d", help="mmpose: pose config file or model alias."),
    mmpose_pose2d_weights: Optional[str] = typer.Option(None, "--mmpose-pose2d-weights", help="mmpose: pose checkpoint."),
    mmpose_det: Optional[str] = typer.Option(None, "--mmpose-det", help="mmpose: detector config file or alias."),
    mmpose_det_weights: Optional[str] = typer.Option(None, "--mmpose-det-weights", help="mmpose: detector checkpoint."),
    device: DeviceChoice = DEVICE_OPTION,
    scan: ScanChoice = SCAN_OPTION,
) -> None:
    """Video (or 2D keypoints) to 3D poses: JSON/npz, optionally BVH."""
    from .io_utils import check_writable_dir
    from .lift import LiftSettings
    from .video import IMAGE_EXTENSIONS

    if all_people and person is not None:
        raise InputError("--person and --all-people exclude each other")
    if source is None and keypoints is None:
        raise InputError("give an INPUT video/folder/image, or --keypoints FILE")
    if keypoints is None and (size or video):
        raise InputError("--size and --video go with --keypoints")
    if ray is None and (ray_cpus != 1.0 or ray_gpus is not None):
        raise InputError("--ray-cpus and --ray-gpus go with --ray")
    if source is not None and keypoints is not None:
        raise InputError(f"give INPUT or --keypoints, not both (the video behind the keypoints: --video {source})")
    options = {}
    if backend == BackendChoice.mmpose:
        options = {k: v for k, v in dict(pose2d=mmpose_pose2d, pose2d_weights=mmpose_pose2d_weights,
                                         det_model=mmpose_det, det_weights=mmpose_det_weights).items() if v}
        options["device"] = "cuda" if device != DeviceChoice.cpu and _cuda() else "cpu"
    settings = LiftSettings(backend=backend.value, backend_options=options, people="all" if all_people else "main",
                            person=person, height_m=height, flip=flip, postprocess=postprocess,
                            max_gap_seconds=max_gap, batch_size=batch_size, focal_px=focal, fov_deg=fov, up=up).check()

    if source is not None and keypoints is None and source.is_dir() and not any(
            p.suffix.lower() in IMAGE_EXTENSIONS for p in source.iterdir() if p.is_file()):
        ray_options = None
        if ray is not None:
            from .batch_ray import RayOptions, import_ray

            import_ray()  # without the extra: one line before any work
            if workers > 1:
                raise InputError("--workers is for one machine; with --ray, the free CPUs and GPUs decide how many "
                                 "videos run at once (--ray-cpus, --ray-gpus)")
            ray_options = RayOptions(address=ray, cpus_per_video=ray_cpus, gpus_per_video=ray_gpus)
        _lift_folder(source, output, glob, workers, result_format.value, settings, weights, device.value, scan.value,
                     ray_options)
        return
    if ray is not None:
        raise InputError("--ray is for batch mode: give a folder of videos and -o OUTPUT_FOLDER")

    output = output or Path((keypoints or source).stem + ".json")
    if output.suffix.lower() not in (".json", ".npz"):
        raise InputError(f"{output}: the result must be .json or .npz (BVH: --bvh FILE, CSV: pose3d export)")
    if bvh is not None and bvh.suffix.lower() != ".bvh":
        raise InputError(f"{bvh}: --bvh needs a .bvh file name")
    for path in (output, bvh):
        if path is not None:
            check_writable_dir(path)

    import time

    from .export import write_result
    from .lift import Lifter, lift_keypoints, lift_video

    started = time.perf_counter()
    lifter = Lifter(weights, device=device.value, scan=scan.value)
    if keypoints is not None:
        result = lift_keypoints(keypoints, lifter, settings, size=_size(size), fps=fps, video=video)
    else:
        result = lift_video(source, lifter, settings, fps=fps)
    write_result(result, output)
    if bvh is not None:
        write_result(result, bvh, track_id=person, bvh_options={"up": up})
    seconds = time.perf_counter() - started
    frames = result.video.num_frames
    ids = ", ".join(str(t.id) for t in result.tracks)
    err_console.print(f"{Path(result.video.path).name}: {frames} frame{'s' if frames != 1 else ''}, {len(result.tracks)} "
                      f"{'person' if len(result.tracks) == 1 else 'people'} (track {ids}), {seconds:.1f} s "
                      f"({frames / max(seconds, 1e-9):.1f} frames/s) -> {output}" + (f", {bvh}" if bvh else ""),
                      highlight=False, soft_wrap=True)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _size(text: Optional[str]):
    from .keypoints.files import parse_size

    return parse_size(text) if text else None


def _lift_folder(root: Path, out_dir: Optional[Path], pattern: str, workers: int, fmt: str, settings,
                 weights: Optional[Path], device: str, scan: str, ray_options=None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .batch import plan_jobs, run_batch
    from .weights import default_weights_path, file_sha256

    if out_dir is None:
        raise InputError(f"{root} is a folder of videos: give -o OUTPUT_FOLDER for the results")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: batch mode writes a folder of results; this is a file")
    weights_file = weights or default_weights_path()
    found = weights_file.is_file()
    # the folder's own problems (no videos, unwritable output) come first
    jobs, outcomes = plan_jobs(root, out_dir, pattern, settings, file_sha256(weights_file) if found else "", "." + fmt)
    if not found:
        raise (InputError if weights else DependencyError)(f"weights file not found: {weights_file}")
    where = f"on Ray ({ray_options.address})" if ray_options else f"{workers} worker{'s' if workers > 1 else ''}"
    err_console.print(f"{len(jobs) + len(outcomes)} videos: {len(outcomes)} already done, {len(jobs)} to do "
                      f"({where})", highlight=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console) as progress:
        task = progress.add_task("videos", total=len(jobs))

        def report(outcome):
            mark = "[green]done[/]" if outcome.status == "done" else f"[red]failed[/]: {outcome.reason}"
            progress.console.print(f"{outcome.source}: {mark} ({outcome.seconds:.1f} s)", highlight=False, soft_wrap=True)
            progress.advance(task)

        from . import progress as progress_module

        progress_module.set_enabled(False)  # per-video bars would fight with the overall one
        try:
            outcomes += run_batch(jobs, out_dir, weights=weights, device=device, scan=scan, settings=settings,
                                  workers=workers, on_outcome=report, executor="ray" if ray_options else "local",
                                  ray_options=ray_options)
        except KeyboardInterrupt:
            raise Interrupted("interrupted; finished videos are kept, run the same command again to resume") from None
    table = Table(title=f"pose3d lift {root} -> {out_dir}")
    for column in ("video", "status", "frames", "people", "seconds", "reason"):
        table.add_column(column, justify="right" if column in ("frames", "people", "seconds") else "left")
    for o in sorted(outcomes, key=lambda o: o.source):
        colour = {"done": "green", "skipped": "cyan", "failed": "red"}[o.status]
        table.add_row(str(Path(o.source).relative_to(root)), f"[{colour}]{o.status}", str(o.frames or ""),
                      str(o.people or ""), f"{o.seconds:.1f}" if o.seconds else "", o.reason)
    console.print(table)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    err_console.print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", highlight=False)
    if failed:
        raise Pose3dError(f"{len(failed)} of {len(outcomes)} videos failed (see the table above)")


# --------------------------------------------------------------------------- export / render
class UpAxis(str, Enum):
    y = "y"
    z = "z"


class Units(str, Enum):
    m = "m"
    cm = "cm"


@app.command()
def export(
    result_file: Path = typer.Argument(..., metavar="RESULT", help="A pose3d result (.json or .npz)."),
    output: Path = typer.Option(..., "--output", "-o", help=".bvh (one track), .csv, .npz or .json."),
    track: Optional[int] = typer.Option(None, "--track", help="BVH: which track (default: the main person)."),
    up: UpAxis = typer.Option(UpAxis.y, "--up", help="BVH up axis: y (Blender's importer, Unity, most tools) or z."),
    units: Units = typer.Option(Units.m, "--units", help="BVH units: m or cm (Unreal, MotionBuilder)."),
) -> None:
    """Convert a result to BVH (Blender, Maya, Unity...), CSV or npz."""
    from .export import read_result, write_result

    result = read_result(result_file)
    write_result(result, output, track_id=track, bvh_options={"up": up.value, "units": units.value})
    err_console.print(f"{result_file} -> {output}", highlight=False)


class X264Preset(str, Enum):
    ultrafast = "ultrafast"
    superfast = "superfast"
    veryfast = "veryfast"
    faster = "faster"
    fast = "fast"
    medium = "medium"


@app.command()
def render(
    result_file: Path = typer.Argument(..., metavar="RESULT", help="A pose3d result (.json or .npz)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .mp4 (default: RESULT's name + .mp4)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Source video (default: the path in the result)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also (or, without -o, only) write a still summary of a few frames."),
    frames: int = typer.Option(4, "--png-frames", min=1, max=16, help="Frames in the --png summary."),
    track: Optional[list[int]] = typer.Option(None, "--track", help="Only these track ids (repeat for several)."),
    size: int = typer.Option(720, "--size", min=120, max=2160, help="Output height in pixels."),
    preset: X264Preset = typer.Option(X264Preset.veryfast, "--preset", help="x264 speed: ultrafast is fastest with the biggest files."),
) -> None:
    """Source video with the 2D skeleton beside a 3D view of it, as H.264 mp4."""
    from .export import read_result
    from .io_utils import check_writable_dir
    from .render import render_summary, render_video

    if output is not None and output.suffix.lower() != ".mp4":
        raise InputError(f"{output}: render writes .mp4")
    if png is not None and png.suffix.lower() != ".png":
        raise InputError(f"{png}: --png needs a .png file name")
    result = read_result(result_file)
    if output is None and png is None:
        output = Path(result_file.stem + ".mp4")
    for path in (output, png):
        if path is not None:
            check_writable_dir(path)
    if png is not None:
        render_summary(result, png, video=video, num_frames=frames, track_ids=track or None)
        err_console.print(f"{result_file} -> {png}", highlight=False)
    if output is not None:
        stats = render_video(result, output, video=video, track_ids=track or None, size=size, preset=preset.value)
        err_console.print(f"{result_file} -> {output} ({stats.get('frames', '?')} frames, "
                          f"{stats.get('fps', 0):.1f} frames/s)", highlight=False)


# --------------------------------------------------------------------------- train / eval
@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", help="Training options as .json or .toml (flags override)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)."),
    user_data: Optional[Path] = typer.Option(None, "--user-data", help="Your own .npz of 2D keypoints (+ 3D poses); see docs/training.md."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, metrics.jsonl)."),
    preset: Optional[str] = typer.Option(None, help="PoseMamba size: XS, S, B or L."),
    clip_frames: Optional[int] = typer.Option(None, "--clip-frames", "-T", help="Frames per training clip."),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch"),
    frame_steps: Optional[str] = typer.Option(None, "--frame-steps", help="Comma-separated clip frame steps, e.g. 1,2."),
    input_2d: Optional[Input2D] = typer.Option(None, "--input-2d", help="Human3.6M 2D input."),
    init_weights: Optional[Path] = typer.Option(None, "--init-weights", help="Fine-tune from these weights ('default' = the shipped ones)."),
    val: Optional[ValChoice] = typer.Option(None, help="Validation after epochs."),
    seed: Optional[int] = typer.Option(None),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training before this many minutes (validation excluded)."),
    budget_clock: Optional[BudgetClockChoice] = typer.Option(None, "--budget-clock", help="What the budget counts: wall time or the process's CPU time."),
    precision: Optional[PrecisionChoice] = typer.Option(None, "--precision", help="bf16: autocast the forward pass (CPUs with bf16 units, GPUs)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch intra-op threads."),
    device: DeviceChoice = DEVICE_OPTION,
    scan: ScanChoice = SCAN_OPTION,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
) -> None:
    """Train or fine-tune the lifter (single process, or several under torchrun)."""
    from .train import TrainConfig, train as run_training
    from .weights import default_weights_path

    values = TrainConfig.from_file(config) if config else {}
    given = dict(data=data, user_data=user_data, out_dir=out, preset=preset, clip_frames=clip_frames,
                 epochs=epochs, batch_size=batch_size, lr=lr, steps_per_epoch=steps_per_epoch,
                 input_2d=input_2d and input_2d.value, val=val and val.value, seed=seed,
                 init_weights=init_weights, time_budget_minutes=time_budget, threads=threads,
                 budget_clock=budget_clock and budget_clock.value, precision=precision and precision.value)
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None})
    if values.get("init_weights") == "default":
        values["init_weights"] = str(default_weights_path())
    if frame_steps:
        try:
            values["frame_steps"] = tuple(int(s) for s in frame_steps.split(","))
        except ValueError:
            raise InputError(f"--frame-steps must be comma-separated integers, not {frame_steps!r}") from None
    values.update(device=device.value, scan=scan.value)
    best = run_training(TrainConfig(**values), resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, once
        err_console.print(f"weights: {best}")


@app.command("eval")
def evaluate(
    data: Path = typer.Option(..., "--data", help="Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Lifter weights (default: the shipped ones)."),
    input_2d: Input2D = typer.Option(Input2D.sh, "--input-2d", help="Stacked-Hourglass detections or ground-truth 2D."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write {p1, p2, per_action, per_view} here."),
    quick: bool = typer.Option(False, "--quick", help="One camera, first 486 frames of each test sequence."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Flip averaging."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: DeviceChoice = DEVICE_OPTION,
    scan: ScanChoice = SCAN_OPTION,
) -> None:
    """Human3.6M protocol on S9 and S11: P1 and P2 in mm, per action and mean."""
    from .devices import choose_device
    from .evaluate import evaluate_h36m
    from .io_utils import atomic_write_text, check_writable_dir
    from .weights import load_weights

    if json_out is not None:  # before minutes of evaluation, not after
        if json_out.suffix.lower() != ".json":
            raise InputError(f"{json_out}: --json needs a .json file name")
        check_writable_dir(json_out)
    model, meta = load_weights(weights, device=choose_device(device.value), scan_backend=scan.value)
    result = evaluate_h36m(model, data, clip_frames=model.config.max_frames, input_2d=input_2d.value,
                           quick=quick, flip=flip, batch_size=batch_size)
    table = Table(title=f"Human3.6M {'quick' if quick else 'full'} protocol, {input_2d.value} 2D, "
                        f"flip {'on' if flip else 'off'} ({Path(meta['path']).name})")
    table.add_column("action")
    table.add_column("P1 (mm)", justify="right")
    table.add_column("P2 (mm)", justify="right")
    for action, errs in result.per_action.items():
        table.add_row(action, f"{errs['p1']:.1f}", f"{errs['p2']:.1f}")
    table.add_row("[bold]mean", f"[bold]{result.p1:.1f}", f"[bold]{result.p2:.1f}")
    console.print(table)
    if json_out:
        atomic_write_text(json_out, json.dumps(result.to_json(), indent=2))


# --------------------------------------------------------------------------- cache
cache_app = typer.Typer(no_args_is_help=True, help="The compact Human3.6M training cache (for GPU slices).")
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
def cache_build(
    data: Path = typer.Option(..., "--data", help="Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="The cache file (.npz); --data takes it in place of the folder."),
) -> None:
    """One file holding the Human3.6M folder, 2D losslessly, 3D to 0.5 mm (never commit it)."""
    from .cache import build_cache

    summary = build_cache(data, output)
    err_console.print(f"{data} -> {output}: {summary['bytes'] / 2 ** 20:.1f} MiB, {summary['recordings']} recordings, "
                      f"{summary['views']} views", highlight=False)


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: global flags, logging, and one-line errors with exit codes."""
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    _debug = "--debug" in argv
    verbose = "--verbose" in argv or _debug
    argv = _ray_address_or_local([a for a in argv if a not in ("--debug", "--verbose")])
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    try:
        # standalone_mode=False: click returns 130 for Ctrl-C instead of raising it
        code = app(args=argv, prog_name="pose3d", standalone_mode=False)
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except Pose3dError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except typer.Abort:
        _fail("interrupted", 130)
    except typer.TyperException as exc:  # usage errors: the ClickExceptions of typer's own copy of click
        if _debug:
            raise
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # genuine bugs
        _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def _ray_address_or_local(argv: list[str]) -> list[str]:
    """``--ray`` takes an optional ADDRESS, which click cannot say: a bare ``--ray`` becomes
    ``--ray local``; the next word is its address only when it looks like one."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if arg == "--ray" and not (following in ("local", "auto") or "://" in following
                                   or (":" in following and not following.startswith("-"))):
            out.append("local")
    return out


def _fail(message: str, code: int) -> None:
    if _debug:
        raise
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if code == Interrupted.exit_code:
        # Cleanup (temporary files, worker pools) ran while the interrupt unwound. Skip the
        # interpreter's teardown: a native thread still inside OpenCV or mediapipe when it
        # starts can abort the process ("FATAL: exception not rethrown") instead of exiting 130.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
