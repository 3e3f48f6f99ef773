"""pose3d.render on a small synthetic result and video (no ../shared needed)."""

import logging

import cv2
import numpy as np
import pytest

from pose3d import progress
from pose3d.errors import InputError
from pose3d.render import COLOURS, render_summary, render_video
from pose3d.tracks import LiftResult, Track3D, VideoInfo
from pose3d.video import VideoWriter

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 25.0, 30

# A standing person facing the camera (camera axes, metres, y down, pelvis at 0); the person's
# right side is on the camera's left (x < 0).
STANDING = np.array([
    [0, 0, 0], [-0.12, 0, 0], [-0.13, 0.44, 0], [-0.13, 0.88, 0.02], [0.12, 0, 0], [0.13, 0.44, 0],
    [0.13, 0.88, 0.02], [0, -0.24, 0], [0, -0.49, 0], [0, -0.6, -0.06], [0, -0.72, 0],
    [0.17, -0.47, 0], [0.22, -0.2, 0], [0.24, 0.05, -0.05], [-0.17, -0.47, 0], [-0.22, -0.2, 0], [-0.24, 0.05, -0.05],
])


def make_track(track_id: int, frames: np.ndarray, centre_x: float, interpolated=()) -> Track3D:
    """The standing person waving an arm and drifting sideways, seen by a pinhole camera 4 m away."""
    t = frames / FPS
    joints = np.repeat(STANDING[None], len(frames), axis=0)
    joints[:, 13, 1] -= 0.25 * (1 + np.sin(2 * np.pi * t))  # left wrist up and down
    position = np.stack([centre_x + 0.2 * np.sin(np.pi * t), np.full_like(t, 0.1), np.full_like(t, 4.0)], -1)
    seen = joints + position[:, None]
    keypoints = 300 * seen[..., :2] / seen[..., 2:] + [WIDTH / 2, HEIGHT / 2]
    scores = np.full((len(frames), 17), 0.9)
    interp = np.isin(frames, list(interpolated))
    scores[interp] = 0
    return Track3D(track_id, frames, keypoints, scores, interp, joints_3d=joints)


def make_result(video_path, tracks) -> LiftResult:
    return LiftResult(VideoInfo(str(video_path), FPS, WIDTH, HEIGHT, FRAMES), {"backend": "synthetic"},
                      {"name": "synthetic"}, tracks, tracks[0].id if tracks else None)


def write_video(path, frames=FRAMES, size=(WIDTH, HEIGHT)):
    with VideoWriter(path, FPS, preset="ultrafast") as writer:
        for i in range(frames):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[:] = (90, 100, 80)
            cv2.rectangle(image, (10 + i, 10), (60 + i, 50), (200, 200, 200), -1)
            writer.write(image)
    return path


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return np.array(frames), fps


def colour_near(image, point, colour, radius=4, tolerance=70) -> bool:
    x, y = int(round(point[0])), int(round(point[1]))
    patch = image[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1].astype(int)
    return bool((np.abs(patch - colour).max(axis=-1) < tolerance).any())


@pytest.fixture(autouse=True)
def _quiet():
    progress.set_enabled(False)
    yield
    progress.set_enabled(True)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "source.mp4")


@pytest.fixture
def two_people(video):
    frames = np.arange(FRAMES)
    return make_result(video, [make_track(1, frames, -0.6, interpolated=(10, 11)), make_track(2, frames[5:], 0.6)])


def test_render_video(two_people, tmp_path):
    out = tmp_path / "render.mp4"
    stats = render_video(two_people, out, size=480)
    frames, fps = read_video(out)
    left_width = 640  # 320x240 scaled to 480 high; the 3D panel is square
    assert frames.shape == (FRAMES, 480, left_width + 480, 3)
    assert stats["frames"] == FRAMES and stats["size"] == [left_width + 480, 480]
    assert fps == pytest.approx(FPS, rel=0.01)
    # the video is there: the source's background colour in the left panel's corner
    assert np.abs(frames[3, 470, 10].astype(int) - (90, 100, 80)).max() < 25
    # bone colours near the middle of the person's shins (left: joints 5-6, right: 2-3), frame 20
    track = two_people.tracks[0]
    keypoints = track.keypoints[20] * 2  # output pixels
    assert colour_near(frames[20], (keypoints[5] + keypoints[6]) / 2, COLOURS["left"])
    assert colour_near(frames[20], (keypoints[2] + keypoints[3]) / 2, COLOURS["right"])
    # the 3D panel differs between frames (the arm moves) and has skeleton colours
    right = frames[:, :, left_width:].astype(int)
    assert np.abs(right[0] - right[15]).max() > 50
    assert any((np.abs(right[20] - c).max(axis=-1) < 60).sum() > 30 for c in COLOURS.values())


def test_render_without_video(tmp_path, caplog):
    result = make_result(tmp_path / "gone.mp4", [make_track(3, np.arange(FRAMES), 0.0)])
    out = tmp_path / "plain.mp4"
    render_video(result, out, size=240)
    frames, _ = read_video(out)
    assert frames.shape == (FRAMES, 240, 320 + 240, 3)
    keypoints = result.tracks[0].keypoints[12]
    assert colour_near(frames[12], (keypoints[5] + keypoints[6]) / 2, COLOURS["left"], tolerance=90)
    assert frames[12, 5, 300].max() < 50  # dark background, no video


def test_render_summary(two_people, tmp_path):
    out = tmp_path / "summary.png"
    render_summary(two_people, out, num_frames=4, size=240)
    image = cv2.imread(str(out))
    assert image.shape == (2 * 240, 2 * (320 + 240), 3)
    render_summary(two_people, out, num_frames=1, size=240)
    assert cv2.imread(str(out)).shape == (240, 320 + 240, 3)


def test_selected_tracks_and_short_video(two_people, tmp_path, caplog):
    short = write_video(tmp_path / "short.mp4", frames=12)
    with caplog.at_level(logging.WARNING, logger="pose3d.render"):
        stats = render_video(two_people, tmp_path / "short_render.mp4", video=short, track_ids=[2], size=240)
    assert stats["frames"] == 12
    assert "ended after 12" in caplog.text


def test_errors_leave_no_output(two_people, tmp_path):
    out = tmp_path / "bad.mp4"
    wrong_size = write_video(tmp_path / "wrong.mp4", frames=3, size=(160, 120))
    with pytest.raises(InputError, match="160x120"):
        render_video(two_people, out, video=wrong_size)
    with pytest.raises(InputError, match="no tracks"):
        render_video(make_result(wrong_size, []), out)
    with pytest.raises(InputError, match="no track with id 7"):
        render_video(two_people, out, track_ids=[7])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError):
        render_video(two_people, out, video=garbage)
    with pytest.raises(InputError, match="no tracks"):
        render_summary(make_result(wrong_size, []), tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp4", "wrong.mp4"]


def test_interrupted_render_leaves_no_output(two_people, tmp_path, monkeypatch):
    from pose3d import render

    def fail(self, index, frame):
        if index == 5:
            raise KeyboardInterrupt
        return original(self, index, frame)

    original = render._Renderer.compose
    monkeypatch.setattr(render._Renderer, "compose", fail)
    with pytest.raises(KeyboardInterrupt):
        render_video(two_people, tmp_path / "partial.mp4", size=240)
    assert list(tmp_path.iterdir()) == []


def test_3d_view_stands_people_up():
    from pose3d.render import _standing_joints, _ViewCamera

    track = make_track(1, np.arange(FRAMES), 0.0)
    standing = _standing_joints(track)
    assert standing[:, 3, 2].min() == pytest.approx(0.08, abs=0.01)  # ankles just above the floor
    assert (standing[:, 10, 2] > 1.6).all()  # head up
    assert (standing[:, 4, 0] > standing[:, 1, 0]).all()  # left hip on the right, as seen from the front
    track.up = np.array([0.0, -0.8, -0.6])  # seen by a tilted camera: up is no longer -y
    track.joints_3d = track.joints_3d @ np.array([[1, 0, 0], [0, 0.8, 0.6], [0, -0.6, 0.8]])
    assert np.allclose(_standing_joints(track), standing, atol=1e-6)
    camera = _ViewCamera.framing(standing.reshape(-1, 3), 400)
    pixels, depth = camera.project(standing)
    assert (depth > 0).all() and ((pixels > 0) & (pixels < 400)).all()
    assert (pixels[:, 10, 1] < pixels[:, 3, 1]).all()  # the head above the feet on screen


def test_captions_are_drawn_and_clipped_at_the_image_edges(two_people):
    from pose3d.render import _glyphs, _Renderer

    fill, edge, (left, top), advance = _glyphs("frame 12", 18, True)
    assert fill.max() == 1.0 and edge is not None and (edge >= fill - 1e-6).all()  # the outline surrounds the letters
    assert top < 0 < advance  # letters rise above the baseline; the text has a width
    assert _glyphs("frame 123", 18, False)[3] > advance

    renderer = _Renderer(two_people, two_people.tracks, HEIGHT)
    renderer.font_px = 18
    image = np.zeros((40, 60, 3), np.uint8)
    end = renderer._text(image, "frame 12", (40, 10), (255, 255, 255), outline=True)
    assert abs(end - (40 + advance)) <= 3 and image.max() == 255  # drawn, running off the right and top edges


def test_people_stand_where_they_are_in_one_world(two_people, tmp_path):
    """With a world frame (schema version 2) the 3D view places everyone at their root on the
    one floor: a person 2 m further away is drawn further away, both on the floor, with trails."""
    from pose3d.render import TRAIL_COLOUR, _placed_joints, _Renderer
    from pose3d.trajectory import WorldFrame, world_rotation

    near, far = two_people.tracks
    near.root_camera = np.tile([-0.6, 0.7, 4.0], (len(near), 1)) + np.linspace(0, 1, len(near))[:, None] * [1, 0, 0]
    far.root_camera = np.tile([0.6, 0.7, 6.0], (len(far), 1))
    two_people.world = WorldFrame(world_rotation([0.0, -1.0, 0.0]), 1.6)  # level camera 1.6 m up
    renderer = _Renderer(two_people, two_people.tracks, 360)
    assert renderer.world is not None
    placed = [_placed_joints(t, two_people.world) for t in two_people.tracks]
    assert placed[0][:, 0, 1].mean() == pytest.approx(4.0) and placed[1][:, 0, 1].mean() == pytest.approx(6.0)
    for p in placed:  # ankles near the floor (the pelvis is 0.7 m below a 1.6 m camera, legs 0.88 m)
        assert p[:, 3, 2].min() == pytest.approx(0.02, abs=0.01)
    out = tmp_path / "world.mp4"
    render_video(two_people, out, size=360)
    frames, _ = read_video(out)
    right = frames[:, :, 480:].astype(int)
    trail = (np.abs(right - TRAIL_COLOUR).max(axis=-1) < 60).sum(axis=(1, 2))
    assert trail[-1] > 2 * trail[5] + 20  # the near person's trail grows as they move sideways
