"""``pose3d render``: the source video with the 2D skeletons beside a 3D view of the lifted ones.

Each output frame has two panels of the same height:

* left: the source frame (or a dark background when no video is available) with every track's
  2D skeleton, the person's left side, right side and centre in three colours; joints below
  :data:`LOW_SCORE` confidence are faded; interpolated frames are grey and labelled "interp";
  the track id sits above the head;
* right: a square 3D view drawn with OpenCV through a fixed perspective camera looking slightly
  down from the front-right, over a ground grid. With a world frame (pose3d.trajectory, results
  of schema version 2) every person stands where they are, on the floor found for the video,
  with a trail of where their pelvis has been over the floor, and the video's camera is drawn
  as a small pyramid where it stood. Without one (older files) joints are root-relative: the
  person's up direction (``Track3D.up`` when post-processing estimated it, else the camera's up)
  points up, each track stands on its own floor (the 5th percentile of its lower-foot height,
  so the grid does not jump) and moves in place; several tracks stand side by side, in their
  left-to-right order in the video (tracks that never overlap in time share a place).

Everything that does not change from frame to frame (the 3D panel's background, grid and
legend, all projections, the drawing order of the bones) is computed once before the frame
loop; the loop copies, draws a few dozen anti-aliased lines and hands the frame to the encoder.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InputError, OutputError
from .io_utils import atomic_output
from .postprocess import FEET
from .progress import progress_bar
from .skeleton import ANKLE_HEIGHT_M, BONES, H36M_17, JOINT_NAMES, bone_side, side
from .tracks import LiftResult, Track3D
from .trajectory import WorldFrame
from .video import FrameSource, VideoWriter, open_source

log = logging.getLogger(__name__)

LOW_SCORE = 0.3                   # 2D joints below this confidence are drawn faded
COLOURS = {"left": (60, 150, 255), "right": (255, 80, 50), "centre": (70, 220, 100)}  # RGB
INTERPOLATED_COLOUR = (165, 165, 165)
TEXT_COLOUR = (235, 235, 235)
BACKGROUND_2D = (24, 24, 28)      # the left panel when there is no video
BACKGROUND_3D = (30, 32, 38)
FLOOR_COLOUR = (40, 43, 51)
SHADOW_COLOUR = (33, 35, 42)
SHADOW_RADIUS_M = 0.22
GRID_COLOUR = (72, 77, 90)
TRAIL_COLOUR = (215, 195, 110)
CAMERA_COLOUR = (150, 155, 170)
CAMERA_SIZE_M = 0.3

ELEVATION_DEG = 20.0              # the 3D view looks this far down ...
AZIMUTH_DEG = 35.0                # ... from this far right of the video camera's direction
FIELD_OF_VIEW_DEG = 30.0
TRACK_SPACING_M = 1.2             # between people standing side by side in the 3D view
GRID_STEP_M = 0.5
FLOOR_PERCENTILE = 5.0
VIDEO_QUALITY = 6                 # imageio's 0-10 scale; 6 is x264 CRF 20

SHIFT = 4                         # cv2 fixed-point coordinates: 4 fractional bits (sub-pixel lines)
ONE = 1 << SHIFT
HEAD = JOINT_NAMES.index("head")
BONE_COLOURS = [COLOURS[bone_side(b)] for b in BONES]
JOINT_COLOURS = [COLOURS[side(j)] for j in range(len(JOINT_NAMES))]


# --------------------------------------------------------------------------- geometry
def _world_axes(up: np.ndarray | None) -> np.ndarray:
    """Rows: world x (right), y (away from the video camera, level), z (up) in camera axes."""
    up = np.array([0.0, -1.0, 0.0]) if up is None or not np.all(np.isfinite(up)) else np.asarray(up, float)
    up = up / max(np.linalg.norm(up), 1e-9)
    away = np.array([0.0, 0.0, 1.0]) - up * up[2]
    if np.linalg.norm(away) < 1e-6:  # up along the optical axis: any level direction will do
        away = np.array([0.0, 1.0, 0.0]) - up * up[1]
    away /= np.linalg.norm(away)
    return np.stack([np.cross(away, up), away, up])


def _standing_joints(track: Track3D) -> np.ndarray:
    """(N, 17, 3) world joints (x right, y away, z up, metres), the track's floor at z = 0."""
    world = np.nan_to_num(track.joints_3d.astype(float)) @ _world_axes(track.up).T
    lower_foot = world[:, list(FEET), 2].min(axis=1)
    floor = np.percentile(lower_foot, FLOOR_PERCENTILE) - ANKLE_HEIGHT_M  # the foot joint is the ankle
    world[..., 2] -= floor
    return world


def _placed_joints(track: Track3D, world: WorldFrame) -> np.ndarray:
    """(N, 17, 3) joints where the person stands in the video's world, in the view's axes
    (x right, y away from the video camera, z up; the found floor at z = 0)."""
    placed = WorldFrame(world.rotation, world.camera_height_m, "z").to_world(track.joints_camera())
    return np.nan_to_num(placed)


def _places(tracks: list[Track3D]) -> list[int]:
    """A place in the row of people per track: left to right as in the video (mean 2D pelvis x),
    sharing a place with tracks it never overlaps in time."""
    order = sorted(range(len(tracks)), key=lambda i: float(np.nanmean(tracks[i].keypoints[:, 0, 0])))
    spans: list[list[tuple[int, int]]] = []
    place = [0] * len(tracks)
    for i in order:
        start, end = int(tracks[i].frames[0]), int(tracks[i].frames[-1])
        for p, taken in enumerate(spans):
            if all(end < s or start > e for s, e in taken):
                break
        else:
            p = len(spans)
            spans.append([])
        spans[p].append((start, end))
        place[i] = p
    count = len(spans)
    return [p - (count - 1) / 2 for p in place]


@dataclass
class _ViewCamera:
    """A pinhole camera over a square panel, looking at ``target`` from ``distance``."""

    target: np.ndarray
    distance: float
    panel_px: int

    def __post_init__(self):
        el, az = math.radians(ELEVATION_DEG), math.radians(AZIMUTH_DEG)
        backwards = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
        self.position = self.target + self.distance * backwards
        forward = -backwards
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        self.rotation = np.stack([right, np.cross(right, forward), forward])  # rows: right, up, forward
        self.focal_px = 0.5 * self.panel_px / math.tan(math.radians(FIELD_OF_VIEW_DEG) / 2)

    @classmethod
    def framing(cls, points: np.ndarray, panel_px: int) -> "_ViewCamera":
        """A camera that keeps (almost) all of ``points`` (M, 3) in view."""
        low, high = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
        low[2], high[2] = min(low[2], 0.0), max(high[2], 1.0)  # the floor and some height always
        radius = max(0.5 * float(np.linalg.norm(high - low)), 0.8)
        distance = 1.2 * radius / math.sin(math.radians(FIELD_OF_VIEW_DEG) / 2)
        return cls(0.5 * (low + high), distance, panel_px)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world -> ((..., 2) panel pixels, (...) depth in metres)."""
        local = (points - self.position) @ self.rotation.T
        depth = local[..., 2]
        safe = np.maximum(depth, 1e-3)
        pixels = np.stack([0.5 * self.panel_px + self.focal_px * local[..., 0] / safe,
                           0.5 * self.panel_px - self.focal_px * local[..., 1] / safe], axis=-1)
        return pixels, depth


@functools.lru_cache(maxsize=1024)
def _glyphs(text: str, size_px: int, outline: bool):
    """(fill mask, outline mask or None, (left, top) of the masks from the baseline origin,
    advance in pixels) for ``text`` in Pillow's bundled sans-serif font. OpenCV's Hershey
    font has a single-storey "a" that made "frame" read as "frome". Called per character
    (see ``_Renderer._text``), so every caption is drawn from a few cached masks."""
    font = ImageFont.load_default(size=size_px)
    pad = 2 if outline else 0
    left, top, right, bottom = font.getbbox(text, anchor="ls", stroke_width=pad)
    size = (max(1, right - left), max(1, bottom - top))

    def mask(stroke: int) -> np.ndarray:
        picture = Image.new("L", size, 0)
        ImageDraw.Draw(picture).text((-left, -top), text, fill=255, font=font, anchor="ls",
                                     stroke_width=stroke, stroke_fill=255)
        return np.asarray(picture, np.float32) / 255.0

    return mask(0), (mask(pad) if outline else None), (left, top), font.getlength(text)


def _blend(image: np.ndarray, mask: np.ndarray, x0: int, y0: int, colour) -> None:
    """Paints ``colour`` into ``image`` through ``mask`` (alpha in [0, 1]) placed at (x0, y0),
    clipped to the image."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + mask.shape[1], image.shape[1]), min(y0 + mask.shape[0], image.shape[0])
    if ix1 <= ix0 or iy1 <= iy0:
        return
    alpha = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0, None]
    region = image[iy0:iy1, ix0:ix1]
    region[:] = (region * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)


def _fixed_point(pixels: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.nan_to_num(pixels), -1e5, 1e5) * ONE).astype(np.int32)


# --------------------------------------------------------------------------- the drawing
@dataclass
class _TrackDrawing:
    """One track's precomputed drawing data; rows follow the track's frames."""

    id: int
    row_of_frame: np.ndarray   # (num_frames,) row for each output frame, -1 where absent
    points_2d: np.ndarray      # (N, 17, 2) int32 fixed-point, left-panel pixels
    confident: np.ndarray      # (N, 17) bool: score >= LOW_SCORE
    interpolated: np.ndarray   # (N,) bool
    label_2d: np.ndarray       # (N, 2) int pixels: where the id goes, above the head
    points_3d: np.ndarray      # (N, 17, 2) int32 fixed-point, right-panel pixels
    shadow_3d: np.ndarray      # (N, 16, 2) int32 fixed-point: a disc on the floor under the pelvis
    bone_order_3d: np.ndarray  # (N, 16) bones from far to near
    trail_3d: np.ndarray | None = None  # (N, 2) int32 fixed-point: the pelvis over the floor, with a world


class _Renderer:
    """Draws output frames of one result at one size; ``compose`` is the per-frame work."""

    def __init__(self, result: LiftResult, tracks: list[Track3D], height: int):
        v = result.video
        self.num_frames = int(v.num_frames)
        self.height = height
        self.left_width = 2 * max(1, round(v.width * height / v.height / 2))
        self.size = (self.left_width + height, height)  # (width, height) of the output
        self.time_per_frame = 1.0 / v.fps if v.fps > 0 else 0.0
        self.line_2d = max(1, round(height / 240)) + 1
        self.line_3d = max(2, round(height / 180))
        self.font_px = max(11, round(height / 40))
        self.caption_y = 10 + self.font_px

        sx, sy = self.left_width / v.width, height / v.height
        self.world = result.world if all(t.root_camera is not None for t in tracks) else None
        if self.world is not None:
            standing = [_placed_joints(t, self.world) for t in tracks]
        else:
            offsets = _places(tracks)
            standing = [_standing_joints(t) + [dx * TRACK_SPACING_M, 0, 0] for t, dx in zip(tracks, offsets)]
        self.camera = _ViewCamera.framing(np.concatenate([s.reshape(-1, 3) for s in standing]), height)
        self.tracks = [self._prepare(t, w, sx, sy) for t, w in zip(tracks, standing)]
        self.background_3d = self._background_3d(standing)
        self.canvas = np.empty((height, self.size[0], 3), np.uint8)

    def _prepare(self, track: Track3D, standing: np.ndarray, sx: float, sy: float) -> _TrackDrawing:
        row_of_frame = np.full(self.num_frames, -1, np.int64)
        inside = (track.frames >= 0) & (track.frames < self.num_frames)
        row_of_frame[track.frames[inside]] = np.flatnonzero(inside)
        keypoints = track.keypoints.astype(float) * [sx, sy]
        finite = np.isfinite(keypoints).all(axis=-1)
        label = np.stack([np.nan_to_num(keypoints[:, HEAD, 0]),
                          np.nan_to_num(np.nanmin(np.where(finite, keypoints[..., 1], np.inf), axis=1), posinf=0)
                          - 2.5 * self.line_2d], axis=-1)
        pixels_3d, depth = self.camera.project(standing)
        bone_depth = depth[:, list(H36M_17.bone_parents)] + depth[:, list(H36M_17.bone_children)]
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        disc = SHADOW_RADIUS_M * np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], -1)
        shadow, _ = self.camera.project(standing[:, None, 0] * [1, 1, 0] + disc)
        trail = _fixed_point(self.camera.project(standing[:, 0] * [1, 1, 0])[0]) if self.world is not None else None
        return _TrackDrawing(int(track.id), row_of_frame, _fixed_point(keypoints),
                             finite & (np.nan_to_num(track.scores) >= LOW_SCORE), track.interpolated.astype(bool),
                             np.round(label).astype(int), _fixed_point(pixels_3d), _fixed_point(shadow),
                             np.argsort(-bone_depth, axis=1), trail)

    def _background_3d(self, standing: list[np.ndarray]) -> np.ndarray:
        """The 3D panel without people: floor, grid and legend."""
        panel = np.full((self.height, self.height, 3), BACKGROUND_3D, np.uint8)
        points = np.concatenate([s.reshape(-1, 3) for s in standing])
        low = np.floor((np.percentile(points[:, :2], 1, axis=0) - 1.0) / GRID_STEP_M) * GRID_STEP_M
        high = np.ceil((np.percentile(points[:, :2], 99, axis=0) + 1.0) / GRID_STEP_M) * GRID_STEP_M
        corners = np.array([[low[0], low[1], 0], [high[0], low[1], 0], [high[0], high[1], 0], [low[0], high[1], 0]])
        pixels, depth = self.camera.project(corners)
        if (depth > 0.1).all():
            cv2.fillConvexPoly(panel, _fixed_point(pixels), FLOOR_COLOUR, cv2.LINE_AA, SHIFT)
        lines = [((x, low[1], 0), (x, high[1], 0)) for x in np.arange(low[0], high[0] + 1e-6, GRID_STEP_M)]
        lines += [((low[0], y, 0), (high[0], y, 0)) for y in np.arange(low[1], high[1] + 1e-6, GRID_STEP_M)]
        pixels, depth = self.camera.project(np.array(lines, float))
        for (a, b), (da, db) in zip(_fixed_point(pixels), depth):
            if min(da, db) > 0.1:
                cv2.line(panel, tuple(a), tuple(b), GRID_COLOUR, 1, cv2.LINE_AA, SHIFT)
        if self.world is not None:
            self._draw_video_camera(panel)
        x, y = 8, self.height - 10
        for name in ("left", "right"):
            cv2.line(panel, (x, y - 4), (x + 18, y - 4), COLOURS[name], 3, cv2.LINE_AA)
            x = self._text(panel, name, (x + 24, y), TEXT_COLOUR) + 14
        return panel

    def _draw_video_camera(self, panel: np.ndarray) -> None:
        """The video's camera where it stood: a small pyramid from its centre along its view."""
        to_view = WorldFrame(self.world.rotation, self.world.camera_height_m, "z")
        half = 0.5 * CAMERA_SIZE_M
        corners = np.array([[-half, -half * 0.6, CAMERA_SIZE_M], [half, -half * 0.6, CAMERA_SIZE_M],
                            [half, half * 0.6, CAMERA_SIZE_M], [-half, half * 0.6, CAMERA_SIZE_M]])
        points = to_view.to_world(np.concatenate([[[0.0, 0.0, 0.0]], corners]))
        pixels, depth = self.camera.project(points)
        if (depth <= 0.1).any():
            return
        p = _fixed_point(pixels)
        for a, b in [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]:
            cv2.line(panel, tuple(p[a]), tuple(p[b]), CAMERA_COLOUR, 1, cv2.LINE_AA, SHIFT)

    def _text(self, image: np.ndarray, text: str, origin: tuple[int, int], colour, outline: bool = False) -> int:
        """Draws ``text`` with its baseline at ``origin``; returns the x where it ends."""
        x = float(origin[0])
        placed = []  # (masks, x) per character; outlines first, so none covers a letter
        for char in text:
            glyph = _glyphs(char, self.font_px, outline)
            placed.append((glyph, int(round(x))))
            x += glyph[3]
        for edges, paint in ((True, (0, 0, 0)), (False, colour)):
            for (fill, edge, (left, top), _), gx in placed:
                mask = edge if edges else fill
                if mask is not None:
                    _blend(image, mask, gx + left, origin[1] + top, paint)
        return int(round(x))

    def compose(self, index: int, frame: np.ndarray | None) -> np.ndarray:
        """The output frame for source frame ``index`` (RGB); the returned buffer is reused."""
        left, right = self.canvas[:, : self.left_width], self.canvas[:, self.left_width :]
        if frame is None:
            left[:] = BACKGROUND_2D
        elif frame.shape[1::-1] == (self.left_width, self.height):
            left[:] = frame
        else:
            # INTER_AREA only where bilinear would alias badly: it costs ~4x more (12 ms at 1080p)
            cv2.resize(frame, (self.left_width, self.height), dst=left,
                       interpolation=cv2.INTER_AREA if frame.shape[0] > 2 * self.height else cv2.INTER_LINEAR)
        right[:] = self.background_3d
        for track in self.tracks:
            row = track.row_of_frame[index] if index < self.num_frames else -1
            if row >= 0:
                self._draw_2d(left, track, row)
                self._draw_3d(right, track, row)
        self._text(right, f"frame {index}  {index * self.time_per_frame:.2f} s", (8, self.caption_y), TEXT_COLOUR)
        return self.canvas

    def _draw_2d(self, image: np.ndarray, track: _TrackDrawing, row: int) -> None:
        points, confident = track.points_2d[row], track.confident[row]
        interpolated = bool(track.interpolated[row])
        thick = self.line_2d
        for k, (parent, child) in enumerate(BONES):
            if interpolated:
                colour, width = INTERPOLATED_COLOUR, max(1, thick - 1)
            elif confident[parent] and confident[child]:
                colour, width = BONE_COLOURS[k], thick
            else:  # faded: half-strength colour, thin
                colour, width = tuple(c // 2 + 40 for c in BONE_COLOURS[k]), 1
            a, b = tuple(points[parent]), tuple(points[child])
            if width > 1:
                cv2.line(image, a, b, (0, 0, 0), width + 2, cv2.LINE_AA, SHIFT)  # dark edge for contrast
            cv2.line(image, a, b, colour, width, cv2.LINE_AA, SHIFT)
        for j in range(len(JOINT_NAMES)):
            if confident[j] or interpolated:
                colour = INTERPOLATED_COLOUR if interpolated else JOINT_COLOURS[j]
                cv2.circle(image, tuple(points[j]), thick * ONE, colour, -1, cv2.LINE_AA, SHIFT)
        label = f"#{track.id} interp" if interpolated else f"#{track.id}"
        x, y = track.label_2d[row]
        self._text(image, label, (int(x) - 10, max(int(y), 12)), INTERPOLATED_COLOUR if interpolated else TEXT_COLOUR,
                   outline=True)

    def _draw_3d(self, image: np.ndarray, track: _TrackDrawing, row: int) -> None:
        points = track.points_3d[row]
        interpolated = bool(track.interpolated[row])
        if track.trail_3d is not None and row > 0:
            cv2.polylines(image, [track.trail_3d[: row + 1]], False, TRAIL_COLOUR, max(1, self.line_3d - 1), cv2.LINE_AA,
                          SHIFT)
        cv2.fillConvexPoly(image, track.shadow_3d[row], SHADOW_COLOUR, cv2.LINE_AA, SHIFT)
        for k in track.bone_order_3d[row]:
            parent, child = BONES[k]
            cv2.line(image, tuple(points[parent]), tuple(points[child]),
                     INTERPOLATED_COLOUR if interpolated else BONE_COLOURS[k], self.line_3d, cv2.LINE_AA, SHIFT)
        for j in range(len(JOINT_NAMES)):
            radius = (2 if j == HEAD else 1) * self.line_3d * ONE
            cv2.circle(image, tuple(points[j]), radius, INTERPOLATED_COLOUR if interpolated else JOINT_COLOURS[j],
                       -1, cv2.LINE_AA, SHIFT)
        head = points[HEAD] // ONE
        self._text(image, f"#{track.id}", (int(head[0]) - 10, int(head[1]) - 4 * self.line_3d), TEXT_COLOUR)


# --------------------------------------------------------------------------- inputs
def _select_tracks(result: LiftResult, track_ids) -> list[Track3D]:
    tracks = [t for t in result.tracks if len(t) > 0]
    if not tracks:
        raise InputError("the result has no tracks: no person was found in the video, nothing to render")
    if track_ids is not None:
        wanted = set(int(i) for i in track_ids)
        unknown = wanted - {t.id for t in tracks}
        if unknown:
            raise InputError(f"no track with id {', '.join(map(str, sorted(unknown)))} in the result "
                             f"(tracks: {', '.join(str(t.id) for t in tracks)})")
        tracks = [t for t in tracks if t.id in wanted]
    return tracks


def _open_video(result: LiftResult, video, out_path: Path | None = None) -> FrameSource | None:
    """The frames to draw on: ``video``, else the result's own video if it is still there and
    matches (a warning and a plain background otherwise), else None (plain background)."""
    expected = result.video
    explicit = video is not None
    path = Path(video) if explicit else Path(expected.path) if expected.path else None
    if path is None or (not explicit and not path.exists()):
        log.info("source video %s not found; drawing on a plain background", expected.path)
        return None
    if out_path is not None and path.exists() and path.resolve() == Path(out_path).resolve():
        raise InputError(f"{out_path}: the output would overwrite the source video")
    try:
        source = open_source(path, fps=expected.fps if expected.fps > 0 else None)
        info = source.info
        if (info.width, info.height) != (expected.width, expected.height):
            raise InputError(f"{path}: video is {info.width}x{info.height} but the result was made from a "
                             f"{expected.width}x{expected.height} video; pass the video the result came from")
    except InputError as exc:
        if explicit:
            raise
        log.warning("%s; drawing on a plain background (pass the source video to use another file)", exc)
        return None
    if info.num_frames > expected.num_frames + 1:  # container counts are estimates
        log.warning("%s: the container reports %d frames, the result has %d; rendering the first %d",
                    path, info.num_frames, expected.num_frames, expected.num_frames)
    return source


def _output_height(size: int | None, result: LiftResult) -> int:
    height = int(size) if size else int(result.video.height)
    if height < 64:
        raise InputError(f"render size must be at least 64 pixels, not {size}")
    if result.video.width <= 0 or result.video.height <= 0:
        raise InputError(f"the result's video size {result.video.width}x{result.video.height} is not usable")
    return height - height % 2  # H.264 in yuv420p needs even sizes


def _frames(source: FrameSource | None, num_frames: int):
    """(index, RGB frame or None) for the result's frames; stops early, with a warning, where the
    video ends."""
    if source is None:
        yield from ((i, None) for i in range(num_frames))
        return
    last = -1
    for last, frame in source:
        if last >= num_frames:
            return
        yield last, frame
    if last + 1 < num_frames:
        log.warning("%s ended after %d of the result's %d frames; the render stops there",
                    source.info.path, last + 1, num_frames)


# --------------------------------------------------------------------------- public API
def render_video(result: LiftResult, out_path: str | Path, *, video: str | Path | None = None,
                 track_ids=None, size: int | None = 720, preset: str = "veryfast") -> dict:
    """Write ``out_path`` (H.264 mp4 at the source's fps, atomically): per source frame, the video
    with the 2D skeletons (left) beside the 3D view (right), both ``size`` pixels high.

    ``video``: the source video (default: the result's video when it is still there; without
    one, the 2D skeletons are drawn on a dark background). ``track_ids``: the tracks to show
    (default all). ``size``: output height (None: the source's). ``preset``: x264 speed preset.

    Returns frames, seconds, fps (frames rendered per second), size ([width, height]), video_fps,
    and seconds_decode / _draw / _encode: how long the frame loop waited on each (decoding runs
    in a thread and the encoder in its own process, so they overlap with drawing).
    """
    started = time.perf_counter()
    tracks = _select_tracks(result, track_ids)
    height = _output_height(size, result)
    out_path = Path(out_path)
    source = _open_video(result, video, out_path)
    renderer = _Renderer(result, tracks, height)
    fps = result.video.fps if result.video.fps > 0 else 30.0
    seconds = {"decode": 0.0, "draw": 0.0, "encode": 0.0}
    count = 0
    with atomic_output(out_path, suffix=".mp4") as tmp, progress_bar() as progress:
        task = progress.add_task("render", total=renderer.num_frames)
        with VideoWriter(tmp, fps, quality=VIDEO_QUALITY, preset=preset) as writer, \
                contextlib.closing(_frames(source, renderer.num_frames)) as frames:
            while True:
                t0 = time.perf_counter()
                item = next(frames, None)
                t1 = time.perf_counter()
                if item is None:
                    break
                canvas = renderer.compose(*item)
                t2 = time.perf_counter()
                writer.write(canvas)
                t3 = time.perf_counter()
                seconds["decode"] += t1 - t0
                seconds["draw"] += t2 - t1
                seconds["encode"] += t3 - t2
                count += 1
                progress.advance(task)
            t0 = time.perf_counter()
        seconds["encode"] += time.perf_counter() - t0  # the encoder's flush at close
        if count == 0:
            raise InputError(f"{video or result.video.path}: no frames to render")
    elapsed = time.perf_counter() - started
    stats = {"frames": count, "seconds": round(elapsed, 3), "fps": count / max(elapsed, 1e-9),
             "size": list(renderer.size), "video_fps": fps, **{f"seconds_{k}": round(v, 3) for k, v in seconds.items()}}
    log.info("rendered %s: %d frames %dx%d in %.1f s (%.1f frames/s)", out_path, count, *renderer.size,
             elapsed, stats["fps"])
    return stats


def render_summary(result: LiftResult, out_png: str | Path, *, video: str | Path | None = None,
                   num_frames: int = 4, track_ids=None, size: int = 360) -> None:
    """Write a still PNG of ``num_frames`` evenly spaced frames with people in them (the middles
    of equal stretches), each the 2D overlay beside the 3D view at ``size`` pixels high, in one
    column (up to 3 frames) or two."""
    if num_frames < 1:
        raise InputError(f"num_frames must be at least 1, not {num_frames}")
    tracks = _select_tracks(result, track_ids)
    height = _output_height(size, result)
    source = _open_video(result, video, Path(out_png))
    renderer = _Renderer(result, tracks, height)
    with_people = np.unique(np.concatenate([t.frames for t in tracks]))
    with_people = with_people[(with_people >= 0) & (with_people < renderer.num_frames)]
    if len(with_people) == 0:
        raise InputError("no track has frames inside the video; nothing to show")
    middles = ((np.arange(num_frames) + 0.5) * len(with_people) / num_frames).astype(int)  # of equal stretches
    picked = sorted(set(with_people[middles].tolist()))
    tiles = {}
    for index, frame in _frames(source, picked[-1] + 1):
        if index in picked:
            tiles[index] = renderer.compose(index, frame).copy()
    for index in picked:  # frames the video did not deliver: the skeletons on a plain background
        if index not in tiles:
            tiles[index] = renderer.compose(index, None).copy()
    columns = 1 if len(picked) <= 3 else 2
    rows = math.ceil(len(picked) / columns)
    width, height = renderer.size
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for k, index in enumerate(picked):
        r, c = divmod(k, columns)
        sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = tiles[index]
    with atomic_output(out_png, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OutputError(f"cannot write {out_png}")
    log.info("wrote %s: frames %s", out_png, picked)
