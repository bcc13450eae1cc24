"""fnotui in a real pseudo-terminal, for tests that drive the dashboard as a user does."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Terminal:
    """fnotui on a pty of 120x32; ``text`` is everything it drew, escape codes removed."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 32, 120, 0, 0))
        env = {
            **os.environ,
            **(env or {}),
            "TERM": "xterm-256color",
            "COLUMNS": "120",
            "LINES": "32",
        }
        # A session of its own with the pty as controlling terminal, as a login shell gives
        # it: closing the master then sends SIGHUP, exactly as a dropped ssh session does.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO once the process side is gone
                return
            if not data:
                return
            self.raw += data

    @property
    def text(self) -> str:
        return ANSI.sub(b"", bytes(self.raw)).decode("utf-8", "replace")

    def wait_text(self, needle: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while needle not in self.text:
            if time.time() > deadline:
                raise AssertionError(
                    f"{needle!r} never appeared; screen text ends with {self.text[-600:]!r}"
                )
            time.sleep(0.1)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def kill(self) -> None:
        """Test teardown: never leave a dashboard behind (it would hold a core)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def hang_up(self) -> None:
        os.close(self.master)  # the terminal goes away: the kernel sends SIGHUP
