"""What one dashboard shows and acts on: the study, its control, and how to read its runs.

Built by the CLI (here or ``--remote``) and by tests, given whole to ``FnotuiApp``. Importing
it does not import Textual.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
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
    # reader joins ``preload`` before its first poll.
    store: RunStore | None = None
    preload: threading.Thread | None = None
    preload_error: str | None = None  # what stopped the first read, said once it is shown

    @classmethod
    def local(
        cls,
        study: Study,
        arms_file: Path,
        *,
        profile: str | None = None,
        out: Path | None = None,
        device: str = "auto",
        max_parallel: int = 1,
        overrides=(),
        **options,
    ) -> Session:
        """A dashboard on a study on this machine; launches take the given options."""
        from engine.control.local import LocalControl

        control = LocalControl(
            study,
            arms_file,
            profile=profile,
            out=out,
            device=device,
            max_parallel=max_parallel,
            overrides=overrides,
            export_in_process=False,  # the dashboard stays small: see LocalControl
        )
        return cls(study, control, Path(arms_file), **options)
