"""RTMDet + RTMPose (or any COCO-17 top-down model) through mmpose's own inferencer.

Optional: ``pip install 'pose3d[mmpose]'`` after the mmcv build in scripts/install_mmpose.sh.
Weights: give config and checkpoint files (``--mmpose-pose2d``, ``--mmpose-pose2d-weights``,
``--mmpose-det``, ``--mmpose-det-weights``), or let mmpose resolve its model aliases
(default 'human': RTMDet-m + RTMPose-m), which downloads from download.openmmlab.com the
first time (cached by torch.hub afterwards, so later runs work offline).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging

import numpy as np

from ..errors import DependencyError
from ..tracks import Detection
from .convert import COCO_17, to_h36m17

log = logging.getLogger(__name__)


def status() -> str:
    if importlib.util.find_spec("mmpose") is None:
        return "not installed (optional: scripts/install_mmpose.sh)"
    try:
        import mmpose
    except Exception as exc:  # installed but broken, typically mmcv without its ops
        return f"installed but does not import: {type(exc).__name__}: {exc}"
    return f"ok (mmpose {mmpose.__version__}; weights: your files or mmpose aliases)"


class MMPoseBackend:
    name = "mmpose"
    detect_every = 1  # the detector is cheap next to BlazePose-on-tiles: run it every frame
    quiet = staticmethod(contextlib.nullcontext)  # its logs go through Python's logging

    def __init__(self, pose2d: str | None = None, pose2d_weights: str | None = None,
                 det_model: str | None = None, det_weights: str | None = None,
                 device: str = "cpu", det_score: float = 0.5):
        try:
            from mmpose.apis import MMPoseInferencer
        except Exception as exc:
            raise DependencyError(f"the mmpose backend is not usable here ({type(exc).__name__}: {exc}); "
                                  "see scripts/install_mmpose.sh") from None
        self.settings = {"pose2d": pose2d or "human", "pose2d_weights": pose2d_weights,
                         "det_model": det_model, "det_weights": det_weights, "det_score": det_score}
        self.det_score = det_score
        try:
            self._inferencer = MMPoseInferencer(pose2d=pose2d or "human", pose2d_weights=pose2d_weights,
                                                det_model=det_model, det_weights=det_weights,
                                                det_cat_ids=[0], device=device)
        except Exception as exc:
            raise DependencyError(
                f"mmpose could not load its models ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "offline, pass --mmpose-pose2d CONFIG --mmpose-pose2d-weights CHECKPOINT "
                "--mmpose-det CONFIG --mmpose-det-weights CHECKPOINT (files from download.openmmlab.com)") from None

    def close(self) -> None:
        self._inferencer = None

    def find_people(self, frame: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(frame[..., ::-1])  # mmcv's convention
        result = next(self._inferencer(bgr, return_vis=False, bbox_thr=self.det_score))
        people = []
        for person in result["predictions"][0]:
            kp = np.asarray(person["keypoints"], dtype=np.float64)
            if kp.shape != (17, 2):
                raise DependencyError(f"the mmpose model gives {kp.shape[0]} keypoints; pose3d needs a COCO-17 body model")
            scores = np.clip(np.asarray(person["keypoint_scores"], dtype=np.float64), 0.0, 1.0)
            keypoints, conf = to_h36m17(kp, scores, COCO_17)
            box = np.asarray(person["bbox"][0] if np.ndim(person["bbox"]) == 2 else person["bbox"], dtype=np.float64)
            people.append(Detection(keypoints, conf, box[:4]))
        return people

    def refine(self, frame: np.ndarray, boxes: list[np.ndarray]) -> list[Detection | None]:
        return [None] * len(boxes)  # every frame is detected afresh
