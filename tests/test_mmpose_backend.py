"""The optional mmpose backend's plumbing: its conversion of mmpose's results with a stand-in
inferencer (always runs), and randomly initialised models (no downloads; skips unless mmpose
is installed, scripts/install_mmpose.sh)."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pose3d.keypoints.convert import COCO_17
from pose3d.skeleton import JOINT_NAMES, NUM_JOINTS


def _mmpose():
    return pytest.importorskip("mmpose", reason="optional mmpose backend not installed")


def _config(package, pattern: str) -> str:
    """A config file shipped inside an OpenMMLab package (its .mim folder)."""
    found = sorted((Path(package.__file__).parent / ".mim" / "configs").rglob(pattern))
    if not found:
        pytest.skip(f"no {pattern} config shipped with {package.__name__}")
    return str(found[0])


class _StandInInferencer:
    """mmpose's MMPoseInferencer as pose3d calls it, giving fixed COCO-17 predictions."""

    def __init__(self, predictions, **options):
        self.predictions, self.options, self.frames = predictions, options, []

    def __call__(self, frame, return_vis, bbox_thr):
        self.frames.append(frame)
        yield {"predictions": [self.predictions]}


@pytest.fixture
def stand_in(monkeypatch):
    """Installs a stand-in mmpose.apis; returns a function that creates the backend with it."""
    def create(predictions, **options):
        apis = types.ModuleType("mmpose.apis")
        apis.MMPoseInferencer = lambda **kw: _StandInInferencer(predictions, **kw)
        monkeypatch.setitem(sys.modules, "mmpose", types.ModuleType("mmpose"))
        monkeypatch.setitem(sys.modules, "mmpose.apis", apis)
        from pose3d.keypoints import create_backend

        return create_backend("mmpose", **options)
    return create


def test_coco_predictions_become_h36m_detections(stand_in):
    rng = np.random.default_rng(0)
    coco = rng.uniform(0, 300, (17, 2))
    scores = rng.uniform(0.2, 0.9, 17)
    scores[COCO_17["l_wrist"]] = 1.3  # some models give heatmap maxima above 1
    people = [{"keypoints": coco.tolist(), "keypoint_scores": scores.tolist(), "bbox": [[10.0, 20.0, 200.0, 290.0]]},
              {"keypoints": (coco + 5).tolist(), "keypoint_scores": scores.tolist(), "bbox": [1.0, 2.0, 3.0, 4.0, 0.9]}]
    backend = stand_in(people, det_score=0.4)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    found = backend.find_people(frame)
    assert len(found) == 2
    first = found[0]
    assert first.keypoints.shape == (NUM_JOINTS, 2) and first.scores.shape == (NUM_JOINTS,)
    np.testing.assert_allclose(first.keypoints[JOINT_NAMES.index("left_knee")], coco[COCO_17["l_knee"]])
    np.testing.assert_allclose(first.keypoints[JOINT_NAMES.index("right_wrist")], coco[COCO_17["r_wrist"]])
    np.testing.assert_allclose(first.keypoints[0], (coco[COCO_17["l_hip"]] + coco[COCO_17["r_hip"]]) / 2)
    assert first.scores[JOINT_NAMES.index("left_wrist")] == 1.0  # clipped to [0, 1]
    np.testing.assert_allclose(first.box, [10, 20, 200, 290])
    np.testing.assert_allclose(found[1].box, [1, 2, 3, 4])  # a flat box with its score dropped
    np.testing.assert_allclose(found[1].keypoints, first.keypoints + 5)
    # mmcv reads BGR: the frame is handed over with its channels reversed
    np.testing.assert_array_equal(backend._inferencer.frames[0], frame[..., ::-1])
    assert backend._inferencer.options["det_cat_ids"] == [0] and backend.settings["det_score"] == 0.4
    assert backend.refine(frame, [np.zeros(4)] * 3) == [None] * 3


def test_a_model_with_another_skeleton_is_a_clear_error(stand_in):
    from pose3d.errors import DependencyError

    backend = stand_in([{"keypoints": np.zeros((133, 2)).tolist(), "keypoint_scores": [0.5] * 133, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(DependencyError, match="133 keypoints; pose3d needs a COCO-17"):
        backend.find_people(np.zeros((10, 10, 3), np.uint8))


def test_random_weight_models_give_h36m_detections():
    mmpose = _mmpose()
    import mmdet

    from pose3d.keypoints import create_backend

    backend = create_backend("mmpose", pose2d=_config(mmpose, "rtmpose-m_8xb256-420e_coco-256x192.py"),
                             det_model=_config(mmdet, "rtmdet_m_8xb32-300e_coco.py"), det_score=0.0)
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    raw = next(backend._inferencer(np.ascontiguousarray(frame[..., ::-1]), return_vis=False, bbox_thr=0.0))
    people = backend.find_people(frame)
    # random weights: any number of people, but every one mmpose found, each in pose3d's format
    assert len(people) == len(raw["predictions"][0])
    for person in people:
        assert person.keypoints.shape == (NUM_JOINTS, 2) and person.scores.shape == (NUM_JOINTS,)
        assert np.isfinite(person.keypoints).all() and ((0 <= person.scores) & (person.scores <= 1)).all()
    backend.close()


def test_missing_weights_offline_is_a_clear_error(tmp_path):
    _mmpose()
    from pose3d.errors import DependencyError
    from pose3d.keypoints import create_backend

    with pytest.raises(DependencyError, match="mmpose"):
        create_backend("mmpose", pose2d=str(tmp_path / "missing_config.py"))
