"""fnotui's command grammar, declared once: the options of every subcommand.

app/cli.py builds its argparse parsers from these declarations, and ``command_line`` builds
argument lists from the same ones: the engine process of a launch (engine/control/launch.py)
and the commands run on another host through ssh (engine/control/remote.py). So the engine
never spells a command line by hand, and a flag renamed here is renamed everywhere.

Only the dashboard's own options (colours, the ssh link) are declared in app/cli.py: nothing
builds them. Every command reads ``--arms``, ``--profile`` and ``--out`` the same way: ``--out``
is always the study's output directory.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    help: str
    metavar: str | None = None
    default: Any = None
    action: str = "store"  # store, append or store_true
    type: Any = None

    def add_to(self, parser, suppress_default: bool = False) -> None:
        """Declare the option on an argparse parser (or group). With ``suppress_default`` a
        parser leaves the value alone when the option is absent: a subcommand then keeps what
        the main parser read before it (``fnotui --arms X launch A``); ``fill_defaults``
        completes the namespace."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": self.help, "action": self.action}
        if self.action != "store_true":
            kwargs["metavar"] = self.metavar
        if self.type is not None:
            kwargs["type"] = self.type
        default = list(self.default or []) if self.action == "append" else self.default
        if self.action == "store_true":
            default = False
        kwargs["default"] = argparse.SUPPRESS if suppress_default else default
        parser.add_argument(self.flag, **kwargs)

    def emit(self, value: Any) -> list[str]:
        """The arguments that give this option ``value``; none for its default."""
        if value is None or value is False or value == self.default:
            return []
        if self.action == "store_true":
            return [self.flag]
        values = value if self.action == "append" else [value]
        # A value that starts with '-' would read as an option: glue it to its flag.
        return [
            a
            for v in values
            for a in ([f"{self.flag}={v}"] if str(v).startswith("-") else [self.flag, str(v)])
        ]


ARMS = Option("--arms", "arms", "arms file (default: ./arms.toml)", "FILE", "arms.toml")
PROFILE = Option(
    "--profile",
    "profile",
    "apply [profiles.NAME] of the arms file (e.g. quick); its runs go to <output_dir>_NAME",
    "NAME",
)
OUT = Option("--out", "out", "the study's output directory (overrides [study] output_dir)", "DIR")
STUDY = (ARMS, PROFILE, OUT)

SET = Option(
    "--set",
    "overrides",
    "override a knob for every selected arm; repeatable; data knobs as data.KEY "
    "(e.g. --set epochs=2 --set data.train_stride=32)",
    "KEY=VALUE",
    [],
    "append",
)
DEVICE = Option(
    "--device",
    "device",
    "auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...; with --max-parallel a list "
    "(cuda:0,cuda:1) and auto means every GPU",
    "DEVICE",
    "auto",
)
MAX_PARALLEL = Option(
    "--max-parallel",
    "max_parallel",
    "wait in the device queue until fewer than N engines use the device "
    "(arms launched from the dashboard always queue, default 1)",
    "N",
    type=positive_int,
)
RESUME = Option(
    "--resume",
    "resume",
    "continue each arm from its last epoch-end checkpoint",
    action="store_true",
)
RESTART = Option(
    "--restart",
    "restart",
    "move an arm's earlier run to <output_dir>/.archive/ and start over",
    action="store_true",
)
AGAIN = (RESUME, RESTART)  # a tuple inside a command's options: mutually exclusive

QUEUED_DEVICE = Option(
    "--device",
    "device",
    "where the arms may train: auto (every GPU, else the CPU), cpu, cuda:1, or a list such as "
    "cuda:0,cuda:1 (each arm takes the first free one)",
    "DEVICE",
    "auto",
)
QUEUED_MAX_PARALLEL = Option(
    "--max-parallel",
    "max_parallel",
    "engines at a time per device (default 1); the others wait, queued",
    "N",
    1,
    type=positive_int,
)

RUNS = Option(
    "--runs", "runs", "the older name of --out: the study output directory to read", "DIR"
)
REPORT = Option(
    "--report", "report", "report directory (default: <study output dir>/report)", "DIR"
)
BUNDLE = Option(
    "--bundle",
    "bundle",
    "also archive every arm's evidence (config, history, metrics, stats, checkpoint, "
    "telemetry, run.log) into DIR",
    "DIR",
)

FROM = Option("--from", "known", "what the client already holds (base64 JSON)", "B64")
FROM_STDIN = Option(
    "--from-stdin",
    "from_stdin",
    "read what the client holds as one JSON line on stdin (fnotui --remote)",
    action="store_true",
)
POLL = Option("--poll", "poll", "poll interval", "S", 0.5, type=float)
MAX_SECONDS = Option("--max-seconds", "max_seconds", "end after S seconds", "S", type=float)

EVALUATE_DEVICE = Option(
    "--device",
    "device",
    "where to predict (default cpu: a study may be training on the GPUs, and the test image "
    "is small); auto, cuda, cuda:1, ...",
    "DEVICE",
    "cpu",
)

SWEEP_LIST = Option("--list", "list", "list the points and their run state", action="store_true")
FOREGROUND = Option(
    "--foreground", "foreground", "train the points here, one after the other", action="store_true"
)
SWEEP_MAX_PARALLEL = Option(
    "--max-parallel",
    "max_parallel",
    "engines at a time per device (default 1), as for fnotui launch",
    "N",
    type=positive_int,
)


def executor_kind(text: str) -> str:
    kinds = ("local", "slurm", "submitit-local")
    if text not in kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(kinds)}")
    return text


EXECUTOR = Option(
    "--executor",
    "executor",
    "local (detached engines here, through the device queue), slurm (one Slurm job per point, "
    "through submitit; the run directories must be on a filesystem the nodes share) or "
    "submitit-local (the same jobs with submitit's local executor, without a cluster)",
    "KIND",
    "local",
    type=executor_kind,
)
SLURM_PARTITION = Option(
    "--slurm-partition", "slurm_partition", "Slurm partition (overrides [study.slurm])", "NAME"
)
SLURM_GPUS = Option("--slurm-gpus", "slurm_gpus", "GPUs per task (Slurm --gpus-per-task)", "N")
SLURM_CPUS = Option("--slurm-cpus", "slurm_cpus", "CPUs per task (Slurm --cpus-per-task)", "N")
SLURM_MEM = Option("--slurm-mem", "slurm_mem", "memory per node (Slurm --mem: 16G, 4000)", "MEM")
SLURM_TIME = Option(
    "--slurm-time",
    "slurm_time",
    "time limit per job: minutes or D-HH:MM:SS (required for slurm, here or in [study.slurm])",
    "TIME",
)
SLURM_EXTRA = Option(
    "--slurm-extra",
    "slurm_extra",
    "a further sbatch parameter, e.g. account=proj or qos=short; repeatable",
    "KEY=VALUE",
    [],
    "append",
)
SLURM = (EXECUTOR, SLURM_PARTITION, SLURM_GPUS, SLURM_CPUS, SLURM_MEM, SLURM_TIME, SLURM_EXTRA)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line in fnotui --help
    description: str
    names: tuple[str, str] | None  # (dest, metavar) of the positional names, one or more
    options: tuple  # Options, and tuples of mutually exclusive Options

    def flat_options(self) -> list[Option]:
        return [o for item in self.options for o in (item if isinstance(item, tuple) else (item,))]


# Starting an arm whose memory estimate exceeds its device's memory is refused (exit 2) unless
# --force (engine/training/memory_check.py).
FORCE = Option(
    "--force",
    "force",
    "start even when the memory estimate exceeds the device's memory",
    action="store_true",
)

RUN_OPTIONS = (*STUDY, SET, DEVICE, MAX_PARALLEL, AGAIN, FORCE)

COMMANDS = {
    c.name: c
    for c in (
        Command(
            "run",
            "train arms in the foreground, one readable line per epoch",
            "Train the arms here, one after the other (also spelled fnotui --run ARM ...).",
            ("names", "ARM"),
            RUN_OPTIONS,
        ),
        Command(
            "list",
            "arms and the state of their runs",
            "List the arms and the state of their runs (also spelled fnotui --list); names the "
            "profiles that have runs elsewhere.",
            None,
            STUDY,
        ),
        Command(
            "launch",
            "start arms as detached engines, through the device queue",
            "Start each arm as a detached engine (its own session: it survives this shell, "
            "the dashboard and an ssh hang-up); output goes to the arm's run.log. Engines "
            "wait in the device queue, first come first served, until a device has fewer "
            "than --max-parallel busy slots. An arm that is queued or running is refused.",
            ("names", "ARM"),
            (*STUDY, SET, QUEUED_DEVICE, QUEUED_MAX_PARALLEL, AGAIN, FORCE),
        ),
        Command(
            "stop",
            "graceful stop (SIGTERM); continue later with --resume",
            "Ask running arms to stop gracefully (SIGTERM): each finishes its current step, "
            "saves model, history and checkpoint, writes a final status, exits. Continue "
            "later with --resume.",
            ("names", "ARM"),
            STUDY,
        ),
        Command(
            "export",
            "stats.json per arm, study metrics, summary.md",
            "Write stats.json per arm, the study metrics table and summary.md (with figures) "
            "into the report directory; runs that are missing, partial or still in progress "
            "are used as far as possible and listed as problems. --out is the study's output "
            "directory, as in every command (it was the report directory before --report); "
            "a study directory without any run is refused (exit 2) and nothing is written.",
            None,
            (*STUDY, RUNS, REPORT, BUNDLE),
        ),
        Command(
            "stream",
            "the remote half of fnotui --remote (JSON lines on stdout)",
            "Write the study's new telemetry, status and artifacts to stdout as JSON lines, "
            "as they appear, until stdout closes: the remote half of fnotui --remote (run "
            "through ssh; see engine/live/stream.py).",
            None,
            (*STUDY, FROM, FROM_STDIN, POLL, MAX_SECONDS),
        ),
        Command(
            "evaluate",
            "re-score finished runs with the current evaluation code",
            "Re-score finished runs with the current evaluation code: rebuild each arm's "
            "generator from its config.json and model.pt (the last epoch's weights, or for a "
            "run stopped with fnotui stop the weights at the stop, which the metrics then "
            "name), load its dataset from the study cache, and rewrite metrics.json and "
            "recon.npz; a metrics record marked reevaluated is appended to its telemetry. An "
            "arm whose engine is alive, or whose run failed or crashed, is refused and left "
            "untouched (exit 2). Run fnotui export afterwards to refresh stats.json and "
            "summary.md.",
            ("names", "ARM"),
            (*STUDY, EVALUATE_DEVICE),
        ),
        Command(
            "sweep",
            "list, launch or train every point of [sweeps.NAME]",
            "Run every point of a [sweeps.NAME] of the arms file: each point is a run named "
            "<arm>.<key>-<value>... (fnotui sweep NAME --list shows them). By default the "
            "points start as detached engines through the device queue, as with fnotui "
            "launch; --foreground trains them here one after the other. stop, evaluate, "
            "--resume, --restart and the dashboard take the point names like arm names. With "
            "--executor slurm each point is a Slurm job (submitit); fnotui stop cancels it, "
            "--resume resubmits it from its checkpoint (docs/slurm.md).",
            ("sweep", "NAME"),
            (
                *STUDY,
                SET,
                (SWEEP_LIST, FOREGROUND),
                QUEUED_DEVICE,
                SWEEP_MAX_PARALLEL,
                AGAIN,
                FORCE,
                *SLURM,
            ),
        ),
    )
}


def fill_defaults(namespace: argparse.Namespace, command: str | None) -> argparse.Namespace:
    """Give every option of ``command`` (None: the main parser's run options) that the
    command line left out its declared default."""
    options = COMMANDS[command].flat_options() if command else COMMANDS["run"].flat_options()
    for option in options:
        if not hasattr(namespace, option.dest):
            default = option.default
            if option.action == "append":
                default = list(default or [])
            elif option.action == "store_true":
                default = False
            setattr(namespace, option.dest, default)
    return namespace


def command_line(command: str, names=(), **values) -> list[str]:
    """The fnotui arguments that run ``command`` on ``names`` with ``values`` (option dests;
    a value that is None, False or the option's default is left out)."""
    spec = COMMANDS[command]
    by_dest = {o.dest: o for o in spec.flat_options()}
    unknown = set(values) - set(by_dest)
    if unknown:
        raise ValueError(f"fnotui {command} has no option for {sorted(unknown)}")
    args = [command, *map(str, names)]
    for dest, value in values.items():
        args += by_dest[dest].emit(value)
    return args


def engine_line(arm: str, **values) -> list[str]:
    """The arguments of a headless engine for one arm: the run command in its flag spelling,
    ``--run ARM``, which stop's guard against a recycled pid (and an older fnotui's) looks
    for on an engine's command line."""
    return ["--run", *command_line("run", [arm], **values)[1:]]
