"""Control of a study on another host: the same fnotui commands, run there through ssh.

The mirror (engine/live/remote.py) carries the study's files here; this runs ``fnotui launch``,
``stop`` and ``export`` in the study's directory on the host, over the same ssh set-up, with
command lines built from the grammar the parser reads (engine/control/grammar.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine.control.base import MODES, Control, ControlError, LinkState, Outcome
from engine.control.grammar import command_line
from engine.live.remote import RemoteMirror
from engine.live.ssh import Target, default_mirror_root


class RemoteCommandError(ControlError):
    """A command on the remote host could not run or exited non-zero."""


def study_values(arms: str | None, profile: str | None, out: str | None) -> dict:
    """The options that pick the study on the remote side, as given to ``--remote``."""
    return {"arms": arms, "profile": profile, "out": out}


def open_mirror(
    target: Target,
    root: Path | None,
    *,
    ssh: list[str],
    fnotui: str,
    study: dict,
    silence_s: float = 20.0,
) -> RemoteMirror:
    """A mirror of the remote study that ``study`` (``study_values``) selects; not started."""
    argv = command_line("stream", **study, from_stdin=True)
    key = command_line("stream", **study)[1:]  # the mirror directory is per study selection
    return RemoteMirror(
        target,
        Path(root) if root is not None else default_mirror_root(target, key),
        ssh=ssh,
        fnotui=fnotui,
        stream_argv=argv,
        silence_s=silence_s,
    )


class RemoteControl(Control):
    """``fnotui launch|stop|export`` on the mirror's host; outcomes carry their output."""

    def __init__(
        self,
        mirror: RemoteMirror,
        study: dict | None = None,
        *,
        overrides=(),
        device: str = "auto",
        max_parallel: int = 1,
        force: bool = False,
    ):
        self.mirror = mirror
        self.study = dict(study or {})  # arms/profile/out, as given to --remote
        self.overrides = list(overrides)  # --set, for launches only
        self.device = device
        self.max_parallel = max_parallel
        self.force = force  # passed on: the host checks the memory estimate against its devices
        self.where = mirror.target.label

    def run(self, args: list[str], timeout: float = 120) -> str:
        m = self.mirror
        what = args[0]
        try:
            proc = subprocess.run(
                m.ssh_command(args),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RemoteCommandError(f"{what} on {m.target.label}: {exc}") from None
        if proc.returncode != 0:
            raise RemoteCommandError(
                f"{what} on {m.target.label} failed "
                f"(exit {proc.returncode}): {proc.stderr.strip() or proc.stdout}"
            )
        return proc.stdout.strip()

    def launch(self, arm: str, mode: str | None = None) -> Outcome:
        if mode not in MODES:
            raise ValueError(f"launch mode {mode!r}; expected one of {MODES}")
        args = command_line(
            "launch",
            [arm],
            **self.study,
            overrides=self.overrides,
            max_parallel=self.max_parallel,
            device=self.device,
            resume=mode == "resume",
            restart=mode == "restart",
            force=self.force,
        )
        return Outcome(self.run(args))

    def stop(self, arm: str) -> Outcome:
        return Outcome(self.run(command_line("stop", [arm], **self.study)))

    def export(self, report: Path | None = None, bundle: Path | None = None) -> Outcome:
        # The evidence (model.pt, checkpoints) is over there. The study directory goes as
        # --runs, which every fnotui release reads as the study's directory (--out meant the
        # report directory before --report existed).
        study = dict(self.study)
        runs = study.pop("out", None)
        args = command_line("export", **study, runs=runs, report=report, bundle=bundle)
        return Outcome(self.run(args, timeout=600))

    def link(self) -> str | None:
        return self.mirror.link

    def link_state(self) -> LinkState | None:
        m = self.mirror
        state, _, error = m.link.partition(":")
        if state.startswith("reconnecting"):
            state = "reconnecting"
        return LinkState(state, error.strip(), m.retry_at, m.last_heard)

    def reconnect(self) -> bool:
        self.mirror.reconnect_now()
        return True

    def close(self) -> None:
        self.mirror.close()
