"""``fnotui --remote [user@]host[:study_dir]``: follow a study on another machine through ssh.

The local half of engine/live/stream.py. A background thread runs the system ``ssh`` (so keys,
agents, ~/.ssh/config, jump hosts and ControlMaster all work as the user set them up; no port is
opened anywhere) with ``fnotui stream`` as the remote command, and applies its messages to a
*mirror*: a local directory laid out like the remote study (``arms.toml`` and one run directory
per arm), which the ordinary dashboard then follows as if the study were local.

When the link drops (ssh exits, or no message for ``silence_s``), the thread reconnects with
growing pauses, telling the remote side how much of each file it already has, so nothing is
sent twice and nothing is lost. The run state the remote side sees (it can check the engine's
pid; we cannot) is written next to each mirrored status.json as ``.observed_state.json``,
which engine.runs.status.run_state trusts while it is fresh: a crashed remote run shows as crashed,
and a silent link turns into ``stale``, never into a live-looking run.

``RemoteMirror.ssh_command`` runs any fnotui command line on the host through the same ssh:
engine/control/remote.py uses it for launch, stop and export, and builds the stream's command
line (``stream_argv``) from the grammar in engine/control/grammar.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from engine.live.ssh import (
    BACKOFF_S,
    SSH_OPTIONS,
    RemoteError,
    Target,
    Watchdog,
    drain,
    remote_shell_command,
)
from engine.live.stream import (
    APPEND_FILES,
    HEAD_BYTES,
    PROTOCOL,
    SAFE_NAME,
    SNAPSHOT_FILES,
    b64,
    digest,
    unb64,
)
from engine.locking import try_lock
from engine.runs.status import MIRROR_MARK, OBSERVED_STATE_FILE


class RemoteMirror:
    """Keeps ``root`` a mirror of the remote study; ``start`` returns once the first hello
    arrived (or raises RemoteError with what ssh said)."""

    def __init__(
        self,
        target: Target,
        root: Path,
        *,
        ssh: list[str] | None = None,
        fnotui: str = "fnotui",
        stream_argv: list[str] | None = None,
        silence_s: float = 20.0,
    ):
        """``stream_argv`` is the remote ``fnotui stream`` command line, from ``stream``
        through ``--from-stdin`` (engine.control.remote.open_mirror builds it)."""
        self.target = target
        self.root = Path(root)
        self.ssh = list(ssh or ["ssh"])
        self.fnotui = fnotui
        self.stream_argv = list(stream_argv or [])
        self.silence_s = silence_s
        self.hello: dict | None = None
        self.link = "connecting"
        self.connects = 0  # successful (hello received) connections
        self.messages = 0
        self.last_error = ""
        # time.time() of the next connection attempt while waiting to reconnect (None
        # otherwise), and of the last line from the remote side: for a live countdown and age.
        self.retry_at: float | None = None
        self.last_heard: float | None = None
        self._retry_now = threading.Event()
        self._stop = threading.Event()
        self._hello_event = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._root_lock = None

    # -- paths -------------------------------------------------------------------------------

    @property
    def arms_file(self) -> Path:
        return self.root / "arms.toml"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def _arm_dir(self, arm: str) -> Path:
        if not SAFE_NAME.match(arm) or arm in (".", ".."):
            raise RemoteError(f"the remote side named an arm {arm!r}: refused")
        return self.runs_dir / arm

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> dict:
        self._claim_root()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="fnotui-remote", daemon=True)
        self._thread.start()
        if not self._hello_event.wait(timeout):
            self.close()
            raise RemoteError(
                f"no answer from {self.target.label} within {timeout:.0f} s"
                + (f": {self.last_error}" if self.last_error else "")
            )
        if self.hello is None:  # the first attempt failed for good
            self.close()
            raise RemoteError(f"cannot follow {self.target.label}: {self.last_error}")
        return self.hello

    def _claim_root(self) -> None:
        """The mirror directory is ours alone: made by us (a marker file, so that --mirror can
        never wipe a folder of real runs) and locked while we run (two dashboards appending to
        one mirror would corrupt it)."""
        root, mark = self.root, self.root / MIRROR_MARK
        if root.is_dir() and any(root.iterdir()) and not mark.exists():
            raise RemoteError(
                f"{root} is not empty and not an fnotui mirror: refusing to use "
                f"it (give --mirror an empty or new directory)"
            )
        root.mkdir(parents=True, exist_ok=True)
        fh = try_lock(mark, "a")  # held for the mirror's lifetime
        if fh is None:
            raise RemoteError(
                f"{root} is in use by another fnotui --remote dashboard; close it "
                f"or give this one another --mirror"
            )
        self._root_lock = fh

    def close(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._root_lock is not None:
            self._root_lock.close()
            self._root_lock = None

    def drop_link(self) -> None:
        """End the current ssh (the thread reconnects): for tests and a manual 'reconnect'."""
        self._kill()

    def reconnect_now(self) -> None:
        """Cut the pause before the next attempt, or the current link if there is one (a
        half-dead link that has not yet gone silent long enough to be noticed)."""
        self._retry_now.set()
        if self.link != "connecting":
            self._kill()

    def _kill(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def ssh_command(self, fnotui_args: list[str]) -> list[str]:
        """The local command line that runs ``fnotui ARGS`` in the study dir on the host."""
        return [
            *self.ssh,
            *SSH_OPTIONS,
            self.target.destination,
            remote_shell_command(self.target, self.fnotui, fnotui_args),
        ]

    def command(self) -> list[str]:
        # What we hold goes on stdin, not the command line: one argument may not exceed
        # 128 KiB on Linux, and a large study's holdings would.
        if not self.stream_argv:
            raise RemoteError("no stream command line: open the mirror with open_mirror")
        return self.ssh_command(self.stream_argv)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                got_hello = self._session()
            except Exception as exc:  # a bug or a full disk: say it, do not die silently
                self.last_error = f"{type(exc).__name__}: {exc}"
                got_hello = False
            if self._stop.is_set():
                break
            if self.hello is None and not got_hello:
                # Never connected: a wrong host, key or path will not fix itself.
                self.link = f"failed: {self.last_error}"
                self._hello_event.set()
                return
            attempt = 0 if got_hello else attempt + 1
            pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            self.retry_at = time.time() + pause
            self.link = f"reconnecting in {pause} s: {self.last_error}"
            self._retry_now.clear()
            deadline = time.monotonic() + pause
            while not self._stop.is_set() and not self._retry_now.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._retry_now.wait(min(left, 0.5))
            self._retry_now.clear()
            self.retry_at = None
        self.link = "closed"

    def _session(self) -> bool:
        """One ssh connection; True if it delivered a hello."""
        self.link = "connecting"
        self.last_error = ""
        try:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self.last_error = f"cannot run {self.ssh[0]}: {exc}"
            return False
        with self._lock:
            self._proc = proc
        if self._stop.is_set():  # close() ran before we could be killed by it
            proc.kill()
        try:
            proc.stdin.write(json.dumps(self._holdings()).encode() + b"\n")
            proc.stdin.close()
        except OSError:
            pass  # ssh already exited: its stderr says why
        stderr_tail: list[str] = []
        threading.Thread(target=drain, args=(proc.stderr, stderr_tail), daemon=True).start()
        watchdog = Watchdog(self.silence_s, proc)
        got_hello = False
        try:
            for raw in proc.stdout:
                watchdog.feed()
                self.last_heard = time.time()
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    self.last_error = f"not a stream message: {raw[:120]!r}"
                    if got_hello:
                        break
                    continue  # before the hello: a login banner or an rc file's echo
                if message.get("t") == "hello":
                    self._on_hello(message)
                    got_hello = True
                    self.connects += 1
                    self.link = "connected"
                    self._hello_event.set()
                elif got_hello:
                    self._apply(message)
                self.messages += 1
        except (RemoteError, OSError, ValueError) as exc:
            self.last_error = str(exc)
        finally:
            watchdog.stop()
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
            with self._lock:
                self._proc = None
        tail = " ".join(line.strip() for line in stderr_tail[-3:] if line.strip())
        if watchdog.fired:
            self.last_error = f"no message for {self.silence_s:.0f} s; link presumed dead"
        elif not self._stop.is_set() and (tail or code):
            self.last_error = tail or f"ssh exited with code {code}"
        elif not self.last_error:
            self.last_error = "the stream ended"
        return got_hello

    # -- messages ----------------------------------------------------------------------------

    def _on_hello(self, message: dict) -> None:
        if message.get("protocol") != PROTOCOL:
            raise RemoteError(
                f"remote fnotui speaks stream protocol {message.get('protocol')},"
                f" this one {PROTOCOL}: update one of them"
            )
        _replace(self.arms_file, message["arms_text"].encode("utf-8"))
        runs = set(message.get("runs") or [])
        for old in self.runs_dir.iterdir():  # mirrored runs that no longer exist over there
            if old.is_dir() and old.name not in runs:
                shutil.rmtree(old, ignore_errors=True)
        self.hello = message

    def _apply(self, m: dict) -> None:
        kind = m.get("t")
        if kind == "tick":
            self._observe_all(m.get("states") or {}, m.get("time"))
            return
        run = self._arm_dir(m["arm"])
        run.mkdir(parents=True, exist_ok=True)
        if kind == "state":
            self._observe(run, m["state"], m.get("time"))
            return
        name = m["name"]
        if name not in APPEND_FILES + SNAPSHOT_FILES:
            raise RemoteError(f"the remote side sent a file {name!r}: refused")
        path = run / name
        if kind == "append":
            size = path.stat().st_size if path.exists() else 0
            if m["offset"] != size:
                raise RemoteError(
                    f"{m['arm']}/{name}: remote offset {m['offset']} but the "
                    f"mirror holds {size} bytes; resynchronising"
                )
            with open(path, "ab") as fh:
                fh.write(unb64(m["data"]))
        elif kind == "reset":
            path.unlink(missing_ok=True)  # a new inode: the dashboard's tailer starts over
        elif kind == "file":
            _replace(path, unb64(m["data"]))
        elif kind == "gone":
            path.unlink(missing_ok=True)

    def _observe(self, run: Path, state: str, at: float | None) -> None:
        _replace(
            run / OBSERVED_STATE_FILE,
            json.dumps(
                {
                    "state": state,
                    "observed_by": self.target.label,
                    "at": time.time(),
                    "remote_time": at,
                }
            ).encode(),
        )

    def _observe_all(self, states: dict, at: float | None) -> None:
        for arm, state in states.items():
            if state:
                run = self._arm_dir(arm)
                if run.is_dir():
                    self._observe(run, state, at)

    def _holdings(self) -> dict:
        """What the mirror already has, per arm and file (sent as --from on reconnect)."""
        have: dict[str, dict] = {}
        if not self.runs_dir.is_dir():
            return have
        for run in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()):
            files = {}
            for name in APPEND_FILES:
                path = run / name
                if path.is_file():
                    with open(path, "rb") as fh:
                        head = fh.read(HEAD_BYTES)
                        size = fh.seek(0, os.SEEK_END)
                        fh.seek(max(0, size - HEAD_BYTES))
                        tail = fh.read(HEAD_BYTES)
                    files[name] = {"size": size, "head": b64(head), "tail": b64(tail)}
            for name in SNAPSHOT_FILES:
                path = run / name
                if path.is_file():
                    files[name] = {"digest": digest(path.read_bytes())}
            have[run.name] = files
        return have


def _replace(path: Path, data: bytes) -> None:
    """Write a mirror file so that readers see the old or the new content, never half. No
    fsync: the mirror is a cache of files that live (durably) on the remote host."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
