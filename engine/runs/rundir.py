"""The layout of one arm's run directory: every file name lives here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.runs.telemetry import TELEMETRY_FILE


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def telemetry(self) -> Path:
        return self.root / TELEMETRY_FILE

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def recon(self) -> Path:
        return self.root / "recon.npz"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def log(self) -> Path:
        return self.root / "run.log"


# Run names (arms and sweep points) become directory names: a portable, shell-safe alphabet.
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def data_cache_dir(output_dir: Path) -> Path:
    """Datasets are shared by every arm of a study with the same recipe, keyed by recipe hash."""
    return Path(output_dir) / ".cache" / "data"

