"""Batch mode on Ray (pose3d.batch_ray) with a real local Ray instance: the same files, table
and exit codes as the local batch, resume, a worker killed mid-write retried with nothing
partial left, Ctrl-C. Skipped where ray is not installed (pip install -e '.[ray]')."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_interrupted_batch_resumes, files, interrupt_after_first_video, tiny_weights, write_video
from ray_worker import DELAY, MARKERS, install_frame_backend

from pose3d.batch import plan_jobs, run_batch
from pose3d.cli import _ray_address_or_local, main
from pose3d.lift import LiftSettings

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def _worker_env(markers: Path, **extra) -> dict:
    """runtime_env for the test's Ray workers: the tests' modules on the path, the setup hook."""
    path = os.pathsep.join(p for p in (str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, MARKERS: str(markers), **extra},
            "worker_process_setup_hook": "ray_worker.setup"}


@pytest.fixture(scope="module")
def ray_markers(tmp_path_factory):
    """One local Ray instance (2 CPUs) for the module; yields the folder of die-once markers."""
    ray = pytest.importorskip("ray")
    markers = tmp_path_factory.mktemp("markers")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=_worker_env(markers))
    yield markers
    ray.shutdown()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def run(args, capsys) -> tuple[int, str, str]:
    """Exit code, stdout (the table) and stderr of ``pose3d ARGS`` run in this process."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _without_timings(path: Path) -> dict:
    result = json.loads(path.read_text())
    result.pop("timings", None)
    result.pop("created", None)
    return result


def _assert_same_results(a: dict, b: dict) -> None:
    """The same JSON, the 3D joints equal to float tolerance (thread counts may differ)."""
    tracks_a, tracks_b = a.pop("tracks"), b.pop("tracks")
    assert a == b
    assert len(tracks_a) == len(tracks_b)
    for ta, tb in zip(tracks_a, tracks_b):
        for key in ta:
            if isinstance(ta[key], list) and ta[key] and isinstance(ta[key][0], (list, float)):
                np.testing.assert_allclose(np.asarray(ta[key], float), np.asarray(tb[key], float), atol=1e-3)
            else:
                assert ta[key] == tb[key], key


# --------------------------------------------------------------------------- no ray needed
def test_ray_takes_an_optional_address():
    assert _ray_address_or_local(["lift", "in", "--ray"]) == ["lift", "in", "--ray", "local"]
    assert _ray_address_or_local(["lift", "in", "--ray", "-o", "out"])[3] == "local"
    assert _ray_address_or_local(["lift", "--ray", "in", "-o", "out"])[:4] == ["lift", "--ray", "local", "in"]
    for address in ("auto", "local", "ray://head:10001", "10.0.0.5:6379"):
        assert _ray_address_or_local(["lift", "in", "--ray", address]) == ["lift", "in", "--ray", address]
    assert _ray_address_or_local(["lift", "in", "--ray=auto"]) == ["lift", "in", "--ray=auto"]


def test_ray_option_errors(tmp_path, capsys, monkeypatch, weights):
    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "a.mp4", frames=4)
    code, _, err = run(["lift", tmp_path / "in" / "a.mp4", "--ray", "--weights", weights], capsys)
    assert code == 2 and "--ray is for batch mode" in err
    code, _, err = run(["lift", tmp_path / "in", "-o", tmp_path / "out", "--ray", "--workers", "2"], capsys)
    assert code == 2 and "--workers is for one machine" in err
    code, _, err = run(["lift", tmp_path / "in", "-o", tmp_path / "out", "--ray-gpus", "1"], capsys)
    assert code == 2 and "--ray-cpus and --ray-gpus go with --ray" in err
    monkeypatch.setitem(sys.modules, "ray", None)  # as without the extra: import ray fails
    code, _, err = run(["lift", tmp_path / "in", "-o", tmp_path / "out", "--ray", "--weights", weights], capsys)
    assert code == 4 and err == "error: batch mode on Ray needs ray: pip install 'pose3d[ray]'\n"
    assert files(tmp_path / "out") == []


def test_only_batch_ray_imports_ray():
    importers = [p.name for p in (ROOT / "pose3d").rglob("*.py")
                 if any(line.strip().startswith(("import ray", "from ray")) for line in p.read_text().splitlines())]
    assert importers == ["batch_ray.py"]
    script = "import sys, pose3d.cli, pose3d.batch, pose3d.batch_ray; print('ray' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


# --------------------------------------------------------------------------- with a local Ray instance
def _video_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    write_video(root / "good0.mp4", frames=12)
    write_video(root / "sub" / "good1.mp4", frames=16)
    (root / "broken.mp4").write_text("not a video")


def _rows(table: str) -> list[list[str]]:
    """(video, status) of each row of the summary table."""
    return sorted([cell.strip() for cell in line.split("│")][1:3] for line in table.splitlines() if ".mp4" in line)


@pytest.mark.slow
def test_ray_batch_gives_the_local_batch_files_table_and_exit_code(tmp_path, capsys, monkeypatch, ray_markers,
                                                                    weights):
    _video_tree(tmp_path / "in")
    args = ["lift", tmp_path / "in", "--weights", weights]
    code, table, err = run(args + ["-o", tmp_path / "ray", "--ray"], capsys)
    assert code == 1 and "on Ray (local)" in err and "2 done, 0 skipped, 1 failed" in err, err
    assert "broken.mp4" in table and "failed" in table and "cannot decode" in table
    install_frame_backend(monkeypatch)  # the workers' backend, in this process
    code, local_table, local_err = run(args + ["-o", tmp_path / "local"], capsys)
    assert code == 1 and "2 done, 0 skipped, 1 failed" in local_err
    failures = lambda text: [line.rsplit(" (", 1)[0] for line in text.splitlines() if ": failed: " in line]  # noqa: E731
    assert failures(err) == failures(local_err) == [f"{tmp_path / 'in' / 'broken.mp4'}: failed: "
                                                    f"{tmp_path / 'in' / 'broken.mp4'}: cannot decode this file as video"]

    assert files(tmp_path / "ray") == files(tmp_path / "local") == [".pose3d-batch.json", "good0.json",
                                                                    "sub/good1.json"]
    for name in ("good0.json", "sub/good1.json"):
        _assert_same_results(_without_timings(tmp_path / "ray" / name), _without_timings(tmp_path / "local" / name))
    assert _rows(table) == _rows(local_table) == [["broken.mp4", "failed"], ["good0.mp4", "done"],
                                                ["sub/good1.mp4", "done"]]

    code, table, err = run(args + ["-o", tmp_path / "ray", "--ray"], capsys)  # resume
    assert code == 1 and "0 done, 2 skipped, 1 failed" in err
    (tmp_path / "in" / "broken.mp4").unlink()
    code, _, err = run(args + ["-o", tmp_path / "ray", "--ray"], capsys)
    assert code == 0 and "0 done, 2 skipped, 0 failed" in err


@pytest.mark.slow
def test_a_worker_killed_while_writing_is_retried_and_leaves_nothing_partial(tmp_path, ray_markers, weights):
    from pose3d.batch_ray import RayOptions

    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "die.mp4", frames=12)
    write_video(tmp_path / "in" / "fine.mp4", frames=12)
    out = tmp_path / "out"
    settings = LiftSettings()
    jobs, skipped = plan_jobs(tmp_path / "in", out, "**/*", settings, "sha")
    outcomes = run_batch(jobs, out, weights=weights, device="cpu", scan="auto", settings=settings,
                         executor="ray", ray_options=RayOptions(max_retries=2))
    assert (ray_markers / "die.json.died").is_file()  # the first attempt did die, temporary written
    assert sorted((o.source, o.status) for o in outcomes) == [(str(tmp_path / "in" / "die.mp4"), "done"),
                                                              (str(tmp_path / "in" / "fine.mp4"), "done")]
    assert files(out) == [".pose3d-batch.json", "die.json", "fine.json"]  # no temporary left
    assert json.loads((out / "die.json").read_text())["tracks"]
    assert plan_jobs(tmp_path / "in", out, "**/*", settings, "sha")[0] == []  # both recorded: a rerun skips

    # without retries, the death is the video's failure, and still nothing partial is left
    (ray_markers / "die.json.died").unlink()
    jobs, _ = plan_jobs(tmp_path / "in", tmp_path / "out2", "**/*", settings, "sha")
    outcomes = run_batch(jobs, tmp_path / "out2", weights=weights, device="cpu", scan="auto", settings=settings,
                         executor="ray", ray_options=RayOptions(max_retries=0))
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 1 and failed[0].source.endswith("die.mp4") and "worker died 1 times" in failed[0].reason
    assert files(tmp_path / "out2") == [".pose3d-batch.json", "fine.json"]


def test_a_worker_that_cannot_read_an_input_says_so(tmp_path, ray_markers, weights):
    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "gone.mp4", frames=4)
    settings = LiftSettings()
    jobs, _ = plan_jobs(tmp_path / "in", tmp_path / "out", "**/*", settings, "sha")
    (tmp_path / "in" / "gone.mp4").unlink()  # as on a node that does not see the driver's disk
    [outcome] = run_batch(jobs, tmp_path / "out", weights=weights, device="cpu", scan="auto", settings=settings,
                          executor="ray")
    assert outcome.status == "failed" and "cannot read" in outcome.reason and "on Ray node" in outcome.reason
    assert "storage every node sees" in outcome.reason


@pytest.mark.slow
def test_an_interrupt_with_the_callers_own_ray_keeps_what_finished(tmp_path, ray_markers, weights):
    (tmp_path / "in").mkdir()
    for i in range(4):
        write_video(tmp_path / "in" / f"clip{i}.mp4", frames=12)
    settings = LiftSettings()
    jobs, _ = plan_jobs(tmp_path / "in", tmp_path / "out", "**/*", settings, "sha")
    seen = []

    def interrupt(outcome):
        seen.append(outcome)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, tmp_path / "out", weights=weights, device="cpu", scan="auto", settings=settings,
                  executor="ray", on_outcome=interrupt)
    assert len(seen) == 1 and seen[0].status == "done"
    # the tasks already handed to the caller's Ray finish in the background, whole and unrecorded
    deadline = time.monotonic() + 120
    while len([f for f in files(tmp_path / "out") if f.endswith(".json") and not f.startswith(".")]) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    assert files(tmp_path / "out") == [".pose3d-batch.json", "clip0.json", "clip1.json", "clip2.json", "clip3.json"]
    assert len(json.loads((tmp_path / "out" / ".pose3d-batch.json").read_text())["done"]) == 1
    assert len(plan_jobs(tmp_path / "in", tmp_path / "out", "**/*", settings, "sha")[0]) == 3  # redone next time


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # then Python installs its KeyboardInterrupt handler


@pytest.mark.slow
def test_ray_batch_ctrl_c_cancels_keeps_finished_files_and_resumes(tmp_path, weights):
    pytest.importorskip("ray")
    (tmp_path / "in").mkdir()
    for i in range(4):
        write_video(tmp_path / "in" / f"clip{i}.mp4", frames=20)
    # `--ray` starts its own Ray instance, given 2 CPUs and workers with a slow fake backend here
    script = ("import functools, json, sys, ray; sys.path.insert(0, sys.argv[1]); "
              "ray.init = functools.partial(ray.init, num_cpus=2, runtime_env=json.loads(sys.argv[2])); "
              "from pose3d.cli import main; main(sys.argv[3:])")
    env = json.dumps(_worker_env(tmp_path, **{DELAY: "0.15"}))
    command = [sys.executable, "-c", script, str(TESTS), env, "lift", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               "--ray", "--weights", str(weights)]
    # its own process group, which Ctrl-C in a terminal signals as a whole (Ray's processes too)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
                               start_new_session=True)
    # waits only until a video is recorded: seconds on an idle machine, minutes at load 14
    err = interrupt_after_first_video(process, tmp_path / "out", lambda: os.killpg(process.pid, signal.SIGINT), 600)
    if process.returncode == 4 and "cannot start a local Ray instance" in err:
        pytest.skip("Ray's own start timed out (an overloaded machine); nothing of pose3d's ran")
    assert process.returncode == 130, err
    assert_interrupted_batch_resumes(command, tmp_path / "out", videos=4)
