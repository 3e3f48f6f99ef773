"""Video input (streamed: memory does not grow with the video's length) and H.264 output.

Inputs: a video file (anything FFmpeg in OpenCV decodes: mp4, avi, mov, mkv, webm, ...),
a folder of images (sorted by name), or a single image. Frames come out as RGB uint8
(H, W, 3) arrays with their index.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import InputError, OutputError
from .tracks import VideoInfo

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
ASSUMED_FPS = 30.0
MAX_PLAUSIBLE_FPS = 1000.0


class FrameSource:
    """Iterable over (index, RGB frame); ``info`` holds size, fps and frame count (the count
    is the container's estimate until the frames have been read, then the true one: a new
    VideoInfo, so that one handed out before keeps what it said)."""

    def __init__(self, info: VideoInfo):
        self._info = info

    @property
    def info(self) -> VideoInfo:
        return self._info

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError


class _VideoFile(FrameSource):
    def __init__(self, path: Path, fps: float | None):
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise InputError(f"{path}: cannot decode this file as video")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            container_fps = capture.get(cv2.CAP_PROP_FPS)
            ok, first = capture.read()
        finally:
            capture.release()
        if not ok or first is None:
            raise InputError(f"{path}: no decodable frames (damaged or not a video)")
        source = "user" if fps else "container"
        if not fps:
            fps = container_fps
            if not (math.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS):
                log.warning("%s: no usable frame rate in the file (%r); assuming %g fps (set --fps)",
                            path, container_fps, ASSUMED_FPS)
                fps, source = ASSUMED_FPS, "assumed"
        super().__init__(VideoInfo(str(path), float(fps), first.shape[1], first.shape[0], max(count, 1), source))
        self.path = path

    def __iter__(self):
        # Decoding runs in a thread a few frames ahead of the consumer (bounded queue).
        frames: queue.Queue = queue.Queue(maxsize=8)
        stop = threading.Event()

        def decode():
            capture = cv2.VideoCapture(str(self.path))
            try:
                index = 0
                while not stop.is_set():
                    ok, bgr = capture.read()
                    if not ok:
                        break
                    if bgr.shape[:2] != (self.info.height, self.info.width):
                        log.warning("%s: frame %d changes size to %dx%d; stopping there",
                                    self.path, index, bgr.shape[1], bgr.shape[0])
                        break
                    frames.put((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                    index += 1
            finally:
                capture.release()
                frames.put(None)

        thread = threading.Thread(target=decode, name="pose3d-decode", daemon=True)
        thread.start()
        read = 0
        try:
            while (item := frames.get()) is not None:
                read += 1
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    frames.get(timeout=0.05)
                except queue.Empty:
                    pass
        if read < 0.8 * self.info.num_frames:  # container counts are estimates; warn on big losses only
            log.warning("%s: decoding stopped after %d of %d frames (truncated or damaged file)",
                        self.path, read, self.info.num_frames)
        self._info = replace(self._info, num_frames=read)


class _ImageFiles(FrameSource):
    def __init__(self, paths: list[Path], label: Path, fps: float | None):
        first = _read_image(paths[0])
        super().__init__(VideoInfo(str(label), float(fps or ASSUMED_FPS), first.shape[1], first.shape[0],
                                   len(paths), "user" if fps else "assumed"))
        self.paths = paths

    def __iter__(self):
        for index, path in enumerate(self.paths):
            image = _read_image(path)
            if image.shape[:2] != (self.info.height, self.info.width):
                raise InputError(f"{path}: {image.shape[1]}x{image.shape[0]} differs from the first image "
                                 f"({self.info.width}x{self.info.height}); images of a sequence must share one size")
            yield index, image


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path}: cannot decode this file as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_source(path: str | Path, fps: float | None = None) -> FrameSource:
    """A FrameSource for a video file, an image folder or one image; InputError otherwise."""
    path = Path(path)
    if fps is not None and not (0 < fps <= MAX_PLAUSIBLE_FPS):
        raise InputError(f"--fps must be between 0 and {MAX_PLAUSIBLE_FPS:g}, not {fps}")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not images:
            raise InputError(f"{path}: folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _ImageFiles(images, path, fps)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _ImageFiles([path], path, fps)
    return _VideoFile(path, fps)


class VideoWriter:
    """H.264 mp4 through imageio-ffmpeg (bundled ffmpeg); frames are RGB uint8 of one size.

    ``preset``: an x264 speed preset (ultrafast ... veryslow; default x264's "medium")."""

    def __init__(self, path: str | Path, fps: float, quality: int = 7, preset: str | None = None):
        import imageio.v2 as imageio

        self.path = Path(path)
        try:
            # macro_block_size 2: even sizes are enough for yuv420p; no silent resizing to 16s
            self._writer = imageio.get_writer(str(self.path), format="FFMPEG", fps=fps, codec="libx264",
                                              quality=quality, pixelformat="yuv420p", macro_block_size=2,
                                              ffmpeg_log_level="error",
                                              output_params=["-preset", preset] if preset else None)
        except Exception as exc:
            raise OutputError(f"cannot open {self.path} for writing video: {exc}") from None

    def write(self, frame_rgb: np.ndarray) -> None:
        h, w = frame_rgb.shape[:2]
        if h % 2 or w % 2:  # H.264 in yuv420p needs even sizes
            frame_rgb = np.pad(frame_rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._writer.append_data(frame_rgb)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
