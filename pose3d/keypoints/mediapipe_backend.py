"""BlazePose through mediapipe 0.10.21 (the last release that bundles its models), offline.

The wheel bundles the BlazePose detector and landmark model for its legacy single-person
solution. pose3d packs the same two files into a MediaPipe Tasks bundle (adding the input
normalisation metadata the Tasks API asks for: [-1, 1] for the detector, [0, 1] for the
landmark model), which gives the multi-person PoseLandmarker. Three uses:

* ``track``: the whole frame in video mode (landmarks tracked from frame to frame; the
  detector runs when a person is lost). Fast; finds people taller than about a fifth of
  the frame.
* ``find_people``: the person finder for wide shots: the landmarker on overlapping tiles
  (2x2 and 3x3 grids of tiles at least 120 px high), so that small people are found too.
* ``refine``: the landmark model alone (through OpenCV's TFLite reader, without the
  face-based detector) on a square crop around a tracked person's box, so that people seen
  from behind stay tracked.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DependencyError
from ..io_utils import atomic_output
from ..association import box_iou
from ..tracks import Detection
from .convert import BLAZEPOSE_33, BLAZEPOSE_HIP_TOWARDS_THORAX, to_h36m17

log = logging.getLogger(__name__)

TILE_GRIDS = (2, 3)
TILE_OVERLAP = 0.3
MIN_TILE_HEIGHT = 120      # px: smaller tiles would only find what the whole frame shows
CROP_SCALE = 1.25          # landmark crop side / largest side of the person's box (as mediapipe's ROI)
LANDMARK_INPUT = 256       # px: the landmark model's square input
# input normalisation of the bundled models (from mediapipe's legacy pose graphs)
DETECTOR_MEAN_STD = (127.5, 127.5)
LANDMARKS_MEAN_STD = (0.0, 255.0)


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up logs
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise DependencyError(f"the mediapipe backend needs mediapipe 0.10.21 ({exc}); "
                              "pip install 'mediapipe==0.10.21'") from None
    modules = Path(mp.__file__).parent / "modules"
    if not (modules / "pose_detection" / "pose_detection.tflite").is_file():
        raise DependencyError(f"mediapipe {mp.__version__} bundles no pose model; install mediapipe==0.10.21")
    return mp


@contextlib.contextmanager
def native_logs_silenced():
    """MediaPipe's C++ (absl) logs chatter straight to file descriptor 2, which no Python
    setting reaches. Inside this block fd 2 goes to /dev/null while Python's ``sys.stderr``
    (progress bars, logging, errors) writes to a copy of the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        yield
    finally:
        sys.stderr.flush()
        if sys.stderr is not python_stderr:
            sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def status() -> str:
    try:
        mp = _import_mediapipe()
    except DependencyError as exc:
        return f"unavailable: {exc}"
    return f"ok (mediapipe {mp.__version__}, BlazePose full, bundled)"


@functools.lru_cache(maxsize=None)
def task_bundle() -> str:
    """Path of a PoseLandmarker .task bundle built from the models inside the mediapipe wheel
    (cached under $XDG_CACHE_HOME/pose3d, or a temporary folder when that is not writable)."""
    mp = _import_mediapipe()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    def with_metadata(path: Path, mean: float, std: float) -> bytes:
        model = bytearray(path.read_bytes())
        writer = metadata_writer.MetadataWriter.create(model).add_general_info(path.stem).add_image_input([mean], [std])
        for _ in writer_utils.get_output_tensor_types(model):
            writer.add_feature_output()
        return bytes(writer.populate()[0])

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pose3d"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = Path(tempfile.mkdtemp(prefix="pose3d-"))
    bundle = cache / f"pose_landmarker_full_mediapipe-{mp.__version__}.task"
    if not bundle.is_file():
        modules = Path(mp.__file__).parent / "modules"
        with atomic_output(bundle) as tmp, zipfile.ZipFile(tmp, "w") as z:
            z.writestr("pose_detector.tflite", with_metadata(modules / "pose_detection" / "pose_detection.tflite", *DETECTOR_MEAN_STD))
            z.writestr("pose_landmarks_detector.tflite", with_metadata(modules / "pose_landmark" / "pose_landmark_full.tflite", *LANDMARKS_MEAN_STD))
    return str(bundle)


class MediaPipeBackend:
    name = "mediapipe"
    detect_every = 10  # frames between runs of the tile person finder

    def __init__(self, max_people: int = 4, min_confidence: float = 0.5):
        self._mp = _import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._vision, self._base = vision, BaseOptions(model_asset_path=task_bundle())
        self.max_people, self.min_confidence = max_people, min_confidence
        self.settings = {"model": "BlazePose full (bundled with mediapipe)", "mediapipe": self._mp.__version__,
                         "max_people": max_people, "min_confidence": min_confidence}
        self._tiles = self._landmarker("IMAGE", max_people)
        import cv2

        self._cv2 = cv2
        self._landmark_net = cv2.dnn.readNetFromTFLite(
            str(Path(self._mp.__file__).parent / "modules" / "pose_landmark" / "pose_landmark_full.tflite"))
        self._landmark_outputs = self._landmark_net.getUnconnectedOutLayersNames()
        self._video = None
        self._fps = 30.0

    def _landmarker(self, mode: str, num_poses: int):
        v = self._vision
        with native_logs_silenced():
            return v.PoseLandmarker.create_from_options(v.PoseLandmarkerOptions(
                base_options=self._base, running_mode=getattr(v.RunningMode, mode), num_poses=num_poses,
                min_pose_detection_confidence=self.min_confidence, min_pose_presence_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence))

    quiet = staticmethod(native_logs_silenced)  # used around whole passes (pose3d.keypoints)

    def start(self, fps: float, single: bool) -> None:
        """A fresh video-mode landmarker for a pass over a video (its timestamps restart)."""
        if self._video is not None:
            self._video.close()
        self._video = self._landmarker("VIDEO", 1 if single else self.max_people)
        self._fps = fps

    def close(self) -> None:
        for landmarker in (self._video, self._tiles):
            if landmarker is not None:
                landmarker.close()

    def _detect(self, landmarker, image: np.ndarray, origin=(0, 0), timestamp_ms: int | None = None) -> list[Detection]:
        picture = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        result = landmarker.detect(picture) if timestamp_ms is None else landmarker.detect_for_video(picture, timestamp_ms)
        h, w = image.shape[:2]
        people = []
        for landmarks in result.pose_landmarks:
            lm = np.array([(p.x * w + origin[0], p.y * h + origin[1], p.visibility or 0.0) for p in landmarks])
            people.append(_detection(lm[:, :2], lm[:, 2]))
        return people

    def landmarks_in_box(self, frame: np.ndarray, box: np.ndarray) -> Detection | None:
        """The landmark model on a square crop of ``CROP_SCALE`` x the box's larger side (zero
        padded beyond the frame); None when it finds no body there (presence below
        ``min_confidence``)."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1], 16.0)
        x0, y0, zoom = cx - side / 2, cy - side / 2, LANDMARK_INPUT / side
        crop = self._cv2.warpAffine(frame, np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]]),
                                    (LANDMARK_INPUT, LANDMARK_INPUT), flags=self._cv2.INTER_LINEAR)
        mean, std = LANDMARKS_MEAN_STD
        self._landmark_net.setInput((crop.transpose(2, 0, 1)[None].astype(np.float32) - mean) / std)
        outputs = dict(zip(self._landmark_outputs, self._landmark_net.forward(self._landmark_outputs)))
        # Identity: 39 landmarks x (x, y, z, visibility logit, presence logit) in input pixels
        # (33 body landmarks, then 6 for the tracking ROI); Identity_1: body presence probability
        if float(outputs["Identity_1"].ravel()[0]) < self.min_confidence:
            return None
        landmarks = outputs["Identity"].reshape(39, 5)[:, :4] / (zoom, zoom, zoom, 1.0) + (x0, y0, 0.0, 0.0)
        det = _detection(landmarks[:33, :2], 1.0 / (1.0 + np.exp(-landmarks[:33, 3])))
        # landmarks 33 (body centre) and 34 define the model's own tracking ROI: a square of
        # 2 x their distance around the centre (mediapipe's landmarks-to-ROI step), steadier
        # than the keypoints' box when the person crouches or stretches
        centre, half = landmarks[33, :2], float(np.linalg.norm(landmarks[34, :2] - landmarks[33, :2]))
        det.follow_box = np.concatenate([centre - half, centre + half])
        return det

    def track(self, frame: np.ndarray, index: int) -> list[Detection]:
        return self._detect(self._video, frame, timestamp_ms=int(round(index * 1000.0 / self._fps)))

    def find_people(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        found: list[Detection] = []
        for grid in TILE_GRIDS:
            tw, th = w / (grid - (grid - 1) * TILE_OVERLAP), h / (grid - (grid - 1) * TILE_OVERLAP)
            if th < MIN_TILE_HEIGHT:
                continue
            for gy in range(grid):
                for gx in range(grid):
                    x0, y0 = int(gx * tw * (1 - TILE_OVERLAP)), int(gy * th * (1 - TILE_OVERLAP))
                    for det in self._detect(self._tiles, frame[y0 : int(y0 + th), x0 : int(x0 + tw)], (x0, y0)):
                        if all(box_iou(det.box, d.box) < 0.5 for d in found):
                            found.append(det)
        return found

    def refine(self, frame: np.ndarray, boxes: list[np.ndarray]) -> list[Detection | None]:
        return [self.landmarks_in_box(frame, box) for box in boxes]


def _detection(points: np.ndarray, visibility: np.ndarray) -> Detection:
    """A Detection from BlazePose's 33 landmarks: (33, 2) pixels, (33,) visibility."""
    keypoints, scores = to_h36m17(points, np.clip(visibility, 0.0, 1.0), BLAZEPOSE_33, BLAZEPOSE_HIP_TOWARDS_THORAX)
    return Detection(keypoints, scores, np.concatenate([keypoints.min(axis=0), keypoints.max(axis=0)]))
