"""The command line on good and bad input: one-line errors, exit codes, no partial files,
and batch mode (resume, failures, Ctrl-C). The bad-input corpus is generated here."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (assert_interrupted_batch_resumes, files, interrupt_after_first_video, keypoint_file, tiny_weights,
                     use_fake_backend, write_video)

from pose3d.cli import main
from pose3d.errors import InputError

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def run(args, capsys) -> tuple[int, str]:
    """Exit code and stderr of ``pose3d ARGS`` run in this process."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, expected_code, pattern):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and pattern in lines[0], err


# --------------------------------------------------------------------------- bad input corpus
def _text_as_mp4(d):
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    return d / "notes.mp4"


def _truncated_mp4(d):
    write_video(d / "full.mp4", frames=30, size=(64, 48))
    data = (d / "full.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 3])
    return d / "cut.mp4"


def _empty_file(d):
    (d / "empty.mp4").touch()
    return d / "empty.mp4"


def _empty_folder(d):
    (d / "nothing").mkdir()
    return d / "nothing"


@pytest.mark.parametrize("make, pattern", [
    (lambda d: d / "missing.mp4", "no such file"),
    (_empty_file, "empty"),
    (_text_as_mp4, "cannot decode"),
    (_truncated_mp4, "mp4"),
    (lambda d: write_video(d / "noise.mp4", frames=8), "no person found"),
    (lambda d: write_video(d / "one.mp4", frames=1), "no person found"),
])
def test_bad_videos_fail_cleanly(tmp_path, capsys, weights, make, pattern):
    source = make(tmp_path)
    out = tmp_path / "out" / "result.json"
    before = files(tmp_path)
    code, err = run(["lift", source, "-o", out, "--weights", weights], capsys)
    assert_one_line_error(code, err, 2, pattern)
    assert not out.parent.exists() or files(out.parent) == []
    assert files(tmp_path) == before


def test_empty_folder_and_unwritable_output(tmp_path, capsys, weights):
    code, err = run(["lift", _empty_folder(tmp_path), "-o", tmp_path / "results"], capsys)
    assert_one_line_error(code, err, 2, "no videos found")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    kp = keypoint_file(tmp_path / "k.npz", frames=10)
    code, err = run(["lift", "--keypoints", kp, "-o", blocker / "out.json", "--weights", weights], capsys)
    assert_one_line_error(code, err, 3, "cannot create output folder")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_folder_that_refuses_files(tmp_path, capsys, weights):
    # /proc exists and os.access calls it writable for root, but no file can be made in it
    kp = keypoint_file(tmp_path / "k.npz", frames=10)
    code, err = run(["lift", "--keypoints", kp, "-o", "/proc/pose3d-out.json", "--weights", weights], capsys)
    assert_one_line_error(code, err, 3, "output folder /proc is not writable")


@pytest.mark.parametrize("size", [(16, 16), (1920, 1088)])
def test_tiny_and_large_frames_and_one_frame_videos(tmp_path, capsys, monkeypatch, weights, size):
    use_fake_backend(monkeypatch)
    video = write_video(tmp_path / "v.mp4", frames=1, size=size)
    code, err = run(["lift", video, "-o", tmp_path / "v.json", "--weights", weights], capsys)
    assert code == 0, err
    payload = json.loads((tmp_path / "v.json").read_text())
    assert payload["video"]["width"] == size[0] and len(payload["tracks"][0]["frames"]) == 1


def test_image_folder_without_fps_is_assumed_30(tmp_path, capsys, monkeypatch, weights):
    import cv2

    use_fake_backend(monkeypatch)
    (tmp_path / "frames").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "frames" / f"{i:03d}.png"), np.full((40, 60, 3), 30 * i, np.uint8))
    code, err = run(["lift", tmp_path / "frames", "-o", tmp_path / "f.npz", "--weights", weights], capsys)
    assert code == 0, err
    meta = json.loads(str(np.load(tmp_path / "f.npz")["meta"]))
    assert meta["video"]["fps"] == 30.0 and meta["video"]["fps_source"] == "assumed"


def test_keypoint_files_through_the_cli(tmp_path, capsys, weights):
    kp = keypoint_file(tmp_path / "k.npz", frames=30)
    code, err = run(["lift", "--keypoints", kp, "-o", tmp_path / "k.json", "--weights", weights], capsys)
    assert code == 0 and "30 frames, 1 person" in err
    data = dict(np.load(kp))
    data["keypoints"] = data["keypoints"][..., :5, :]
    np.savez(tmp_path / "bad.npz", **data)
    code, err = run(["lift", "--keypoints", tmp_path / "bad.npz", "-o", tmp_path / "bad.json", "--weights", weights], capsys)
    assert_one_line_error(code, err, 2, "shape")
    assert not (tmp_path / "bad.json").exists()
    code, err = run(["lift", "--keypoints", kp, "-o", tmp_path / "k.txt", "--weights", weights], capsys)
    assert_one_line_error(code, err, 2, "must be .json or .npz")
    code, err = run(["lift", tmp_path / "clip.mp4", "--keypoints", kp, "-o", tmp_path / "both.json",
                     "--weights", weights], capsys)
    assert_one_line_error(code, err, 2, "give INPUT or --keypoints, not both")
    assert not (tmp_path / "both.json").exists()


def test_camera_options_through_the_cli(tmp_path, capsys, weights):
    kp = keypoint_file(tmp_path / "k.npz", frames=20)
    code, err = run(["lift", "--keypoints", kp, "-o", tmp_path / "k.json", "--weights", weights, "--fov", "90",
                     "--up", "z"], capsys)
    assert code == 0, err
    camera = json.loads((tmp_path / "k.json").read_text())["camera"]
    assert camera["source"] == "fov" and camera["focal_px"] == pytest.approx(320) and camera["world"]["up"] == "z"
    for options, pattern in ((["--focal", "0"], "--focal"), (["--fov", "179"], "--fov"),
                             (["--focal", "500", "--fov", "60"], "not both"), (["--up", "x"], "--up")):
        code, err = run(["lift", "--keypoints", kp, "-o", tmp_path / "bad.json", "--weights", weights, *options], capsys)
        assert_one_line_error(code, err, 2, pattern)
        assert not (tmp_path / "bad.json").exists()


def test_export_and_render_refuse_corrupt_and_newer_results(tmp_path, capsys, weights):
    kp = keypoint_file(tmp_path / "k.npz", frames=12)
    assert run(["lift", "--keypoints", kp, "-o", tmp_path / "k.json", "--weights", weights], capsys)[0] == 0
    code, err = run(["export", tmp_path / "k.json", "-o", tmp_path / "k.csv"], capsys)
    assert code == 0 and (tmp_path / "k.csv").read_text().count("\n") == 13
    payload = json.loads((tmp_path / "k.json").read_text())
    payload["schema_version"] = 99
    (tmp_path / "newer.json").write_text(json.dumps(payload))
    (tmp_path / "corrupt.json").write_text('{"format": "pose3d-result", "schema_version": 1, "tracks": [')
    for bad, pattern in (("newer.json", "newer"), ("corrupt.json", "JSON")):
        for command in (["export", tmp_path / bad, "-o", tmp_path / "x.csv"],
                        ["render", tmp_path / bad, "-o", tmp_path / "x.mp4"]):
            code, err = run(command, capsys)
            assert_one_line_error(code, err, 2, pattern)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.mp4").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(InputError):
        main(["lift", str(tmp_path / "missing.mp4"), "--debug"])


def test_usage_errors_show_the_usage_and_exit_2(capsys):
    for args, message in ((["lift", "--no-such-option"], "No such option"), (["no-such-command"], "No such command"),
                          (["eval", "--input-2d", "xy"], "Invalid value")):
        code, err = run(args, capsys)
        assert code == 2 and message in err and "Usage:" in err and "internal error" not in err, (args, err)


# --------------------------------------------------------------------------- batch
def _video_tree(root: Path, good: int, broken: int = 0, frames: int = 12) -> None:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(good):
        write_video(root / ("sub" if i % 2 else "") / f"good{i}.mp4", frames=frames)
    for i in range(broken):
        (root / f"broken{i}.mp4").write_text("not a video")


def test_batch_resumes_and_reports_failures(tmp_path, capsys, monkeypatch, weights):
    use_fake_backend(monkeypatch)
    _video_tree(tmp_path / "in", good=3, broken=1)
    args = ["lift", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights]
    code, err = run(args, capsys)
    assert code == 1 and "3 done, 0 skipped, 1 failed" in err
    assert files(tmp_path / "out") == [".pose3d-batch.json", "good0.json", "good2.json", "sub/good1.json"]
    code, err = run(args, capsys)
    assert code == 1 and "0 done, 3 skipped, 1 failed" in err
    (tmp_path / "in" / "broken0.mp4").unlink()
    assert run(args, capsys)[0] == 0
    # other settings are other results: nothing is skipped
    code, err = run(args + ["--no-flip"], capsys)
    assert code == 0 and "3 done, 0 skipped" in err


@pytest.mark.slow
def test_batch_with_workers_isolates_failures(tmp_path, capsys, weights):
    _video_tree(tmp_path / "in", good=2, broken=1, frames=4)  # noise: mediapipe finds no one
    code, err = run(["lift", tmp_path / "in", "-o", tmp_path / "out", "--workers", "2", "--weights", weights], capsys)
    assert code == 1 and "0 done, 0 skipped, 3 failed" in err and "no person found" in err
    assert files(tmp_path / "out") == []


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # then Python installs its KeyboardInterrupt handler


@pytest.mark.slow
def test_batch_ctrl_c_keeps_finished_files_and_resumes(tmp_path, weights):
    _video_tree(tmp_path / "in", good=4, frames=20)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from helpers import use_fake_backend; "
              "use_fake_backend(delay=0.05); from pose3d.cli import main; main(sys.argv[2:])")
    command = [sys.executable, "-c", script, str(TESTS), "lift", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               "--weights", str(weights)]
    # SIGINT as in a terminal, even when the test runner itself runs in the background
    # (a shell's background jobs start with SIGINT ignored, and children inherit that)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    err = interrupt_after_first_video(process, tmp_path / "out", lambda: process.send_signal(signal.SIGINT), 120)
    assert process.returncode == 130, err
    assert_interrupted_batch_resumes(command, tmp_path / "out", videos=4)
