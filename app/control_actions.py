"""What the dashboard asks of the study's control (launch, stop, export, reconnect), and how
each outcome is told in a toast.

A mixin of ``FnotuiApp``: the control (engine/control/) does the work, here or over ssh; these
methods decide what to ask (an arm with a run is resumed or restarted only after asking), run
each request in a worker thread and report its outcome. The export runs in another process
(the control starts ``python -m app.cli export`` here, or the same over ssh), so torch and
matplotlib never load into the dashboard.
"""

from __future__ import annotations

from textual import work

from app.toasts import outcome_text, problems_text
from engine.errors import FnotuiError
from engine.runs.status import ACTIVE_STATES


class ControlActions:
    """Launch, stop, export and reconnect for an App with ``control``, ``study``, ``snapshots``,
    ``arms_file`` and ``poll_now``."""

    def launch_arms(self, names: list[str]) -> None:
        """Start arms as detached engines; an arm that already has a run is resumed or
        restarted (its earlier run archived) only after asking."""
        from app.screens.choice import ChoiceScreen

        snaps = {s.name: s for s in self.snapshots}
        fresh, earlier = [], []
        for name in names:
            snap = snaps.get(name)
            if name not in self.study.arms:
                self.notify(
                    f"{name} is not in {self.arms_file.name}: cannot launch it",
                    severity="warning",
                    markup=False,
                )
            elif snap is not None and snap.state in ACTIVE_STATES:
                self.notify(f"{name} is already {snap.state}", severity="warning", markup=False)
            elif snap is not None and snap.has_run:
                earlier.append(name)
            else:
                fresh.append(name)
        if fresh:
            self._launch([(name, None) for name in fresh])
        if not earlier:
            return
        resumable = [n for n in earlier if snaps[n].state != "finished"]

        def chosen(mode: str | None) -> None:
            if mode == "resume":
                skipped = [n for n in earlier if n not in resumable]
                if skipped:
                    self.notify(
                        f"not resumed (already finished): {', '.join(skipped)}",
                        severity="warning",
                        markup=False,
                    )
                self._launch([(name, "resume") for name in resumable])
            elif mode == "restart":
                self._launch([(name, "restart") for name in earlier])

        listing = ", ".join(f"{n} ({snaps[n].state})" for n in earlier)
        choices = [("a", "Restart", "restart", "warning"), ("n", "Cancel", None, "primary")]
        if resumable:
            choices.insert(0, ("r", "Resume", "resume", "success"))
        self.push_screen(
            ChoiceScreen(
                f"Already run: {listing}",
                "Resume continues an unfinished run from its last epoch-end checkpoint. Restart "
                "moves the earlier run to <output_dir>/.archive/ and trains from scratch.",
                choices,
            ),
            chosen,
        )

    @work(thread=True, group="actions", description="launch", exit_on_error=False)
    def _launch(self, arms: list[tuple[str, str | None]]) -> None:
        # One at a time: each returns once its engine holds its arm (and its queue ticket),
        # so arms launched together queue in the order given.
        self._act(
            [
                (f"▶ launch {name}", lambda n=name, m=mode: self.control.launch(n, m))
                for name, mode in arms
            ]
        )

    def _report_exits(self) -> None:
        """Say how each engine started from here ended (reader thread)."""
        for name, code, tail in self.control.reap():
            if code == 0:
                self.call_from_thread(self.notify, f"{name} finished", markup=False)
                continue
            self.call_from_thread(
                self.notify,
                f"{name} exited with code {code}. {tail}",
                title="engine stopped",
                severity="warning",
                timeout=15,
                markup=False,
            )

    def stop_arms(self, names: list[str]) -> None:
        from app.screens.choice import ChoiceScreen

        running = [n for n in names if self._state(n) in ACTIVE_STATES]
        if not running:
            self.notify("no running arm selected", severity="warning", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._stop(running)

        self.push_screen(
            ChoiceScreen(
                f"Stop {', '.join(running)}?",
                "The engine finishes its current step, saves the model, history and a 'killed' "
                "status, then exits; it can be resumed later.",
                [("y", "Stop", True, "error"), ("n", "Cancel", None, "primary")],
            ),
            confirmed,
        )

    @work(thread=True, group="actions", description="stop", exit_on_error=False)
    def _stop(self, names: list[str]) -> None:
        self._act([(f"■ stop {name}", lambda n=name: self.control.stop(n)) for name in names])

    def action_export(self) -> None:
        self.notify("exporting in a separate process…", markup=False, timeout=4)
        self._export()

    @work(thread=True, exclusive=True, group="export", description="export", exit_on_error=False)
    def _export(self) -> None:
        # In another process, here or over ssh (see the module doc).
        self._act([("export", self.control.export)], timeout=15)

    def action_reconnect(self) -> None:
        if self.control.reconnect():
            self.notify(f"reconnecting to {self.control.where} now", markup=False, timeout=3)
            self.poll_now()
        else:
            self.notify("the study is on this machine: no link", markup=False, timeout=3)

    def _act(self, calls, timeout: float = 10) -> None:
        """Run control actions, (title, call) pairs, one by one (worker thread) and report
        each one's outcome under its title."""
        where = f" on {self.control.where}" if self.control.where else ""
        for title, call in calls:
            try:
                outcome = call()
            except (FnotuiError, OSError) as exc:  # refused (a ControlError) or bad input
                self.call_from_thread(
                    self.notify,
                    str(exc),
                    title=title + where,
                    severity="error",
                    timeout=15,
                    markup=False,
                )
                continue
            self.call_from_thread(
                self.notify,
                outcome_text(outcome, self.arms_file),
                title=title + where,
                timeout=timeout,
                markup=False,
            )
            if outcome.problems:
                self.call_from_thread(
                    self.notify,
                    problems_text(outcome.problems),
                    title=f"{title}: {len(outcome.problems)} problems",
                    severity="warning",
                    timeout=15,
                    markup=False,
                )
        self.poll_now()

    def _state(self, name: str) -> str:
        for s in self.snapshots:
            if s.name == name:
                return s.state
        return "not started"
