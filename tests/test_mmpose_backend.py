"""The optional mmpose backend's plumbing, with randomly initialised models (no downloads).
Skips unless mmpose is installed (scripts/install_mmpose.sh)."""

from pathlib import Path

import numpy as np
import pytest

mmpose = pytest.importorskip("mmpose", reason="optional mmpose backend not installed")


def _config(package, pattern: str) -> str:
    """A config file shipped inside an OpenMMLab package (its .mim folder)."""
    found = sorted((Path(package.__file__).parent / ".mim" / "configs").rglob(pattern))
    if not found:
        pytest.skip(f"no {pattern} config shipped with {package.__name__}")
    return str(found[0])


def test_random_weight_models_give_h36m_detections():
    import mmdet

    from pose3d.keypoints import create_backend
    from pose3d.skeleton import NUM_JOINTS

    backend = create_backend("mmpose", pose2d=_config(mmpose, "rtmpose-m_8xb256-420e_coco-256x192.py"),
                             det_model=_config(mmdet, "rtmdet_m_8xb32-300e_coco.py"), det_score=0.0)
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    people = backend.find_people(frame)
    for person in people:  # random weights: any number of people, but each in pose3d's format
        assert person.keypoints.shape == (NUM_JOINTS, 2) and person.scores.shape == (NUM_JOINTS,)
        assert np.isfinite(person.keypoints).all() and ((0 <= person.scores) & (person.scores <= 1)).all()
    backend.close()


def test_missing_weights_offline_is_a_clear_error(tmp_path):
    from pose3d.errors import DependencyError
    from pose3d.keypoints import create_backend

    with pytest.raises(DependencyError, match="mmpose"):
        create_backend("mmpose", pose2d=str(tmp_path / "missing_config.py"))
