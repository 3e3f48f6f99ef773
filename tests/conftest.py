import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("POSE3D_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (or $POSE3D_SHARED); tests using it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not available")
    return SHARED
