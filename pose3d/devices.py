"""Device choice, made once per command (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import torch

from .errors import DependencyError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DependencyError(f"--device {name} asked for, but torch {torch.__version__} sees no CUDA GPU")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise DependencyError(f"unknown device {name!r}; use auto, cpu or cuda")
