"""The control interface: launch, resume, stop and export the runs of one study.

Two implementations: ``LocalControl`` (engine/control/local.py) acts on this machine,
``RemoteControl`` (engine/control/remote.py) runs the same fnotui commands on the study's host
through ssh. The CLI and the dashboard hold one of them and never ask which: whatever differs
between here and there lives behind these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FnotuiError

MODES = (None, "resume", "restart")


class ControlError(FnotuiError):
    """A launch, stop or export was refused or failed; the message says why (bad input: the
    arm is running or not, there is no run to export, the remote command failed)."""


@dataclass(frozen=True)
class Outcome:
    """What one action did, for a line on the console or a notification."""

    message: str
    pid: int | None = None  # an engine started by this process
    files: tuple[Path, ...] = ()  # written by an export here
    problems: tuple[str, ...] = ()  # evidence an export could not use


@dataclass(frozen=True)
class LinkState:
    """The link to a remote study's host, for a title that counts down to the next attempt."""

    state: str  # connecting | connected | reconnecting | failed | closed
    error: str = ""  # why the last connection ended
    retry_at: float | None = None  # time.time() of the next attempt while reconnecting
    last_heard: float | None = None  # time.time() of the last line from the host


class Control(ABC):
    """Acts on the runs of one study. ``where`` names the host for messages (None: here)."""

    where: str | None = None

    @abstractmethod
    def launch(self, arm: str, mode: str | None = None) -> Outcome:
        """Start ``arm`` as a detached engine through the device queue; ``mode`` is None (an
        arm without a run), "resume" or "restart". Returns once the engine holds its arm."""

    def resume(self, arm: str) -> Outcome:
        return self.launch(arm, "resume")

    @abstractmethod
    def stop(self, arm: str) -> Outcome:
        """Ask the arm's engine to stop gracefully (it saves, then exits)."""

    @abstractmethod
    def export(self, report: Path | None = None, bundle: Path | None = None) -> Outcome:
        """Write the study's stats, metrics table and summary (``report``: default
        <output dir>/report); refused when the study has no run at all."""

    def reap(self) -> list[tuple[str, int, str]]:
        """(arm, exit code, last log line) of engines started here that have exited."""
        return []

    def link(self) -> str | None:
        """The state of the link to the study's host (None: the study is here)."""
        return None

    def link_state(self) -> LinkState | None:
        """``link`` in parts (None: the study is here)."""
        return None

    def reconnect(self) -> bool:
        """Try the link to the study's host now; False when there is no link."""
        return False

    def close(self) -> None:
        """Let go of what the control holds (the ssh link of a remote study)."""
        return None
