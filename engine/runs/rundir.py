"""The layout of one arm's run directory: every file name lives here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.runs.telemetry import TELEMETRY_FILE

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
RECON_FILE = "recon.npz"
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
LOG_FILE = "run.log"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def telemetry(self) -> Path:
        return self.root / TELEMETRY_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def history(self) -> Path:
        return self.root / HISTORY_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def model(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_FILE

    @property
    def recon(self) -> Path:
        return self.root / RECON_FILE

    @property
    def status(self) -> Path:
        return self.root / STATUS_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE


# Run names (arms and sweep points) become directory names: a portable, shell-safe alphabet.
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def data_cache_dir(output_dir: Path) -> Path:
    """Datasets are shared by every arm of a study with the same recipe, keyed by recipe hash."""
    return Path(output_dir) / ".cache" / "data"
