"""Expanding and validating a 1,000-point sweep (target: < 2 s).

A sweep of 10 seeds x 10 learning rates x 10 weight decays on the study's control arm (the hybrid
U-NO at N = 64 from arms.toml): ``load_study`` parses the grid, checks every value against its
knob, resolves each point like an arm and, with ``validate_models=True`` (what launching and
``fnotui sweep`` do), runs the generator's shape checks by building it on the meta device;
``validate_models=False`` is the dashboard's start-up. Prints the median of ``--repeat`` loads.

Run: python bench/sweep_expand.py [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.study import checks  # noqa: E402
from engine.study.arms import load_study  # noqa: E402

SWEEP = """
[sweeps.big]
arms = ["arm_control"]

[sweeps.big.grid]
seed = [{seeds}]
lr = [{lrs}]
weight_decay = [{wds}]
"""


def arms_file(folder: Path) -> Path:
    """The repository's arms.toml with a 1,000-point sweep appended."""
    base = (REPO / "arms.toml").read_text()
    sweep = SWEEP.format(
        seeds=", ".join(str(1000 + i) for i in range(10)),
        lrs=", ".join(f"{(i + 1) * 1e-4:.1e}" for i in range(10)),
        wds=", ".join(f"{i * 1e-5:.1e}" for i in range(10)),
    )
    path = folder / "arms.toml"
    path.write_text(base + sweep)
    return path


def cold() -> None:
    """Forget the per-process validation caches, so every timed load checks every config."""
    for cache in (checks.data_problem, checks.model_problem, checks.probe_twin_symmetry):
        cache.cache_clear()


def timed(path: Path, validate: bool) -> tuple[float, int]:
    cold()
    t0 = time.perf_counter()
    study = load_study(path, validate_models=validate)
    elapsed = time.perf_counter() - t0
    return elapsed, len(study.sweep("big"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one validated load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = arms_file(Path(tmp))
        # The first load pays the imports (torch, the generators, SciPy for the probe): timed
        # apart, since a CLI process pays them once whatever the sweep's size.
        first, points = timed(path, True)
        print(f"{points} points; first load in this process (imports included): {first:.2f} s")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            load_study(path, validate_models=True)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        for validate in (True, False):
            times = [timed(path, validate)[0] for _ in range(args.repeat)]
            print(
                f"validate_models={validate}: median {statistics.median(times):.3f} s "
                f"over {args.repeat} ({', '.join(f'{t:.3f}' for t in times)})"
            )
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
