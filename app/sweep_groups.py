"""Sweep groups of the live runs: one row per set-up (a sweep point without its training seed).

A run's group is ``SweepPoint.group`` (engine/study/sweeps.py), or its own name for a run that is
no sweep point, so a plain arm and the points of a seeds-only sweep over it are one group, as
in the export. The statistics are the export's own (``engine.reporting.outcomes.group_outcome``:
what counts as settled, what is a collapse, the Wilson interval), computed on the snapshots.

While the dashboard's first read runs, a group with runs not read yet has no statistics
(``outcome`` None, ``unread`` > 0): a collapse fraction or a median over the runs read so far
would be shown as the group's, and would change as the rest arrive. Its row says how many of its
runs are read instead; its runs' states (status.json's) are shown, being true already.

Unlike the export, a plain arm outside every sweep is shown as a group of one: the group view
replaces the run table on screen, and a run that disappears from it (while running, say) is
worse than a row whose interval says how little one run tells (0/1: 0–79 %).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.live.snapshot import ArmSnapshot
from engine.reporting.outcomes import group_outcome
from engine.study.sweeps import SweepPoint


@dataclass(frozen=True, eq=False)
class GroupRow:
    """One group's runs and their outcome statistics (``group_outcome``'s dict)."""

    name: str
    snapshots: tuple[ArmSnapshot, ...]  # its runs, in study order
    labels: tuple[str, ...]  # what tells each run apart within the group: "seed 11"
    sweeps: tuple[str, ...]  # the sweeps its points come from (none: a plain arm alone)
    outcome: dict | None  # None while ``unread`` > 0
    unread: int = 0  # runs whose telemetry the first read has not reached yet

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.snapshots)


def group_of(name: str, points: dict[str, SweepPoint]) -> str:
    point = points.get(name)
    return point.group if point is not None else name


def group_names(names, points: dict[str, SweepPoint]) -> list[str]:
    """The groups of these runs, in the order the runs first name them."""
    return list(dict.fromkeys(group_of(n, points) for n in names))


def run_label(name: str, points: dict[str, SweepPoint]) -> str:
    """A run within its group: its seed ("seed 11"), "arm" for the arm itself (its seed is
    the arm's), or its name when it is no point of a seed sweep."""
    point = points.get(name)
    if point is None:
        return "arm"
    return f"seed {point.seed}" if point.seed is not None else name


def outcome_run(s: ArmSnapshot) -> dict:
    """What ``group_outcome`` reads of a run. A run that never started has no verdict yet
    (the store calls it incomplete; counted as such it would read '… 3' for three queued runs)."""
    started = s.has_run or s.n_steps > 0
    return {
        "state": s.state,
        "verdict": s.verdict_label if started else "",
        "val_loss_best": s.best_val,
        "amp_ssim": s.amp_ssim,
    }


def group_rows(
    snapshots: tuple[ArmSnapshot, ...],
    points: dict[str, SweepPoint],
    previous: dict[str, GroupRow] | None = None,
) -> list[GroupRow]:
    """One row per group of these runs, in the order the snapshots first name each group. A
    row of ``previous`` whose runs are the very same snapshot objects is returned as it is (the
    store keeps a run's snapshot until its row changes), so unchanged groups cost nothing."""
    members: dict[str, list[ArmSnapshot]] = {}
    for s in snapshots:
        members.setdefault(group_of(s.name, points), []).append(s)
    rows = []
    for name, snaps in members.items():
        old = (previous or {}).get(name)
        if old is not None and len(old.snapshots) == len(snaps):
            if all(a is b for a, b in zip(old.snapshots, snaps)):
                rows.append(old)
                continue
        sweeps = dict.fromkeys(points[s.name].sweep for s in snaps if s.name in points)
        unread = sum(not s.loaded for s in snaps)
        rows.append(
            GroupRow(
                name=name,
                snapshots=tuple(snaps),
                labels=tuple(run_label(s.name, points) for s in snaps),
                sweeps=tuple(sweeps),
                outcome=None if unread else group_outcome([outcome_run(s) for s in snaps]),
                unread=unread,
            )
        )
    return rows
