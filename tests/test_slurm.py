"""`fnotui sweep --executor slurm`: a real tiny sweep on a real single-node Slurm (tests/slurm.py)
submitted, run to completion, cancelled with `fnotui stop` and resubmitted with `--resume`; the
same flows with submitit's local executor (which needs no cluster); and the bad input that must
leave nothing submitted and nothing written."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slowstudy import wait_for
from tests.tiny import tiny_study

REPO = Path(__file__).resolve().parents[1]

SWEEPS = {
    "seeds": {"arms": ["base"], "grid": {"seed": [11, 12]}},
    "long": {"arms": ["long"], "grid": {"seed": [21]}},
}
POINTS = ("base.seed-11", "base.seed-12")
LONG = "long.seed-21"


def write_study(root: Path, slurm: dict | None = None) -> Path:
    """The tiny sweep study, with ``slurm`` as its [study.slurm] table."""
    return tiny_study(
        root,
        "slurm_sweep",
        {"base": {}, "long": {"epochs": 5000}},  # long is stopped long before its end
        study={"slurm": slurm} if slurm is not None else {},
        sweeps=SWEEPS,
        architecture="cnn",
        epochs=1,
        infer_batch_size=7,
        seed=3,
    )


def slurm_sweep(study: Path, *flags: str, **kw) -> subprocess.CompletedProcess:
    """``fnotui sweep seeds --executor slurm`` on the study."""
    arms = str(study / "arms.toml")
    return fnotui("sweep", "seeds", "--arms", arms, "--executor", "slurm", *flags, **kw)


def fnotui(*args, env: dict | None = None, prelude: str = "", timeout: float = 120):
    code = f"import sys\n{prelude}\nfrom app.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def epoch_lines(run: Path) -> int:
    """Epochs the engine has reported in run.log (written line by line, as they end)."""
    log = run / "run.log"
    return log.read_text(errors="replace").count(" epoch ") if log.exists() else 0


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def state_of(study: Path, name: str, env: dict | None = None) -> str:
    """The run's state as `fnotui list` prints it (the CLI asks Slurm how ended jobs ended)."""
    out = fnotui("list", "--arms", str(study / "arms.toml"), env=env)
    for line in out.stdout.splitlines():
        words = line.split()
        if words and words[0] == name:
            return words[1]
    raise AssertionError(out.stdout + out.stderr)


# -- bad input: nothing submitted, nothing written ------------------------------------------


def test_without_submitit_exit_2_and_nothing_written(tmp_path):
    study = write_study(tmp_path / "s")
    # submitit absent as an import would find it absent (the module lookup fails).
    out = slurm_sweep(study, "--slurm-time", "5", prelude="sys.modules['submitit'] = None")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "needs submitit" in out.stderr and "pip install" in out.stderr
    assert not (study / "runs").exists()


def test_unreachable_controller_exit_1_and_nothing_written(tmp_path):
    pytest.importorskip("submitit")
    study = write_study(tmp_path / "s")
    conf = tmp_path / "dead.conf"
    # A controller on a port where nothing listens.
    conf.write_text(
        "ClusterName=dead\nSlurmctldHost=localhost\nSlurmctldPort=1\nMessageTimeout=2\n"
        "AuthType=auth/munge\nNodeName=localhost CPUs=1\nPartitionName=debug Nodes=localhost\n"
    )
    out = slurm_sweep(study, "--slurm-time", "5", env={"SLURM_CONF": str(conf)})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "not reachable" in out.stderr or "no Slurm client" in out.stderr, out.stderr
    assert "nothing was submitted" in out.stderr or "no Slurm client" in out.stderr
    assert not (study / "runs").exists()


@pytest.mark.parametrize(
    "slurm, flags, message",
    [
        ({"partion": "gpu"}, [], "unknown key 'partion' (did you mean 'partition'?)"),
        ({"cpus": 0}, [], "'cpus' has bad value 0"),
        ({"time": "soon"}, [], "bad time limit 'soon'"),
        (None, [], "needs a time limit"),
        (None, ["--slurm-time", "5", "--slurm-extra", "account"], "expected KEY=VALUE"),
        (None, ["--slurm-time", "5", "--foreground"], "choose one"),
    ],
)
def test_bad_slurm_settings_exit_2_and_nothing_written(tmp_path, slurm, flags, message):
    pytest.importorskip("submitit")
    study = write_study(tmp_path / "s", slurm)
    out = slurm_sweep(study, *flags)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert not (study / "runs").exists()


def test_the_file_gives_the_resources_and_flags_override_it(tmp_path):
    from engine.study.arms import load_study
    from engine.study.slurm import SlurmOptions

    slurm = {"partition": "gpu", "time": "1-00:00:00", "gpus": 1, "extra": {"account": "proj"}}
    study = write_study(tmp_path / "s", slurm)
    loaded = load_study(study / "arms.toml", validate_models=False).slurm
    assert loaded == SlurmOptions(partition="gpu", gpus=1, time=24 * 60, extra={"account": "proj"})
    flags = SlurmOptions(partition="debug", time=90, extra={"qos": "short"})
    assert loaded.merged(flags) == SlurmOptions(
        partition="debug", gpus=1, time=90, extra={"account": "proj", "qos": "short"}
    )


def test_a_job_ended_by_slurm_shows_as_such(tmp_path):
    """The states run_state derives from what the CLI recorded from squeue/sacct."""
    from engine.runs.status import record_slurm_state, run_state

    run = tmp_path / "r"
    run.mkdir()

    def given(**st):
        (run / "status.json").write_text(json.dumps({"slurm_job_id": "7", **st}))

    given(state="killed", executor="slurm")  # SIGTERM at the time limit: a graceful stop
    assert record_slurm_state(run, "7", "TIMEOUT")
    assert run_state(run) == "slurm:TIMEOUT"
    given(state="killed", executor="slurm")  # fnotui stop cancelled it: the user's stop
    record_slurm_state(run, "7", "CANCELLED")
    assert run_state(run) == "killed"
    given(state="queued", pid=None, host=None, heartbeat=0)  # waiting in Slurm's queue
    assert run_state(run) == "queued"
    record_slurm_state(run, "7", "CANCELLED")  # cancelled before it started
    assert run_state(run) == "slurm:CANCELLED"
    given(state="running", pid=None, host="node1", heartbeat=0)  # the node died under it
    record_slurm_state(run, "7", "NODE_FAIL")
    assert run_state(run) == "slurm:NODE_FAIL"
    given(state="finished")
    record_slurm_state(run, "7", "COMPLETED")
    assert run_state(run) == "finished"
    assert not record_slurm_state(run, "8", "TIMEOUT")  # another job's news: not this run's


# -- the flows, on a real Slurm and with submitit's local executor --------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("submitit")
    from tests.slurm import LocalSlurm, SlurmUnavailable

    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
    except SlurmUnavailable as exc:
        slurm.stop()
        print(f"\nreal-Slurm tests skipped: {exc}")
        pytest.skip(f"no single-node Slurm here: {exc}")
    yield slurm
    slurm.stop()


def flows(study: Path, executor: str, env: dict, flags=()) -> None:
    try:
        _flows(study, executor, env, flags)
    finally:  # a failed test leaves no engine training on shared CPUs
        for run in (study / "runs").glob("*/status.json"):
            pid = json.loads(run.read_text()).get("pid")
            if isinstance(pid, int) and json.loads(run.read_text()).get("state") == "running":
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        if executor == "slurm":
            subprocess.run(["scancel", "--user", "root"], env={**os.environ, **env}, check=False)


def _flows(study: Path, executor: str, env: dict, flags=()) -> None:
    arms = str(study / "arms.toml")
    runs = study / "runs"

    def sweep(*args):
        return fnotui("sweep", *args, "--arms", arms, "--executor", executor, *flags, env=env)

    # Submitted, run to completion.
    out = sweep("seeds")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("submitted base.seed-1") == 2 and f"{executor} job" in out.stdout
    for point in POINTS:
        wait_for(lambda p=point: state_of(study, p, env) == "finished", 180, f"{point} finished")
        st = status(runs / point)
        assert st["executor"] == executor and st["slurm_job_id"]
        header = json.loads((runs / point / "telemetry.jsonl").read_text().splitlines()[0])
        assert header["slurm_job_id"] == st["slurm_job_id"]
    listed = fnotui("sweep", "seeds", "--list", "--arms", arms, env=env).stdout
    assert listed.count("finished") == 2

    # Submitted again without --resume or --restart: refused, nothing submitted.
    again = sweep("seeds")
    assert again.returncode == 2 and "--resume" in again.stderr, again.stderr

    # A long point: cancelled with fnotui stop while it trains ...
    run = runs / LONG
    out = sweep("long")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: epoch_lines(run) >= 2, 180, "the long point training")
    first_job = status(run)["slurm_job_id"]
    stopped = fnotui("stop", LONG, "--arms", arms, env=env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    if executor == "slurm":
        assert f"cancelled {LONG}'s Slurm job {first_job}" in stopped.stdout
    wait_for(lambda: status(run)["state"] == "killed", 90, "the cancelled run saved and stopped")
    wait_for(lambda: state_of(study, LONG, env) == "killed", 60, "killed in fnotui list")
    done = status(run)["epoch"]

    # ... and resubmitted from its checkpoint with --resume: a new job continues the run. With
    # the local executor through `fnotui launch --resume` (the dashboard's resume: the
    # control resubmits a batch run as a batch run, with the resources of its submission).
    if executor == "slurm":
        out = sweep("long", "--resume")
    else:
        out = fnotui("launch", LONG, "--resume", "--arms", arms, env=env)
        assert f"resubmitted {LONG} (resume): {executor} job" in out.stdout, out.stdout
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(resume)" in out.stdout
    wait_for(
        lambda: status(run).get("pid") is not None and status(run)["slurm_job_id"] != first_job,
        120,
        "the resubmitted job's engine",
    )
    wait_for(lambda: status(run)["epoch"] > done, 120, "the resumed run's next epoch")
    assert b'"type":"segment"' in (run / "telemetry.jsonl").read_bytes()
    assert status(run)["epoch"] > done
    fnotui("stop", LONG, "--arms", arms, env=env)
    wait_for(lambda: status(run)["state"] == "killed", 90, "the resumed run stopped")


@pytest.mark.slow
def test_sweep_on_a_real_slurm(cluster, tmp_path):
    study = write_study(tmp_path / "s")
    flows(study, "slurm", cluster.env, flags=("--slurm-time", "30", "--slurm-cpus", "1"))
    jobs = cluster.run("squeue", "-h", "-t", "all", "-o", "%i %T").stdout
    assert "COMPLETED" in jobs and "CANCELLED" in jobs, jobs


@pytest.mark.slow
def test_sweep_with_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    flows(write_study(tmp_path / "s"), "submitit-local", {})


def submit_long(cluster, tmp_path: Path, minutes: int) -> tuple[Path, Path, dict]:
    """The long point submitted to the real cluster with a time limit: (study, run dir, env)."""
    study = write_study(tmp_path / "s")
    arms, env = str(study / "arms.toml"), cluster.env
    out = fnotui(
        "sweep", "long", "--arms", arms, "--executor", "slurm", "--slurm-time", str(minutes), env=env
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return study, study / "runs" / LONG, env


@pytest.mark.slow
def test_a_real_time_limit_shows_as_timeout_and_resumes(cluster, tmp_path):
    """A one-minute limit: SIGUSR2 before it, the engine saves and stops, the run shows as
    slurm:TIMEOUT (not killed, not crashed), and --resume resubmits it from its checkpoint."""
    study, run, env = submit_long(cluster, tmp_path, minutes=1)
    arms = str(study / "arms.toml")
    try:
        wait_for(lambda: state_of(study, LONG, env) == "slurm:TIMEOUT", 240, "slurm:TIMEOUT")
        assert (run / "checkpoint.pt").is_file()
        listed = fnotui("sweep", "long", "--list", "--arms", arms, env=env).stdout
        assert "slurm:TIMEOUT" in listed
        out = fnotui(
            "sweep", "long", "--arms", arms, "--executor", "slurm", "--slurm-time", "30",
            "--resume", env=env,
        )  # fmt: skip
        assert out.returncode == 0 and "(resume)" in out.stdout, out.stdout + out.stderr
        assert state_of(study, LONG, env) in ("queued", "running")
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, check=False)


@pytest.mark.slow
def test_a_node_failure_requeues_the_job_and_it_continues_from_its_checkpoint(cluster, tmp_path):
    """The node goes down under a training point: Slurm stops the engine (it saves) and puts
    the job back in its queue. The run reads as queued, "requeued by Slurm" (not killed by the
    user, not crashed), and the job's next attempt resumes it from its checkpoint by itself."""
    study, run, env = submit_long(cluster, tmp_path, minutes=30)
    try:
        wait_for(lambda: epoch_lines(run) >= 2, 180, "the point training")
        job, first_pid = status(run)["slurm_job_id"], status(run)["pid"]
        down = cluster.run("scontrol", "update", "NodeName=localhost", "State=DOWN", "Reason=t")
        assert down.returncode == 0, down.stderr
        wait_for(lambda: status(run)["state"] == "killed", 60, "the engine saved and stopped")
        stopped_at = status(run)["epoch"]
        wait_for(lambda: state_of(study, LONG, env) == "queued", 60, "queued again")
        assert status(run)["slurm_reason"].startswith("requeued by Slurm")
        # Slurm holds a requeued job back for a while (BeginTime); the node is back at once (its
        # slurmd answers). Releasing the job before slurmd has torn down the stopped attempt
        # (KillWait, 10 s here) drains the node ("Duplicate jobid"), so wait past it first.
        time.sleep(20)
        cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        wait_for(lambda: status(run)["pid"] not in (None, first_pid), 120, "the next attempt")
        wait_for(lambda: status(run)["epoch"] > stopped_at, 120, "training past the stop")
        assert status(run)["slurm_job_id"] == job and state_of(study, LONG, env) == "running"
        assert b'"type":"segment"' in (run / "telemetry.jsonl").read_bytes()  # resumed, not anew
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, check=False)
        cluster.run("scontrol", "update", "NodeName=localhost", "State=RESUME")
