"""2D detector skeletons -> Human3.6M-17, and person tracking."""

import numpy as np
import pytest
from helpers import FakeBackend, BackendStub

from pose3d.keypoints.convert import BLAZEPOSE_33, COCO_17, HEAD_ABOVE_EARS, THORAX_TOWARDS_EARS, to_h36m17
from pose3d.skeleton import JOINT_NAMES
from pose3d.association import Tracker, main_track
from pose3d.tracks import Detection


def _upright_blazepose():
    points = np.zeros((33, 2))
    scores = np.full(33, 0.9)
    named = dict(nose=(0, -160), l_ear=(10, -150), r_ear=(-10, -150), l_shoulder=(20, -120), r_shoulder=(-20, -120),
                 l_elbow=(30, -80), r_elbow=(-30, -80), l_wrist=(35, -40), r_wrist=(-35, -40), l_hip=(12, 0),
                 r_hip=(-12, 0), l_knee=(12, 50), r_knee=(-12, 50), l_ankle=(12, 100), r_ankle=(-12, 100))
    for name, xy in named.items():
        points[BLAZEPOSE_33[name]] = xy
    scores[BLAZEPOSE_33["l_ear"]] = 0.3
    return points, scores


def test_blazepose_to_h36m_builds_the_missing_joints():
    points, scores = _upright_blazepose()
    out, conf = to_h36m17(points, scores, BLAZEPOSE_33, hip_towards_thorax=0.1)
    j = {n: i for i, n in enumerate(JOINT_NAMES)}
    ears, shoulders = np.array([0, -150]), np.array([0, -120])
    thorax = shoulders + THORAX_TOWARDS_EARS * (ears - shoulders)
    np.testing.assert_allclose(out[j["thorax"]], thorax)
    np.testing.assert_allclose(out[j["head"]], ears + HEAD_ABOVE_EARS * (ears - shoulders))
    np.testing.assert_allclose(out[j["neck_nose"]], [0, -160])
    shift = 0.1 * (thorax - [0, 0])  # hips move towards the thorax
    np.testing.assert_allclose(out[j["left_hip"]], np.array([12, 0]) + shift)
    np.testing.assert_allclose(out[j["hip"]], shift)
    np.testing.assert_allclose(out[j["spine"]], (shift + thorax) / 2)
    np.testing.assert_allclose(out[j["left_wrist"]], [35, -40])
    assert conf[j["thorax"]] == 0.3 and conf[j["head"]] == 0.3 and conf[j["left_knee"]] == 0.9


def test_coco_layout_copies_the_same_limbs():
    points = np.random.default_rng(0).normal(size=(17, 2))
    out, _ = to_h36m17(points, np.ones(17), COCO_17)
    np.testing.assert_allclose(out[JOINT_NAMES.index("right_wrist")], points[COCO_17["r_wrist"]])
    np.testing.assert_allclose(out[0], (points[COCO_17["l_hip"]] + points[COCO_17["r_hip"]]) / 2)


def _person(x, y, h=100.0):
    kp = np.stack([np.full(17, x), np.linspace(y, y + h, 17)], axis=1)
    return Detection(kp, np.ones(17), np.array([x - 20, y, x + 20, y + h]))


def test_tracker_keeps_ids_fills_gaps_and_picks_the_main_person():
    tracker = Tracker(max_missed=5)
    for frame in range(30):
        people = [_person(100 + 2 * frame, 50, h=200)]        # big, always there
        if frame % 10 != 3:                                    # small, missed now and then
            people.append(_person(400 - frame, 80, h=60))
        tracker.update(frame, people)
    tracks = tracker.finish(max_gap=3)
    assert [len(t) for t in tracks] == [30, 30]
    small = tracks[1]
    assert small.interpolated.sum() == 3 and small.scores[small.interpolated].max() == 0
    np.testing.assert_allclose(small.keypoints[3, 0, 0], 397)  # linear fill
    assert main_track(tracks).id == tracks[0].id


def test_tracker_pairs_detections_by_the_best_total_overlap():
    """Two people side by side step left together: the right one's new box overlaps the left
    one's old box the most, so taking the best pair first would give the left one's id to
    the right one and the left one a new id; the best pairing overall keeps both ids."""
    tracker = Tracker(max_missed=5)
    tracker.update(0, [_person(0, 50), _person(22, 50)])
    tracker.update(1, [_person(-12, 50), _person(10, 50)])
    assert len(tracker.open) == 2
    for track in tracker.open:
        assert track.frames == [0, 1]
        np.testing.assert_allclose(track.detections[1].box - track.detections[0].box, [-12, 0, -12, 0])


def _split_person_tracks(max_gap=3):
    tracker = Tracker(max_missed=2)
    for frame in range(40):
        walker = _person(200 + frame, 50, h=100)
        people = [_person(600, 60, h=100)]  # someone else, standing still
        if frame < 30:
            people.append(walker)
        if frame >= 20:  # from frame 20 a second detector box follows her too (same joints)
            people.append(Detection(walker.keypoints, walker.scores, walker.box + [-60, -40, 60, 120]))
        tracker.update(frame, people)
    return tracker.finish(max_gap)


def test_pieces_of_one_person_are_stitched_and_other_people_are_not(monkeypatch):
    import pose3d.association as association

    tracks = _split_person_tracks()
    assert sorted(len(t) for t in tracks) == [40, 40] and [t.id for t in tracks] == [0, 1]
    monkeypatch.setattr(association, "stitch", lambda tracks, max_gap: tracks)
    assert sorted(len(t) for t in _split_person_tracks()) == [20, 30, 40]  # what stitching repairs


def _track(frames, keypoints):
    from pose3d.tracks import Track2D

    frames = np.asarray(frames)
    return Track2D(-1, frames, np.asarray(keypoints, float), np.ones((len(frames), 17)), np.zeros(len(frames), bool))


def test_pieces_sharing_a_few_frames_with_poor_poses_are_one_person():
    """A detector loses someone and finds them again while the old piece still returns a
    poor pose (say, a box spanning two people) for a few frames: one person."""
    from pose3d.association import same_person

    walk = [_person(100 + 2 * f, 50).keypoints for f in range(40)]
    poor = [k * [1.0, 0.3] + [60, 0] for k in walk]  # squashed and shifted: no match on the shared frames
    a = _track(range(0, 24), walk[:20] + poor[20:24])
    b = _track(range(20, 40), poor[20:22] + walk[22:40])
    assert same_person(a, b, max_gap=3) and same_person(b, a, max_gap=3)
    elsewhere = _track(range(20, 40), [k + [300, 0] for k in walk[20:40]])  # someone else appears
    assert not same_person(a, elsewhere, max_gap=3)
    much_later = _track(range(40, 60), [_person(180 + 2 * f, 50).keypoints for f in range(20)])
    assert not same_person(a, much_later, max_gap=3)  # 16 frames unseen, more than the gap allowed


def test_a_walker_lost_for_a_few_frames_is_found_again_where_her_walk_leads():
    """At 10 fps a pedestrian 100 px tall walks 8 px a frame: after 5 unseen frames she is
    half her height from where she was lost, but where her motion predicts."""
    from pose3d.association import same_person

    def walker(f):
        return _person(100 + 8 * f, 50, h=100).keypoints

    before = _track(range(0, 20), [walker(f) for f in range(20)])
    after = _track(range(25, 45), [walker(f) for f in range(25, 45)])
    assert same_person(before, after, max_gap=5)
    # someone walking the other way from further on is not her
    towards = _track(range(25, 45), [_person(400 - 8 * (f - 25), 50, h=100).keypoints for f in range(25, 45)])
    assert not same_person(before, towards, max_gap=5)
    # nor is someone standing where her walk would have taken her only after twice the gap
    stands = _track(range(25, 45), [_person(100 + 8 * 35, 50, h=100).keypoints] * 20)
    assert not same_person(before, stands, max_gap=5)


class _CountingFinder(BackendStub):
    """Finds nobody and counts the frames it was asked about."""

    name = "count"
    detect_every = 10

    def __init__(self):
        self.calls = 0

    def find_people(self, frame):
        self.calls += 1
        return [_person(100, 50)]

    def refine(self, frame, boxes):
        return [_person(100, 50)] * len(boxes)


def test_the_person_finder_runs_at_least_once_per_max_gap(tmp_path):
    """A person the crops lose must be found again before their track closes: at 10 fps with
    a 0.5 s gap the finder runs every 5 frames, not every 10."""
    from helpers import write_video

    from pose3d.keypoints import extract_tracks
    from pose3d.video import open_source

    finder = _CountingFinder()
    extract_tracks(open_source(write_video(tmp_path / "v.mp4", frames=40, fps=10)), finder, people="all",
                   max_gap_seconds=0.5)
    assert finder.calls == 8


class _FollowingBackend(BackendStub):
    """Two people; the whole-frame detector sees the walker only in frame 0 (then she turns
    her back), the landmark model finds whoever is in a crop: the walker, or the person
    standing in front of her once she walks behind them (frames 20-29)."""

    name = "follow"

    def __init__(self):
        self.frame = 0  # pose3d looks in the crops first, then runs the detectors, every frame

    def walker(self):
        return _person(100 + 5 * self.frame, 50)

    def stander(self):
        return _person(250, 50)

    def find_people(self, frame):
        people = [self.stander()] + ([self.walker()] if self.frame == 0 else [])
        self.frame += 1
        return people

    def refine(self, frame, boxes):
        from pose3d.association import box_iou

        hidden = 20 <= self.frame < 30
        people = [self.stander()] if hidden else [self.walker(), self.stander()]
        return [max(people, key=lambda p: box_iou(p.box, box)) for box in boxes]


def test_people_are_followed_in_their_own_crop_and_not_given_someone_else(tmp_path):
    from helpers import write_video

    from pose3d.keypoints import extract_tracks
    from pose3d.video import open_source

    source = open_source(write_video(tmp_path / "v.mp4", frames=40, fps=10))
    tracks, _ = extract_tracks(source, _FollowingBackend(), people="all", max_gap_seconds=0.5, detect_every=1)
    walker = min(tracks, key=lambda t: t.keypoints[0, 0, 0])
    stander = max(tracks, key=lambda t: t.keypoints[0, 0, 0])
    assert walker.id != stander.id
    # followed in its crop from frame 0 with no detector help, until hidden behind the stander
    assert walker.frames[0] == 0 and walker.frames[-1] >= 19 and not walker.interpolated[:20].any()
    np.testing.assert_allclose(walker.keypoints[19, 0, 0], 100 + 5 * 19)
    # the stander's crop never hands the walker's track to the stander: the walker's track
    # ends where she disappears instead of jumping onto the person in front
    assert np.abs(np.diff(walker.keypoints[:, 0, 0])).max() <= 5 + 1e-9
    assert len(stander) == 40 and np.ptp(stander.keypoints[:, 0, 0]) == 0


def test_backends_declare_what_the_track_extraction_asks_of_them():
    from pose3d.keypoints import KeypointBackend, VideoTracker, create_backend
    from pose3d.keypoints.mmpose_backend import MMPoseBackend

    mediapipe = create_backend("mediapipe")
    assert isinstance(mediapipe, KeypointBackend) and isinstance(mediapipe, VideoTracker)
    mediapipe.close()
    # mmpose detects every frame afresh: no whole-frame tracker, so no single-person pass
    assert all(callable(getattr(MMPoseBackend, m)) for m in ("find_people", "refine", "quiet", "close"))
    assert not any(hasattr(MMPoseBackend, m) for m in ("start", "track"))
    assert isinstance(FakeBackend(), KeypointBackend) and not isinstance(FakeBackend(), VideoTracker)


@pytest.mark.shared
@pytest.mark.slow
def test_landmark_model_alone_finds_the_skater_in_her_box(shared_dir):
    """The BlazePose landmark model run by OpenCV on a crop (no face detector) agrees with an
    HRNet detector's keypoints (the skater is 220-520 px tall)."""
    from pose3d.keypoints import create_backend
    from pose3d.video import open_source

    reference = np.load(shared_dir / "keypoints" / "skater_hrnet_h36m17.npz")["reconstruction"][0, :, :, :2]
    backend = create_backend("mediapipe")
    checked = 0
    for index, frame in open_source(shared_dir / "videos" / "skater_720p.mp4"):
        if index % 40 == 0:
            box = np.concatenate([reference[index].min(0), reference[index].max(0)])
            person = backend.landmarks_in_box(frame, box)
            error = np.median(np.linalg.norm(person.keypoints - reference[index], axis=-1))
            assert error < 0.1 * (box[3] - box[1]), (index, error)
            # the box to follow her in the next frame is about her size, around her
            side = person.follow_box[2] - person.follow_box[0]
            assert 0.8 < side / (box[3] - box[1]) < 1.5 and box_contains(person.follow_box, reference[index, 0])
            checked += 1
    backend.close()
    assert checked == 5


def box_contains(box, point):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]
