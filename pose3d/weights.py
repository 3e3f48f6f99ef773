"""Lifter weights: saving, loading and the default model shipped in ``weights/``.

A weights file is ``torch.save`` of a dict: ``format`` ("pose3d-weights"), ``version``,
``config`` (PoseMambaConfig fields), ``state_dict``, and ``meta``: training facts that
inference needs (``fps``: the frame rate it was trained at, ``reference_bone_lengths_m``:
the mean bone lengths of the training subjects, used to put outputs in metres).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from .errors import DependencyError, InputError
from .io_utils import atomic_output
from .model import PoseMamba, PoseMambaConfig

log = logging.getLogger(__name__)

FORMAT = "pose3d-weights"
VERSION = 1
DEFAULT_WEIGHTS_NAME = "posemamba_xs_h36m.pt"


def default_weights_path() -> Path:
    """The shipped weights (the repository's ``weights/`` folder, installed as pose3d._weights)."""
    return Path(str(importlib.resources.files("pose3d._weights").joinpath(DEFAULT_WEIGHTS_NAME)))


def default_weights_status() -> str:
    path = default_weights_path()
    return f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)" if path.is_file() else f"missing ({path})"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(path: str | Path, model: PoseMamba, meta: dict) -> None:
    """Write model weights (float32) and meta atomically."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {"format": FORMAT, "version": VERSION, "config": asdict(model.config),
               "state_dict": {k: v.detach().float().cpu() for k, v in model.state_dict().items()},
               "meta": meta}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_weights(path: str | Path | None = None, *, device: torch.device | str = "cpu",
                 scan_backend: str = "auto") -> tuple[PoseMamba, dict]:
    """(model in eval mode on ``device``, meta with ``path`` and ``sha256`` added).

    ``path`` None loads the shipped default. Training checkpoints (pose3d train) load too.
    """
    path = default_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise (DependencyError if path == default_weights_path() else InputError)(
            f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, "pose3d-checkpoint"):
        raise InputError(f"{path}: not a pose3d weights file")
    if payload.get("version", 0) > VERSION:
        raise InputError(f"{path}: weights format version {payload['version']} is newer than this "
                         f"pose3d understands ({VERSION}); upgrade pose3d")
    model = PoseMamba(PoseMambaConfig(**payload["config"]), scan_backend=scan_backend)
    model.load_state_dict(payload["state_dict"])
    meta = dict(payload.get("meta", {}))
    meta.update(path=str(path), sha256=file_sha256(path))
    return model.to(device).eval(), meta


def average_weights(paths: list[str | Path], *, scan_backend: str = "auto") -> tuple[PoseMamba, dict]:
    """(model, meta): the tensor-by-tensor mean of weights files of one architecture, e.g. the
    best epochs of successive training stages, which often lie in one basin (a "model soup",
    Wortsman et al. 2022). ``meta`` is the first file's, with ``averaged_from`` listing them all."""
    if not paths:
        raise InputError("no weights files to average")
    loaded = [load_weights(p, scan_backend=scan_backend) for p in paths]
    model, meta = loaded[0]
    for other, other_meta in loaded[1:]:
        if other.config != model.config:
            raise InputError(f"cannot average {other_meta['path']} with {meta['path']}: different architectures "
                             f"({asdict(other.config)} vs {asdict(model.config)})")
    states = [m.state_dict() for m, _ in loaded]
    model.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
                           for k, v in states[0].items()})
    meta = {k: v for k, v in meta.items() if k not in ("path", "sha256", "val", "epochs")}
    meta["averaged_from"] = [{"path": m["path"], "sha256": m["sha256"]} for _, m in loaded]
    return model, meta
