"""``fnotui --remote`` against a real OpenSSH server on 127.0.0.1 (tests/sshd.py): the mirror
follows a real engine through ``fnotui stream``, survives dropped connections and a server
that is down for a while, shows a kill -9 as crashed, and resumes and stops the arm over ssh;
at the end the mirrored files are byte-identical to the engine's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.control.remote import RemoteControl, open_mirror
from engine.live.remote import RemoteMirror
from engine.live.ssh import Target
from engine.runs.status import run_state
from engine.runs.telemetry import iter_records, resolve_segments
from tests.cli import fnotui
from tests.slowstudy import epochs_in, wait_for, write_slow_study
from tests.sshd import LoopbackSSHD, find_sshd

REPO = Path(__file__).resolve().parents[1]
FNOTUI = str(Path(sys.executable).parent / "fnotui")  # the installed console script


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    binary = find_sshd()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("sshd is missing: .ci/run installs openssh-server")
        pytest.skip("no sshd here (apt-get install openssh-server)")
    if not os.access(FNOTUI, os.X_OK):
        pytest.skip(f"{FNOTUI} missing: the project is not pip-installed in this environment")
    server = LoopbackSSHD(binary, tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def study(tmp_path) -> Path:
    return write_slow_study(tmp_path / "study", "remote")


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return fnotui(*args, cwd=cwd, timeout=120)


def remote_terminal(sshd, study: Path, root: Path, *args: str, env: dict | None = None):
    """The dashboard in a terminal, following ``study`` through ``sshd``, mirrored under root."""
    from tests.terminal import Terminal

    target, ssh = f"{sshd.destination}:{study}", " ".join(sshd.ssh)
    mirror = str(root / "mirror")
    remote = ("--remote", target, "--ssh", ssh, "--remote-fnotui", FNOTUI, "--mirror", mirror)
    return Terminal(root, *remote, *args, env=env or {})


def kill_engine(run: Path) -> None:
    """Teardown after a failure: no engine may outlive its test."""
    try:
        pid = json.loads((run / "status.json").read_text())["pid"]
        if run_state(run) in ("queued", "running"):
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def mirror_for(sshd, study: Path, root: Path) -> RemoteMirror:
    return open_mirror(
        Target.parse(f"{sshd.destination}:{study}"),
        root,
        ssh=sshd.ssh,
        fnotui=FNOTUI,
        study={},
        silence_s=8,
    )


@pytest.mark.slow  # starts a real engine
def test_mirror_follows_through_drops_crash_resume_and_stop(sshd, study, tmp_path):
    assert cli("launch", "slow", cwd=study).returncode == 0
    run = study / "runs" / "slow"
    mirror = mirror_for(sshd, study, tmp_path / "mirror")
    hello = mirror.start()
    try:
        assert hello["study"] == "remote" and hello["arms"] == ["slow"]
        assert mirror.arms_file.read_text() == (study / "arms.toml").read_text()
        mirrored = mirror.runs_dir / "slow"
        wait_for(lambda: epochs_in(mirrored) >= 2, what="mirrored epochs")
        assert run_state(mirrored) == "running"

        # 1. The connection dies (sshd's session process killed): reconnect, carry on.
        assert sshd.drop_connections() >= 1
        wait_for(lambda: mirror.connects == 2 and mirror.link == "connected", what="a reconnect")

        # 2. The server is down for a while (the engine keeps training), then back.
        sshd.stop()
        wait_for(lambda: mirror.link.startswith("reconnecting"), what="link down")
        before = epochs_in(run)
        wait_for(lambda: epochs_in(run) >= before + 2, what="epochs written while the link is down")
        sshd.start()
        wait_for(
            lambda: mirror.connects == 3 and mirror.link == "connected",
            timeout=90,
            what="a reconnect after the outage",
        )
        wait_for(lambda: epochs_in(mirrored) >= epochs_in(run) - 1, what="catching up")

        # 3. kill -9 the engine: the mirror says crashed (only the engine's host can know).
        pid = json.loads((run / "status.json").read_text())["pid"]
        wait_for(lambda: (run / "checkpoint.pt").is_file(), what="a checkpoint")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: run_state(mirrored) == "crashed", what="crashed in the mirror")

        # 4. Resume and stop over ssh, as the dashboard's keys do.
        control = RemoteControl(mirror, device="cpu", max_parallel=1)
        assert "launched slow" in control.launch("slow", "resume").message
        wait_for(lambda: run_state(mirrored) == "running", what="resumed in the mirror")
        resumed_at = epochs_in(run)
        wait_for(lambda: epochs_in(mirrored) >= resumed_at + 1, what="an epoch after resuming")
        assert "to stop" in control.stop("slow").message
        wait_for(lambda: run_state(mirrored) == "killed", what="killed in the mirror")
        time.sleep(2.5)  # one more poll of the stream after the engine's last write
    finally:
        mirror.close()
        kill_engine(run)

    # Nothing lost, nothing twice: the mirror is the engine's files, byte for byte.
    for name in ("telemetry.jsonl", "status.json", "history.json", "config.json"):
        assert (mirrored / name).read_bytes() == (run / name).read_bytes(), name
    records = resolve_segments(iter_records(mirrored / "telemetry.jsonl"))
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(len(steps)))
    assert sum(r["type"] == "segment" for r in records) == 1


def test_remote_cli_errors_are_clear(sshd, study, tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "--remote=-oProxyCommand=x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "expected [user@]host[:study_dir]" in bad.stderr

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "--remote",
            f"{sshd.destination}:{study}/nowhere",
            "--ssh",
            " ".join(sshd.ssh),
            "--remote-fnotui",
            FNOTUI,
            "--mirror",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert "cannot follow" in missing.stderr and "nowhere" in missing.stderr

    closed = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "--remote",
            f"{sshd.destination}:{study}",
            "--ssh",
            " ".join(sshd.ssh).replace(str(sshd.port), "1"),
            "--remote-fnotui",
            FNOTUI,
            "--mirror",
            str(tmp_path / "m2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert closed.returncode == 1 and "refused" in closed.stderr.lower()


def test_remote_dashboard_in_a_terminal_launches_and_follows(sshd, study, tmp_path):
    run = study / "runs" / "slow"
    tui = remote_terminal(sshd, study, tmp_path, "--device", "cpu")
    try:
        tui.wait_text("not started")  # the mirror's first content: the link is up
        tui.press("r")  # launches on the remote host, through ssh
        tui.wait_text("launch slow on")
        wait_for(lambda: epochs_in(run) >= 1, what="the remote engine")
        tui.wait_text("running")
        sshd.drop_connections()  # the stream's link; the title says so, then recovers
        tui.wait_text("link restored")
        tui.press("s")
        tui.wait_text("Stop slow?")
        tui.press("y")
        wait_for(lambda: run_state(run) == "killed", what="the remote stop")
        tui.wait_text("killed")
        tui.press("q")
        assert tui.proc.wait(20) == 0
    finally:
        tui.kill()
        kill_engine(run)


def test_mirror_directory_is_never_a_folder_of_real_runs_and_never_shared(tmp_path):
    from engine.live.ssh import RemoteError

    target = Target.parse("nobody@127.0.0.1:study")
    real = tmp_path / "real"
    (real / "runs" / "arm").mkdir(parents=True)
    with pytest.raises(RemoteError, match="not an fnotui mirror"):
        RemoteMirror(target, real).start(timeout=1)
    assert (real / "runs" / "arm").is_dir()

    first = RemoteMirror(target, tmp_path / "m")
    first._claim_root()
    try:
        with pytest.raises(RemoteError, match="in use by another"):
            RemoteMirror(target, tmp_path / "m").start(timeout=1)
    finally:
        first.close()


def test_targets_and_the_remote_command_line():
    from engine.live.ssh import remote_shell_command

    assert Target.parse("me@box:~/fnotui").study_dir == "fnotui"  # ssh starts in the home
    assert Target.parse("box:~").study_dir == ""
    t = Target.parse("box:/data/my study")
    assert (
        remote_shell_command(t, "fnotui", ["stream", "--arms", "a b.toml"])
        == "cd -- '/data/my study' && exec fnotui stream --arms 'a b.toml'"
    )
