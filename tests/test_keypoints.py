"""2D detector skeletons -> Human3.6M-17, and person tracking."""

import numpy as np

from pose3d.keypoints.convert import BLAZEPOSE_33, COCO_17, HEAD_ABOVE_EARS, THORAX_TOWARDS_EARS, to_h36m17
from pose3d.skeleton import JOINT_NAMES
from pose3d.tracking import Detection, Tracker, main_track


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
    import pose3d.tracking as tracking

    tracks = _split_person_tracks()
    assert sorted(len(t) for t in tracks) == [40, 40] and [t.id for t in tracks] == [0, 1]
    monkeypatch.setattr(tracking, "stitch", lambda tracks, max_gap: tracks)
    assert sorted(len(t) for t in _split_person_tracks()) == [20, 30, 40]  # what stitching repairs
