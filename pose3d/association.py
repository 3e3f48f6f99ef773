"""People over time: associating per-frame detections into tracks with stable ids, filling
short gaps, and choosing the main person."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .tracks import Detection, Track2D

MIN_TRACK_FRAMES = 5        # shorter tracks are dropped as spurious
SAME_PERSON_SHARED = 0.15   # tracks whose joints agree within this x body height on shared frames ...
SAME_PERSON_GAP = 0.35      # ... or that continue each other across a short gap, this close, are one person
SHORT_OVERLAP = 5           # frames two pieces of one person may share where one ends and the other starts
VELOCITY_SIGHTINGS = 5      # last sightings of a piece that give its velocity across a gap
MATCH_IOU = 0.3             # a detection continues a track when their boxes overlap this much
DUPLICATE_IOU = 0.6         # two tracks this close are the same person: the younger is dropped


def _box_area(box: np.ndarray) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _box_intersection(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _box_intersection(a, b)
    union = _box_area(a) + _box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area: 1 when one box lies inside the other."""
    smaller = min(_box_area(a), _box_area(b))
    return _box_intersection(a, b) / smaller if smaller > 0 else 0.0


@dataclass
class _OpenTrack:
    id: int
    frames: list = field(default_factory=list)
    detections: list = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0

    @property
    def box(self) -> np.ndarray:
        return self.detections[-1].box

    def predicted_box(self, frame: int) -> np.ndarray:
        return self.box + self.velocity * (frame - self.frames[-1])

    def add(self, frame: int, det: Detection) -> None:
        if self.frames:
            step = frame - self.frames[-1]
            self.velocity = 0.5 * self.velocity + 0.5 * (det.box - self.box) / max(step, 1)
        self.frames.append(frame)
        self.detections.append(det)
        self.missed = 0


class Tracker:
    """IoU association of detections to tracks, frame by frame (the pairing with the largest
    total overlap, scipy's linear_sum_assignment).

    ``max_missed``: frames a track may go undetected and still be continued.
    """

    def __init__(self, max_missed: int):
        self.max_missed = max_missed
        self.open: list[_OpenTrack] = []
        self.closed: list[_OpenTrack] = []
        self._next_id = 0

    def recent(self, frame: int, within: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(id, where to look, last box) for the open tracks seen within ``within`` frames,
        longest first; where to look is the last detection's follow box (or its box)."""
        tracks = sorted((t for t in self.open if frame - t.frames[-1] <= within), key=lambda t: -len(t.frames))
        last = [t.detections[-1] for t in tracks]
        return [(t.id, d.box if d.follow_box is None else d.follow_box, d.box) for t, d in zip(tracks, last)]

    def update(self, frame: int, detections: list[Detection], claimed: dict[int, Detection] | None = None) -> None:
        """``claimed``: detections already known to belong to a track (refined in its box);
        the rest are paired with the other tracks' predicted boxes by IoU or start new tracks."""
        claimed = dict(claimed or {})
        free = [t for t in self.open if t.id not in claimed]
        iou = np.array([[box_iou(t.predicted_box(frame), d.box) for d in detections] for t in free]).reshape(
            len(free), len(detections))
        # the pairing with the largest total overlap (pairs below MATCH_IOU count as none), so
        # that one good pair cannot take a detection two people need
        iou[iou < MATCH_IOU] = 0.0
        used_d = set()
        for ti, di in zip(*linear_sum_assignment(iou, maximize=True)):
            if iou[ti, di] > 0:
                used_d.add(di)
                claimed[free[ti].id] = detections[di]
        by_id = {t.id: t for t in self.open}
        for track_id, det in claimed.items():
            by_id[track_id].add(frame, det)
        for di, det in enumerate(detections):
            if di in used_d or any(box_iou(det.box, d.box) > MATCH_IOU for d in claimed.values()):
                continue
            track = _OpenTrack(self._next_id)
            self._next_id += 1
            track.add(frame, det)
            self.open.append(track)
            claimed[track.id] = det
        for track in self.open:
            if track.id not in claimed:
                track.missed += 1
        self._drop_duplicates(frame)
        self.open = [t for t in self.open if t.frames]
        still = []
        for track in self.open:
            (still if track.missed <= self.max_missed else self.closed).append(track)
        self.open = still

    def _drop_duplicates(self, frame: int) -> None:
        current = [t for t in self.open if t.frames and t.frames[-1] == frame]
        for i, a in enumerate(current):
            for b in current[i + 1:]:
                if box_iou(a.box, b.box) > DUPLICATE_IOU:
                    younger = b if len(b.frames) < len(a.frames) else a
                    younger.frames.pop()
                    younger.detections.pop()
                    younger.missed += 1

    def finish(self, max_gap: int, min_frames: int = MIN_TRACK_FRAMES) -> list[Track2D]:
        """Tracks with at least ``min_frames`` detections, gaps up to ``max_gap`` frames filled
        by linear interpolation (marked); a longer gap splits a track in two. Ids are 0, 1, ...
        by first appearance."""
        pieces = []
        for t in self.closed + self.open:
            if len(t.frames) >= min_frames:
                kp = np.stack([d.keypoints for d in t.detections])
                sc = np.stack([d.scores for d in t.detections])
                pieces.extend(p for p in split_and_fill(np.asarray(t.frames), kp, sc, max_gap)
                              if (~p[3]).sum() >= min_frames)
        tracks = stitch([Track2D(-1, *piece) for piece in pieces], max_gap)
        tracks.sort(key=lambda t: t.frames[0])
        return [Track2D(i, t.frames, t.keypoints, t.scores, t.interpolated) for i, t in enumerate(tracks)]


def _observed(track: Track2D) -> dict[int, int]:
    """frame -> row of the frames where the person was detected (not interpolated)."""
    return {int(f): i for i, f in enumerate(track.frames) if not track.interpolated[i]}


def same_person(a: Track2D, b: Track2D, max_gap: int) -> bool:
    """Whether two tracks are pieces of one person: a box-overlap tracker splits a track
    when a person's box changes fast (walking towards the camera) or a detector briefly
    follows them twice. Judged on the joints, relative to the person's height."""
    height = max(float(np.median(a.box_heights())), float(np.median(b.box_heights())), 1.0)
    seen_a, seen_b = _observed(a), _observed(b)
    shared = set(seen_a) & set(seen_b)
    if len(shared) > SHORT_OVERLAP:
        distance = [np.linalg.norm(a.keypoints[seen_a[f]] - b.keypoints[seen_b[f]], axis=-1).mean() for f in sorted(shared)]
        return float(np.median(distance)) / height < SAME_PERSON_SHARED
    # one ends as the other starts (a short overlap is where a detector lost and found them
    # again, often with a poor pose): compare where each was seen alone
    first, second = (a, b) if a.frames[0] <= b.frames[0] else (b, a)
    seen_first, seen_second = _observed(first), _observed(second)
    before = [f for f in seen_first if f < second.frames[0]]
    after = [f for f in seen_second if f > first.frames[-1]]
    overlap = max(0, int(first.frames[-1] - second.frames[0]) + 1)
    if not before or not after or after[0] - before[-1] > max_gap + 1 + overlap:
        return False
    # where the first piece would be at each of the second's first sightings: standing still,
    # or moving on as over its last sightings (a pedestrian at 10 fps walks a third of their
    # height in 5 frames); median over the last and first few sightings, so that one poor
    # pose at either end does not decide
    recent = before[-VELOCITY_SIGHTINGS:]
    centres = [first.keypoints[seen_first[f]].mean(axis=0) for f in (recent[0], recent[-1])]
    velocity = (centres[1] - centres[0]) / max(recent[-1] - recent[0], 1)
    jumps = {moving: np.median([np.linalg.norm(first.keypoints[seen_first[f]] + moving * velocity * (g - f)
                                               - second.keypoints[seen_second[g]], axis=-1).mean()
                                for f in before[-3:] for g in after[:3]])
             for moving in (0.0, 1.0)}
    return float(min(jumps.values())) / height < SAME_PERSON_GAP


def merge_tracks(a: Track2D, b: Track2D, max_gap: int) -> Track2D:
    """One track from two pieces: per frame the detection with the higher mean confidence,
    gaps refilled."""
    rows = {}
    for track in (a, b):
        for frame, i in _observed(track).items():
            if frame not in rows or track.scores[i].mean() > rows[frame][1].mean():
                rows[frame] = (track.keypoints[i], track.scores[i])
    frames = np.array(sorted(rows))
    kp = np.stack([rows[f][0] for f in frames])
    sc = np.stack([rows[f][1] for f in frames])
    pieces = list(split_and_fill(frames, kp, sc, max(max_gap, int(np.diff(frames).max(initial=1)))))
    return Track2D(a.id, *pieces[0])


def stitch(tracks: list[Track2D], max_gap: int) -> list[Track2D]:
    """Merge tracks that are pieces of one person (see :func:`same_person`), repeatedly."""
    tracks = sorted(tracks, key=lambda t: t.frames[0])
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(tracks):
            for j in range(i + 1, len(tracks)):
                if same_person(a, tracks[j], max_gap):
                    tracks[i] = merge_tracks(a, tracks.pop(j), max_gap)
                    merged = True
                    break
            if merged:
                break
    return tracks


def split_and_fill(frames: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, max_gap: int):
    """Split at gaps longer than ``max_gap`` frames; inside each piece interpolate the missing
    frames linearly (confidence 0, interpolated True). Yields (frames, kp, scores, interpolated)."""
    breaks = np.flatnonzero(np.diff(frames) > max_gap + 1) + 1
    for idx in np.split(np.arange(len(frames)), breaks):
        f = frames[idx]
        full = np.arange(f[0], f[-1] + 1)
        observed = np.isin(full, f)
        kp = np.empty((len(full),) + keypoints.shape[1:])
        kp[observed] = keypoints[idx]
        missing = full[~observed]
        if len(missing):  # each between the observed frames before and after it
            after = np.searchsorted(f, missing)
            known = keypoints[idx].astype(float)
            before_kp, after_kp = known[after - 1], known[after]
            slope = (after_kp - before_kp) / (f[after] - f[after - 1])[:, None, None]
            kp[~observed] = slope * (missing - f[after - 1])[:, None, None] + before_kp
        sc = np.zeros((len(full), scores.shape[1]))
        sc[observed] = scores[idx]
        yield full, kp, sc, ~observed


def main_track(tracks: list[Track2D]) -> Track2D | None:
    """The main person: largest and most persistent (frames covered x median height)."""
    if not tracks:
        return None
    return max(tracks, key=lambda t: len(t) * float(np.median(t.box_heights())))
