"""Video input: one decoder opened per use, and the frame count once the frames are read."""

import cv2
import numpy as np
import pytest

from pose3d import video
from pose3d.video import open_source


def _mjpeg_avi(path, frames: int):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def captures_opened(monkeypatch):
    opened = []

    def counting_capture(*args):
        opened.append(args[0])
        return real(*args)

    real = cv2.VideoCapture
    monkeypatch.setattr(video.cv2, "VideoCapture", counting_capture)
    return opened


def test_opening_reads_the_file_once_and_each_pass_once_more(tmp_path, captures_opened):
    source = open_source(_mjpeg_avi(tmp_path / "v.avi", 12))
    assert len(captures_opened) == 1
    assert (source.info.width, source.info.height, source.info.fps, source.info.num_frames) == (64, 48, 25.0, 12)
    assert [index for index, _ in source] == list(range(12))
    assert len(captures_opened) == 2


def test_a_truncated_file_reports_the_frames_read_without_changing_what_it_said_before(tmp_path, caplog):
    path = _mjpeg_avi(tmp_path / "v.avi", 30)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    source = open_source(path)
    before = source.info
    read = sum(1 for _ in source)
    assert 0 < read < 30 and "decoding stopped" in caplog.text
    assert source.info.num_frames == read and before.num_frames == 30
    assert source.info == before.__class__(**{**vars(before), "num_frames": read})
