"""The ssh side of following a remote study: where it is, how ssh is called, and link health.

``Target`` is ``[user@]host[:study_dir]``; the system ``ssh`` runs with ``SSH_OPTIONS`` (batch
mode, keep-alives, a connect timeout) so a dead link ends the process instead of hanging it;
``Watchdog`` kills it when the remote side's ticks stop arriving. engine/live/remote.py's mirror
uses these; nothing here knows the stream protocol.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError, FnotuiError

SSH_OPTIONS = (
    "-o",
    "BatchMode=yes",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=3",
    "-o",
    "ConnectTimeout=15",
)
BACKOFF_S = (1, 2, 4, 8, 15)


class RemoteError(FnotuiError):
    """The remote study cannot be reached or does not answer as ``fnotui stream``."""


@dataclass(frozen=True)
class Target:
    destination: str  # what ssh gets: host or user@host
    study_dir: str  # on the remote host; "" = the login directory

    @classmethod
    def parse(cls, text: str) -> Target:
        """``[user@]host[:study_dir]``. A port or key belongs in ~/.ssh/config or ``--ssh``.
        ``~/x`` means x in the remote home (where ssh starts), as scp reads it."""
        dest, _, path = text.partition(":")
        if not dest or dest.startswith("-") or any(c.isspace() for c in dest):
            raise ConfigError(f"--remote {text!r}: expected [user@]host[:study_dir]")
        if path == "~":
            path = ""
        elif path.startswith("~/"):
            path = path[2:]
        return cls(dest, path)

    @property
    def label(self) -> str:
        return f"{self.destination}:{self.study_dir}" if self.study_dir else self.destination


def remote_shell_command(target: Target, fnotui: str, args: list[str]) -> str:
    """The command line the remote login shell runs: cd to the study, then fnotui."""
    cd = f"cd -- {shlex.quote(target.study_dir)} && " if target.study_dir else ""
    return cd + "exec " + fnotui + " " + " ".join(shlex.quote(a) for a in args)


def default_mirror_root(target: Target, study_args: list[str] = ()) -> Path:
    """One mirror per remote study: host, directory and the arguments that pick the runs."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fnotui" / "remote"
    key = hashlib.sha256("\0".join([target.label, *study_args]).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", target.destination)
    return base / f"{safe}-{key}"


class Watchdog:
    """Kills the ssh process when no line arrived for ``silence_s`` (the remote side sends a
    tick every 2 s, so silence means a dead link that TCP has not noticed yet)."""

    def __init__(self, silence_s: float, proc: subprocess.Popen):
        self.silence_s = silence_s
        self.proc = proc
        self.fired = False
        self._last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def feed(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            if time.monotonic() - self._last > self.silence_s:
                self.fired = True
                if self.proc.poll() is None:
                    self.proc.kill()
                return


def drain(stream, tail: list[str]) -> None:
    for raw in stream:
        tail.append(raw.decode("utf-8", "replace"))
        del tail[:-20]
