"""What this installation can do: versions, devices, scan and 2D backends (``pose3d info``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform

import torch

from . import __version__
from .scan import available_backends, resolve_backend


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe() -> list[tuple[str, str]]:
    """(label, value) rows describing the installation."""
    from .keypoints import backend_status  # the 2D backends report what they need

    rows = [
        ("pose3d", __version__),
        ("python", platform.python_version()),
        ("platform", platform.platform()),
        ("torch", torch.__version__),
        ("numpy", _version("numpy") or "missing"),
        ("opencv", _version("opencv-contrib-python") or _version("opencv-python") or "missing"),
        ("cpu threads", str(torch.get_num_threads())),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rows.append((f"cuda:{i}", torch.cuda.get_device_name(i)))
    else:
        rows.append(("cuda", "not available"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        usable = ", ".join(available_backends(device))
        rows.append((f"scan backends ({device})", f"{usable}; auto -> {resolve_backend('auto', device)}"))
    rows.append(("mamba-ssm", _version("mamba-ssm") or "not installed"))
    for name, status in backend_status().items():
        rows.append((f"2D backend {name}", status))
    from .weights import default_weights_status

    rows.append(("default weights", default_weights_status()))
    return rows
