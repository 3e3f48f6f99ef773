"""The ``pose3d`` command line: parses options and calls the library.

Errors the user can fix print one line (``error: ...``) and exit non-zero; ``--debug``
anywhere on the command line shows tracebacks, ``--verbose`` shows progress logs.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from .errors import InputError, Pose3dError

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
    fused = "fused"
    mamba_ssm = "mamba-ssm"


class Input2D(str, Enum):
    sh = "sh"
    gt = "gt"


class ValChoice(str, Enum):
    quick = "quick"
    full = "full"
    none = "none"


DEVICE_OPTION = typer.Option(DeviceChoice.auto, "--device", help="Where the lifter runs.")
SCAN_OPTION = typer.Option(ScanChoice.auto, "--scan", help="Selective scan backend (auto: fused kernel on CPU, mamba-ssm on CUDA when installed).")


# --------------------------------------------------------------------------- info
@app.command()
def info() -> None:
    """Versions, devices, and which scan and 2D backends are usable here."""
    from .environment import describe

    table = Table(show_header=False, box=None)
    for label, value in describe():
        table.add_row(f"[bold]{label}", value)
    console.print(table)


# --------------------------------------------------------------------------- train / eval
@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", help="Training options as .json or .toml (flags override)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)."),
    user_data: Optional[Path] = typer.Option(None, "--user-data", help="Your own .npz of 2D keypoints (+ 3D poses); see docs/training.md."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, metrics.jsonl)."),
    preset: Optional[str] = typer.Option(None, help="PoseMamba size: S, B or L."),
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
                 init_weights=init_weights)
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
    err_console.print(f"weights: {best}")


@app.command("eval")
def evaluate(
    data: Path = typer.Option(..., "--data", help="Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Lifter weights (default: the shipped ones)."),
    input_2d: Input2D = typer.Option(Input2D.sh, "--input-2d", help="Stacked-Hourglass detections or ground-truth 2D."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write {p1, p2, per_action} here."),
    quick: bool = typer.Option(False, "--quick", help="One camera, first 486 frames of each test sequence."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Flip averaging."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: DeviceChoice = DEVICE_OPTION,
    scan: ScanChoice = SCAN_OPTION,
) -> None:
    """Human3.6M protocol on S9 and S11: P1 and P2 in mm, per action and mean."""
    from .devices import choose_device
    from .evaluate import evaluate_h36m
    from .io_utils import atomic_write_text
    from .weights import load_weights

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


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: global flags, logging, and one-line errors with exit codes."""
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    _debug = "--debug" in argv
    verbose = "--verbose" in argv or _debug
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    try:
        app(args=argv, prog_name="pose3d", standalone_mode=False)
    except Pose3dError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click's own usage errors, then genuine bugs
        import click

        if isinstance(exc, click.exceptions.ClickException):
            if _debug:
                raise
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            _fail("interrupted", 130)
        _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def _fail(message: str, code: int) -> None:
    if _debug:
        raise
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
