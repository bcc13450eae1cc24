"""What one dashboard shows and acts on: the study, its control, and how to read its runs.

Built by the CLI (here or ``--remote``) and by tests, given whole to ``FnotuiApp``. Importing
it does not import Textual.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the CLI imports this before the dashboard's modules
    from engine.control.base import Control
    from engine.live.runstore import RunStore
    from engine.study.arms import Study


@dataclass
class Session:
    study: Study
    control: Control  # launch, stop, export: here (LocalControl) or on the study's host
    arms_file: Path  # for titles and short paths: the local arms file (a remote study's mirror)
    live: bool = True  # poll the run directories; False reads them once (tests)
    poll_interval: float = 0.4
    # A store whose first (large) read ``preload`` started before Textual was imported; the
    # reader shows the rows as that read publishes them and polls once it is done.
    store: RunStore | None = None
    preload: threading.Thread | None = None
    preload_error: str | None = None  # what stopped the first read, said once it is shown

    def start_first_read(self) -> threading.Thread:
        """The store's first poll in a thread (``preload``); it publishes every run's row as
        it goes (engine/live/runstore.py)."""
        self.preload = threading.Thread(
            target=self._first_read, name="fnotui-first-read", daemon=True
        )
        self.preload.start()
        return self.preload

    def _first_read(self) -> None:
        """A failure is kept for the dashboard to show, never lost with the thread."""
        import logging

        try:
            self.store.poll()
        except Exception as exc:
            logging.getLogger("fnotui.reader").exception("first read")
            self.preload_error = f"{type(exc).__name__}: {exc}"

    @classmethod
    def local(cls, study: Study, arms_file: Path, **options) -> Session:
        """A dashboard on a study on this machine. ``options`` are this class's fields (live,
        poll_interval, ...) and, by every other name, LocalControl's launch options (profile,
        out, device, max_parallel, overrides), so its signature is written once, there."""
        from engine.control.local import LocalControl

        own = {f.name for f in fields(cls)}
        launch = {k: v for k, v in options.items() if k not in own}
        # export_in_process=False: the dashboard stays small (see LocalControl)
        control = LocalControl(study, arms_file, export_in_process=False, **launch)
        return cls(
            study, control, Path(arms_file), **{k: v for k, v in options.items() if k in own}
        )
