"""Training and fine-tuning of the PoseMamba lifter (``pose3d train``).

Single process, or several under ``torchrun`` (DistributedDataParallel: gloo with ``--device
cpu``, NCCL on CUDA; each rank takes every world_size-th clip of the same shuffled epoch and
draws its own flips and stochastic-depth masks).

The run folder gets ``config.json``, ``metrics.jsonl`` (one line per epoch), ``last.pt``
(resumable checkpoint, also written every ``checkpoint_minutes``), ``best.pt`` (weights
with the lowest validation P1) and ``final.pt``.

A run ends after ``epochs`` or, with ``time_budget_minutes``, before its clock (wall time, or
the process's CPU time) passes the budget; ``schedule = "cosine"`` warms the learning rate up
and decays it to zero over whichever of the two comes first.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.progress import TextColumn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import codec
from .datasets import H36M_FPS, TRAIN_SUBJECTS, Human36M, Sequence, load_user_sequences
from .devices import choose_device
from .errors import InputError
from .evaluate import evaluate_sequences, test_sequences
from .io_utils import atomic_output, check_writable_dir
from .losses import DEFAULT_WEIGHTS, means, training_loss
from .model import PRESETS, PoseMamba, PoseMambaConfig, build_model, lengthened, preset_config, widened
from .progress import progress_bar
from .sampling import ClipSampler
from .skeleton import bone_lengths
from .weights import average_weights, save_weights

log = logging.getLogger(__name__)


def _is_number(value, kind) -> bool:
    """isinstance(value, kind), with bools excluded (True is an int to Python, not to a config)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _is_interval(value, lowest: float, highest: float) -> bool:
    """``value`` is [low, high] with lowest <= low <= high <= highest."""
    return (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v, (int, float)) for v in value)
            and lowest <= value[0] <= value[1] <= highest)


@dataclass
class TrainConfig:
    out_dir: str = "runs/train"
    data: str | None = None            # Human3.6M folder (poses_3d.npz, sh_2d.npz, cameras.json)
    user_data: str | None = None       # the user's own .npz (see pose3d.datasets)
    input_2d: str = "sh"               # Human3.6M 2D input: Stacked-Hourglass detections or GT
    virtual_cameras: float = 0.0       # Human3.6M views from raised/lowered virtual cameras, per real view
    virtual_pitch: tuple[float, float] = (-30.0, 50.0)  # their pitch range, degrees (+ looks down)
    detection_error_scale: tuple[float, float] = (1.0, 1.0)  # each SH clip's detector error x U(low, high)
    preset: str = "S"
    model: dict = field(default_factory=dict)  # overrides of PoseMambaConfig fields
    objective: str = "clips"           # clips: the whole network; frames: its frame lifter alone on single
                                       # frames; refine: all but the frame lifter, on clips (model.frame_lifter)
    init_weights: str | list[str] | None = None  # fine-tune from these weights (a list: their average)
    widen_init: bool = False           # double init_weights' width first (pose3d.model.widened)
    clip_frames: int = 243
    stride: int | None = None          # frames between clip starts (default: clip_frames)
    frame_steps: tuple[int, ...] = (1,)  # 2 = also train at half the data's frame rate
    data_fps: float = H36M_FPS         # frame rate of the training data
    epochs: int = 120
    steps_per_epoch: int | None = None  # cap; None = every clip once per epoch
    batch_size: int = 4
    lr: float = 2e-4
    schedule: str = "step"             # step: lr x lr_decay per epoch; cosine: warm-up, then cosine to 0
    lr_decay: float = 0.99             # per epoch (schedule "step")
    warmup_steps: int = 0              # linear warm-up (schedule "cosine")
    time_budget_minutes: float | None = None  # stop before this much training time (validation excluded)
    budget_clock: str = "wall"         # wall: elapsed time; cpu: the process's CPU time, all threads
    precision: str = "fp32"            # fp32 | bf16 (autocast of the forward pass; the loss stays fp32)
    threads: int | None = None         # torch's intra-op threads (default: torch's own choice)
    weight_decay: float = 0.01
    flip_prob: float = 0.5
    ema_decay: float = 0.0             # > 0: validate and save an exponential moving average of the weights
    loss_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    val: str = "quick"                 # quick | full | none (needs `data`)
    val_every: int = 1
    seed: int = 0
    device: str = "auto"
    scan: str = "auto"
    checkpoint_minutes: float = 10.0

    def __post_init__(self):
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise InputError(f"unknown loss terms {', '.join(unknown)}; known: {', '.join(DEFAULT_WEIGHTS)}")
        # checked here, before a run folder is made, so a typo fails in one line, not mid-run
        whole_numbers = ("epochs", "batch_size", "clip_frames", "stride", "steps_per_epoch", "val_every", "seed",
                         "warmup_steps", "threads")
        numbers = ("lr", "lr_decay", "weight_decay", "flip_prob", "ema_decay", "data_fps", "checkpoint_minutes",
                   "virtual_cameras", "time_budget_minutes")
        for names, kind, what in ((whole_numbers, int, "a whole number"), (numbers, (int, float), "a number")):
            for name in names:
                value = getattr(self, name)
                if value is not None and not _is_number(value, kind):
                    raise InputError(f"training option {name} must be {what}, not {value!r}")
        for name in ("epochs", "batch_size", "clip_frames", "stride", "steps_per_epoch", "val_every", "lr", "data_fps",
                     "time_budget_minutes", "threads"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"training option {name} must be positive, not {value}")
        if not 0 <= self.ema_decay < 1:
            raise InputError(f"training option ema_decay must lie in [0, 1), not {self.ema_decay}")
        if not 0 < self.lr_decay <= 1:
            raise InputError(f"training option lr_decay must lie in (0, 1], not {self.lr_decay}")
        if self.warmup_steps < 0:
            raise InputError(f"training option warmup_steps must be >= 0, not {self.warmup_steps}")
        if self.weight_decay < 0 or not 0 <= self.flip_prob <= 1 or self.checkpoint_minutes < 0:
            raise InputError("training options weight_decay and checkpoint_minutes must be >= 0 and "
                             f"flip_prob in [0, 1] (got {self.weight_decay}, {self.checkpoint_minutes}, {self.flip_prob})")
        if not _is_interval(self.virtual_pitch, -80, 80):
            raise InputError("training option virtual_pitch must be [low, high] degrees within [-80, 80], "
                             f"not {self.virtual_pitch!r}")
        if not _is_interval(self.detection_error_scale, 0, 4):
            raise InputError("training option detection_error_scale must be [low, high] within [0, 4], "
                             f"not {self.detection_error_scale!r}")
        if self.scales_detection_error and self.input_2d != "sh":
            raise InputError("training option detection_error_scale needs detected 2D (input_2d sh), not ground truth")
        if self.virtual_cameras < 0:
            raise InputError(f"training option virtual_cameras must be >= 0, not {self.virtual_cameras}")
        if not isinstance(self.widen_init, bool):
            raise InputError(f"training option widen_init must be true or false, not {self.widen_init!r}")
        if isinstance(self.init_weights, list) and not (
                self.init_weights and all(isinstance(p, str) for p in self.init_weights)):
            raise InputError(f"training option init_weights must be a path or a list of paths, not {self.init_weights!r}")
        if self.objective in ("frames", "refine") and not (self.init_weights or isinstance(self.model, dict) and self.model.get("frame_lifter")):
            raise InputError(f"training objective {self.objective} needs a model with a frame lifter (model option frame_lifter)")
        if self.widen_init and not self.init_weights:
            raise InputError("training option widen_init needs init_weights (the model to widen)")
        if not self.frame_steps or any(not _is_number(step, int) or step < 1 for step in self.frame_steps):
            raise InputError(f"training option frame_steps must be whole numbers >= 1, not {list(self.frame_steps)}")
        for name, value, choices in (("input_2d", self.input_2d, ("sh", "gt")),
                                     ("val", self.val, ("quick", "full", "none")),
                                     ("schedule", self.schedule, ("step", "cosine")),
                                     ("objective", self.objective, ("clips", "frames", "refine")),
                                     ("budget_clock", self.budget_clock, ("wall", "cpu")),
                                     ("precision", self.precision, ("fp32", "bf16"))):
            if value not in choices:
                raise InputError(f"training option {name} must be one of {', '.join(choices)}, not {value!r}")
        if any(not _is_number(w, (int, float)) or w < 0 for w in self.loss_weights.values()):
            raise InputError(f"loss weights must be numbers >= 0: {self.loss_weights}")
        try:
            preset_config(self.preset)
        except ValueError:
            raise InputError(f"training option preset must be one of {', '.join(PRESETS)}, not {self.preset!r}") from None
        if not isinstance(self.model, dict):
            raise InputError(f"training option model must be a table of PoseMamba options, not {self.model!r}")
        unknown = sorted(set(self.model) - {f.name for f in fields(PoseMambaConfig)})
        if unknown:
            raise InputError(f"unknown model options {', '.join(unknown)}; "
                             f"known: {', '.join(f.name for f in fields(PoseMambaConfig))}")

    @property
    def scales_detection_error(self) -> bool:
        return tuple(self.detection_error_scale) != (1, 1)

    @classmethod
    def from_file(cls, path: str | Path) -> dict:
        """Fields from a .json or .toml file (unknown keys are an error)."""
        path = Path(path)
        try:
            if path.suffix == ".toml":
                import tomllib

                values = tomllib.loads(path.read_text())
            else:
                values = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read training config ({exc})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{path}: unknown training options {', '.join(unknown)}")
        return values


# --------------------------------------------------------------------------- distributed
# Rank 0 validates while the other ranks wait in a barrier, and a full validation (minutes on a
# GPU, the better part of an hour on a CPU) would outlast the collectives' default 10-minute
# timeout, after which NCCL's watchdog kills the waiting ranks. Sharing the validation out
# would need its per-view results gathered, for a few minutes saved; a long timeout is simpler.
# It only delays noticing a rank that died, which torchrun notices first anyway.
DDP_TIMEOUT = datetime.timedelta(hours=3)


def _ddp_backend(device: torch.device) -> str:
    """The process group's backend follows the training device: NCCL moves CUDA tensors only."""
    return "nccl" if device.type == "cuda" else "gloo"


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); under torchrun, initialises the process group for ``device``
    (which :func:`_device_for` has already made current)."""
    world = _world_size()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=_ddp_backend(device), timeout=DDP_TIMEOUT)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device_for(config: TrainConfig, world: int) -> torch.device:
    """The training device; under torchrun with CUDA, this rank's GPU (LOCAL_RANK), made current
    before the process group exists so that NCCL's communicator binds to it."""
    device = choose_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def _rank_seed(seed: int, rank: int) -> int:
    """The torch seed of one rank after the model is built: each rank draws its own stochastic-depth
    masks (the same seed everywhere would drop the same blocks of every rank's clips)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


# --------------------------------------------------------------------------- data
def _training_sequences(config: TrainConfig) -> tuple[list[Sequence], list[Sequence] | None, str]:
    """(training sequences, validation sequences or None, a description of the data)."""
    if config.virtual_cameras and not config.data:
        raise InputError("virtual_cameras needs --data (the Human3.6M folder: its 3D poses are what they see)")
    if config.scales_detection_error and not config.data:
        raise InputError("detection_error_scale needs --data (the Human3.6M folder: its detections' error is what it scales)")
    train, described = [], []
    h36m = Human36M(config.data) if config.data else None
    if h36m is not None:
        train += h36m.sequences(TRAIN_SUBJECTS, input_2d=config.input_2d)
        described.append(f"Human3.6M {'+'.join(TRAIN_SUBJECTS)} ({config.input_2d} 2D)")
        if config.virtual_cameras:
            low, high = config.virtual_pitch
            train += h36m.virtual_views(TRAIN_SUBJECTS, config.input_2d, config.virtual_cameras,
                                        (low, high), seed=config.seed)
            described.append(f"{config.virtual_cameras:g} virtual camera views per view, pitch {low:g} to {high:g} degrees")
        if config.scales_detection_error:
            described.append("detector error x {:g} to {:g}".format(*config.detection_error_scale))
    if config.user_data:
        train += load_user_sequences(config.user_data)
        described.append(Path(config.user_data).name)
    if not train:
        raise InputError("nothing to train on: give --data (Human3.6M folder) and/or --user-data FILE")
    val = None
    if h36m is not None and config.val != "none":
        val = test_sequences(h36m, config.input_2d, quick=config.val == "quick")
    return train, val, " + ".join(described)


def mean_bone_lengths_m(sequences: list[Sequence]) -> list[float]:
    """Mean of each bone's length in metres over the sequences with 3D (every 10th frame)."""
    lengths = [bone_lengths(codec.model_to_metres(s.joints_3d[::10], s.scale[::10]))
               for s in sequences if s.joints_3d is not None]
    if not lengths:
        return []
    return [float(v) for v in np.concatenate(lengths).mean(axis=0)]


# --------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path: Path, model, optimizer, ema, state: dict, meta: dict) -> None:
    """Resumable state; ``state_dict`` holds the weights to use (the average when there is one),
    so the checkpoint also loads as weights."""
    payload = {"format": "pose3d-checkpoint", "version": 1, "config": asdict(model.config),
               "state_dict": (ema.module if ema else model).state_dict(), "optimizer": optimizer.state_dict(),
               "state": state, "meta": meta}
    if ema:
        payload.update(trained_state_dict=model.state_dict(), ema_state_dict=ema.state_dict())
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def _build_model(config: TrainConfig) -> PoseMamba:
    if config.init_weights:
        paths = config.init_weights if isinstance(config.init_weights, list) else [config.init_weights]
        model, _ = average_weights(paths, scan_backend=config.scan)  # one file: its own weights
        if config.widen_init:
            model = widened(model, seed=config.seed)
        if model.config.max_frames < config.clip_frames:
            log.info("%s was trained on clips up to %d frames: its temporal position embedding is stretched "
                     "to %d", config.init_weights, model.config.max_frames, config.clip_frames)
            model = lengthened(model, config.clip_frames)
        return model.train()
    return build_model(config.preset, max_frames=config.clip_frames, scan_backend=config.scan, **config.model)


# --------------------------------------------------------------------------- schedule and budget
class BudgetClock:
    """Training time so far, in seconds of wall time or of the process's CPU time (all threads:
    a busy machine slows the wall clock, not the CPU clock), with pauses (validation) left out."""

    def __init__(self, kind: str = "wall", already: float = 0.0):
        self._now = time.process_time if kind == "cpu" else time.monotonic
        self._start = self._now() - already
        self._paused_at: float | None = None

    def seconds(self) -> float:
        return (self._paused_at if self._paused_at is not None else self._now()) - self._start

    def pause(self) -> None:
        self._paused_at = self._now()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._start += self._now() - self._paused_at
            self._paused_at = None


def learning_rate(config: TrainConfig, epoch: int, step: int, progress: float) -> float:
    """The rate for the next step. ``progress`` in [0, 1]: how much of the run is done (steps of
    the planned total, or time of the budget, whichever is further)."""
    if config.schedule == "step":
        return config.lr * config.lr_decay ** epoch
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    return config.lr * warmup * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _prefetched(batches, device: torch.device, threaded: bool | None = None):
    """Tensors on ``device`` from numpy batches. On CUDA (or with ``threaded``) the next batch is
    built by a thread, and on CUDA copied from pinned memory without blocking while the current
    step runs. Closing the generator (a budget stop mid-epoch) ends the thread too."""
    if not (device.type == "cuda" if threaded is None else threaded):
        for arrays in batches:
            yield tuple(torch.from_numpy(a) for a in arrays)
        return
    pin = device.type == "cuda"
    ready: queue.Queue = queue.Queue(maxsize=2)
    done, stop = object(), threading.Event()

    def offer(item) -> bool:  # False once the consumer has gone
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        for arrays in batches:
            if not offer(tuple(torch.from_numpy(a).pin_memory() if pin else torch.from_numpy(a) for a in arrays)):
                return
        offer(done)

    producer = threading.Thread(target=produce, daemon=True, name="batch-prefetch")
    producer.start()
    try:
        while (item := ready.get()) is not done:
            yield tuple(t.to(device, non_blocking=True) for t in item)
    finally:
        stop.set()
        producer.join()


def _agree(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is true on any (so all ranks stop at the same step)."""
    if world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# --------------------------------------------------------------------------- training
def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run training as configured; returns the path of the best (or final) weights."""
    device = _device_for(config, _world_size())
    rank, world = _distributed(device)
    out = Path(config.out_dir)
    checkpoint_path = out / "last.pt"
    if resume and not checkpoint_path.is_file():
        raise InputError(f"--resume: no checkpoint at {checkpoint_path}")
    if not resume and rank == 0:
        check_writable_dir(out / "config.json")  # a one-line error now, not after loading the data
    if resume:  # the run's own configuration, with the epoch count the caller gives
        saved = json.loads((out / "config.json").read_text())
        config = TrainConfig(**{**saved, "epochs": config.epochs, "device": config.device, "scan": config.scan})
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    if config.threads:
        torch.set_num_threads(config.threads)

    train_seqs, val_seqs, data_desc = _training_sequences(config)
    sampler = ClipSampler(train_seqs, config.clip_frames, config.stride or config.clip_frames,
                          config.frame_steps, config.flip_prob, config.detection_error_scale)
    model = _build_model(config).to(device)
    if config.objective != "clips" and model.frame_lifter is None:
        raise InputError(f"training objective {config.objective} needs a model with a frame lifter (model option frame_lifter)")
    # "frames" trains the frame lifter alone: the blocks are neither run nor changed. "refine"
    # keeps it as it is: a fresh optimiser's first steps would knock a converged lifter off its minimum
    trained = model.frame_lifter if config.objective == "frames" else model
    if config.objective == "refine":
        model.frame_lifter.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    # the average smooths the last steps' noise out of the weights (a cheap, continuous weight average)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
           if config.ema_decay else None)
    state = {"epoch": 0, "batch": 0, "best_p1": math.inf, "step": 0}
    if resume:
        payload = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload.get("trained_state_dict", payload["state_dict"]))
        if ema and "ema_state_dict" in payload:
            ema.load_state_dict(payload["ema_state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        state = payload["state"]
        log.info("resuming %s at epoch %d, batch %d", out, state["epoch"] + 1, state["batch"])
    elif rank == 0:  # the folder was made by check_writable_dir above
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    meta = {"preset": config.preset, "clip_frames": config.clip_frames,
            "fps": config.data_fps / min(config.frame_steps), "frame_steps": list(config.frame_steps),
            "train_data": data_desc, "reference_bone_lengths_m": mean_bone_lengths_m(train_seqs)}
    ddp_model = (torch.nn.parallel.DistributedDataParallel(trained, gradient_as_bucket_view=True)
                 if world > 1 else trained)
    torch.manual_seed(_rank_seed(config.seed, rank))

    scored = ema.module if ema else model  # the weights that are validated and saved
    clock = BudgetClock(config.budget_clock, state.get("clock_seconds", 0.0))
    budget = 60.0 * config.time_budget_minutes if config.time_budget_minutes else math.inf
    planned_steps = None  # known once the first epoch's clips are drawn
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    last_save = time.monotonic()
    out_of_time = False
    epoch = state["epoch"] - 1  # the last epoch done, should the loop not run
    for epoch in range(state["epoch"], config.epochs):
        clips = sampler.clips(np.random.default_rng([config.seed, epoch]))  # identical on every rank
        rng = np.random.default_rng([config.seed, epoch, rank])  # this rank's flips and error scales
        per_rank = len(clips) // (config.batch_size * world)
        if config.steps_per_epoch:
            per_rank = min(per_rank, config.steps_per_epoch)
        planned_steps = planned_steps or per_rank * config.epochs
        mine = clips[rank::world][: per_rank * config.batch_size]
        sums, count, started, step_seconds = {}, 0, time.monotonic(), 0.0
        model.train()
        if config.objective == "refine":  # the kept lifter gives the blocks its estimate without dropout
            model.frame_lifter.eval()
        with progress_bar(TextColumn("loss {task.fields[loss]:.4f}")) as progress:
            task = progress.add_task(f"epoch {epoch + 1}/{config.epochs}", total=per_rank, loss=0.0)
            batches = _prefetched(sampler.batches(rng, config.batch_size, mine), device)
            for b, (x, y, has_t) in enumerate(batches):
                if b < state["batch"]:  # resuming inside this epoch
                    progress.advance(task)
                    continue
                before = clock.seconds()
                # the last step must end inside the budget: stop when one more would not (ranks agree)
                out_of_time = budget < math.inf and _agree(before + step_seconds > budget, world, device)
                if out_of_time:
                    break
                lr = learning_rate(config, epoch, state["step"], max(state["step"] / planned_steps, before / budget))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    pred = ddp_model(x)
                loss, terms = training_loss(pred.float(), y, x, has_t, config.loss_weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema:
                    ema.update_parameters(model)
                state["step"] += 1
                step_seconds = max(step_seconds * 0.9, clock.seconds() - before)  # a cautious estimate
                for k, v in {"loss": loss.detach(), **terms}.items():
                    sums[k] = sums.get(k, 0.0) + v  # on the device: no wait for it each step
                count += 1
                progress.advance(task)
                if b % 50 == 0:
                    mean_loss = means({"loss": sums["loss"]}, count)["loss"]
                    progress.update(task, loss=mean_loss)
                    log.info("epoch %d batch %d/%d loss %.4f", epoch + 1, b, per_rank, mean_loss)
                if rank == 0 and time.monotonic() - last_save > 60 * config.checkpoint_minutes:
                    _save_checkpoint(checkpoint_path, model, optimizer, ema,
                                     {**state, "epoch": epoch, "batch": b + 1, "clock_seconds": clock.seconds()}, meta)
                    last_save = time.monotonic()
        batches.close()  # after a budget stop mid-epoch: ends the prefetching thread
        state["batch"] = 0
        state["clock_seconds"] = clock.seconds()
        record = {"epoch": epoch + 1, "step": state["step"], "lr": optimizer.param_groups[0]["lr"],
                  "seconds": round(time.monotonic() - started, 1),
                  f"{config.budget_clock}_minutes": round(clock.seconds() / 60, 2),
                  **{f"train_{k}": v for k, v in means(sums, count).items()}}
        clock.pause()
        last_epoch = out_of_time or epoch + 1 == config.epochs
        if rank == 0 and val_seqs and ((epoch + 1) % config.val_every == 0 or last_epoch):
            scored.eval()
            # batches of about as many frames at any clip length: one frame per call was mostly overhead
            result = evaluate_sequences(scored, val_seqs, clip_frames=config.clip_frames,
                                        batch_size=max(8, 512 // config.clip_frames),
                                        description=f"validation ({config.val})")
            record.update(val_p1=result.p1, val_p2=result.p2)
            if result.p1 < state["best_p1"]:
                state["best_p1"] = result.p1
                save_weights(out / "best.pt", scored, {**meta, "epochs": epoch + 1, "steps": state["step"],
                                                      "val": {config.val: {"p1": result.p1, "p2": result.p2}}})
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                                         if isinstance(v, float)))
            _save_checkpoint(checkpoint_path, model, optimizer, ema, {**state, "epoch": epoch + 1}, meta)
            last_save = time.monotonic()
        if world > 1:
            dist.barrier()
        clock.resume()
        if out_of_time:
            log.info("time budget of %g minutes reached after %d steps", config.time_budget_minutes, state["step"])
            break
    if rank == 0:
        save_weights(out / "final.pt", scored, {**meta, "epochs": epoch + 1, "steps": state["step"]})
    if world > 1:
        dist.destroy_process_group()
    return out / ("best.pt" if (out / "best.pt").is_file() else "final.pt")
