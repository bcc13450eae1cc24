"""engine/locking.py and the mode of atomically written files: real locks, real files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.locking import hold, try_lock

REPO = Path(__file__).resolve().parents[2]


def test_try_lock_is_exclusive_and_released_by_closing(tmp_path):
    path = tmp_path / "x.lock"
    first = try_lock(path)
    assert first is not None
    assert try_lock(path) is None  # flock is per open file: a second open conflicts
    first.close()
    again = try_lock(path)
    assert again is not None
    again.close()


def test_hold_says_when_it_waits_and_holds_for_its_block(tmp_path):
    path = tmp_path / "x.lock"
    waited = []
    with hold(path, on_wait=lambda: waited.append(True)):
        assert try_lock(path) is None
    assert waited == []  # nobody held it
    held = try_lock(path)
    # Another process waits for our lock, says so, then gets it once we close ours.
    code = (
        "import sys\n"
        "from engine.locking import hold\n"
        f"with hold({str(path)!r}, on_wait=lambda: print('waiting', flush=True)):\n"
        "    print('held', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "waiting"
    held.close()
    assert proc.stdout.readline().strip() == "held"
    assert proc.wait(30) == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_get_the_mode_of_every_other_artifact(tmp_path):
    # telemetry.jsonl and run.log are opened with open(): 0666 less the umask. The atomically
    # written status, config, metrics and report files must get the same mode.
    for umask in (0o022, 0o077, 0o002):
        old = os.umask(umask)
        try:
            folder = tmp_path / f"u{umask:o}"
            folder.mkdir()
            atomic_write_json(folder / "status.json", {"state": "running"})
            with open(folder / "telemetry.jsonl", "a") as fh:
                fh.write("{}\n")
        finally:
            os.umask(old)
        assert _mode(folder / "status.json") == 0o666 & ~umask
        assert _mode(folder / "status.json") == _mode(folder / "telemetry.jsonl")
        assert not list(folder.glob(".*.tmp"))
