"""Control of a study on this machine: detached engines, signals, the export, and the checks
that make bad input fail before anything is written."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from engine.control.base import MODES, Control, ControlError, Outcome
from engine.control.launch import (
    LaunchError,
    last_log_line,
    launch_detached,
    reap,
    stop_run,
    wait_started,
)
from engine.control.slurm import batch_executor, cancel, resubmit
from engine.errors import ConfigError
from engine.runs.rundir import RunDir
from engine.runs.status import run_state
from engine.study.arms import Study, load_study


class LocalControl(Control):
    """Launches ``fnotui --run`` engines of ``study`` with the caller's options (those of
    ``fnotui launch`` or of the dashboard), so an engine trains the config the caller shows."""

    def __init__(
        self,
        study: Study,
        arms_file: Path,
        *,
        profile: str | None = None,
        out: Path | None = None,
        device: str = "auto",
        max_parallel: int = 1,
        overrides=(),
        force: bool = False,
        export_in_process: bool = True,
    ):
        """``export_in_process=False`` (the dashboard) runs the export as ``python -m app.cli
        export``: torch and matplotlib then never load into a long-lived process, and their
        memory goes when the export ends."""
        self.study = study
        self.export_in_process = export_in_process
        self.arms_file = Path(arms_file)
        self.profile = profile
        self.out = Path(out) if out is not None else None
        self.device = device
        self.max_parallel = max_parallel
        self.overrides = list(overrides)
        # Start arms whose memory estimate exceeds their device's memory: the engine checks its
        # own device before it writes anything (and exits 2, which the launch reports).
        self.force = force
        self.launched: dict[int, str] = {}  # pid -> arm, engines started by this control

    def launch(self, arm: str, mode: str | None = None) -> Outcome:
        if mode not in MODES:
            raise ValueError(f"launch mode {mode!r}; expected one of {MODES}")
        run_dir = self.study.run_dir(arm)
        check_startable(run_dir, mode)
        if mode == "resume" and batch_executor(run_dir):  # a Slurm run resumes on Slurm
            return Outcome(resubmit(self, arm))
        pid = launch_detached(
            self.arms_file,
            arm,
            self.out,
            self.profile,
            self.device,
            run_dir=run_dir,
            mode=mode,
            overrides=self.overrides,
            max_parallel=self.max_parallel,
            force=self.force,
        )
        self.launched[pid] = arm
        # Return once the engine holds its arm (and its queue ticket): arms launched one after
        # the other queue in that order, what is reported (and a list right after) is true,
        # and an engine that exits at once is reported with its reason, not hidden.
        state, code = wait_started(pid, run_dir)
        if code is not None:
            self.launched.pop(pid, None)
            raise LaunchError(
                f"{arm}: the engine (pid {pid}) exited with code {code}: "
                f"{last_log_line(run_dir / 'run.log')}"
            )
        how = f" ({mode})" if mode else ""
        return Outcome(f"launched {arm}{how}: pid {pid}, {state}, log {run_dir / 'run.log'}", pid)

    def stop(self, arm: str) -> Outcome:
        cancelled = cancel(self.study.run_dir(arm), arm)  # a Slurm run: scancel its job
        if cancelled:
            return Outcome(cancelled)
        pid = stop_run(self.study.run_dir(arm))
        return Outcome(f"asked {arm} (pid {pid}) to stop", pid)

    def export(self, report: Path | None = None, bundle: Path | None = None) -> Outcome:
        from engine.reporting.export import export_study

        require_runs(self.study, self.out)
        if report is not None:
            check_output_dir(report, "--report")
        if not self.export_in_process:
            return self._export_subprocess(report, bundle)
        result = export_study(self.study, report, bundle=bundle)
        return Outcome(
            f"wrote {len(result.files)} files",
            files=tuple(result.files),
            problems=tuple(result.problems),
        )

    def _export_subprocess(self, report: Path | None, bundle: Path | None) -> Outcome:
        from engine.control.grammar import command_line

        args = command_line(
            "export",
            arms=self.arms_file.resolve(),
            profile=self.profile,
            out=self.out.resolve() if self.out is not None else None,
            report=Path(report).resolve() if report is not None else None,
            bundle=Path(bundle).resolve() if bundle is not None else None,
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "app.cli", *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=_repo_root(),  # the paths above are absolute
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ControlError(f"export: {exc}") from None
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise ControlError(f"export failed (exit {proc.returncode}): {' '.join(tail)}")
        lines = proc.stdout.splitlines()
        files = tuple(Path(line[6:]) for line in lines if line.startswith("wrote "))
        mark = "fnotui export: could not use: "
        problems = tuple(
            line[len(mark) :] for line in proc.stderr.splitlines() if line.startswith(mark)
        )
        return Outcome(f"wrote {len(files)} files", files=files, problems=problems)

    def reap(self) -> list[tuple[str, int, str]]:
        done = []
        for pid, code in reap():
            arm = self.launched.pop(pid, f"pid {pid}")
            log = self.study.run_dir(arm) / "run.log" if arm in self.study.arms else None
            done.append((arm, code, last_log_line(log) if log and code else ""))
        return done


def _repo_root() -> str:
    """Where ``app`` is importable from, whatever the dashboard's working directory."""
    return str(Path(__file__).resolve().parents[2])


# -- checks: bad input is refused (ConfigError, exit 2) before anything is written -----------


def check_output_dir(path: Path, what: str = "--out") -> None:
    """``path`` must be a writable directory, or one that can be made inside one."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        inside = "" if existing == path else f" ({existing} is a file)"
        raise ConfigError(f"{what} {path}: not a directory{inside}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {existing} is not writable")


def check_startable(run_dir: Path, mode: str | None) -> None:
    """Refuse a resume that cannot happen before an engine creates the run directory and its
    lock: exit 2 means nothing was written. The engine checks again under the arm's lock."""
    run = RunDir(Path(run_dir))
    if mode == "resume" and not run.checkpoint.is_file():
        raise ConfigError(
            f"cannot resume {run.root}: no checkpoint there (state: {run_state(run.root)})"
        )


def has_run(run_dir: Path) -> bool:
    """Whether an engine ever trained in ``run_dir`` (a refused launch leaves only run.log)."""
    run = RunDir(Path(run_dir))
    return any(p.is_file() for p in (run.status, run.telemetry, run.history))


def require_runs(study: Study, out: Path | None = None) -> None:
    """Refuse to export a study directory without a single run (a wrong --out or --profile
    would otherwise produce an empty report and exit 0)."""
    if any(has_run(study.run_dir(arm)) for arm in study.arms):
        return
    elsewhere = profiles_with_runs(study, out)
    hint = (
        "; runs exist under " + ", ".join(f"--profile {p}" for p in elsewhere)
        if elsewhere
        else "; is --out the study's output directory?"
    )
    raise ControlError(f"no usable run in {study.output_dir}: nothing to export{hint}")


def profiles_with_runs(study: Study, out: Path | None = None) -> dict[str | None, int]:
    """{profile: number of runs} for the arms file's other profiles (None: no profile) that
    have runs in their own output directories. Empty with an explicit ``out``: every profile
    then shares that directory."""
    if out is not None:
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        profiles = tomllib.loads(Path(study.path).read_text(encoding="utf-8")).get("profiles", {})
    except (OSError, ValueError):
        return {}
    found: dict[str | None, int] = {}
    for name in [None, *profiles]:
        if name == study.profile:
            continue
        try:
            # Warnings about another profile's set-up are not news to someone listing this one.
            with contextlib.redirect_stderr(io.StringIO()):
                other = load_study(study.path, profile=name, validate_models=False)
        except ConfigError:
            continue
        count = sum(has_run(other.run_dir(arm)) for arm in other.arms)
        if count:
            found[name] = count
    return found
