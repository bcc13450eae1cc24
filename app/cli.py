"""fnotui's entry point: the command grammar, parsed, and dispatched to app/commands/.

``fnotui COMMAND ...`` (run, list, launch, stop, export, stream, evaluate, sweep); with no
command, the dashboard. ``fnotui --run ARM`` and ``fnotui --list`` are the same as ``run`` and
``list``, kept because the design card and existing scripts spell them so. The options are
declared once, in engine/control/grammar.py, from which the engine also builds the command
lines it runs (an engine process, a command on a remote host). Textual is imported only when
the dashboard opens, so headless use on a GPU box never needs a terminal.
"""

from __future__ import annotations

import argparse
import sys

from app.commands import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, Exit
from engine.control.grammar import COMMANDS, RUN_OPTIONS, STUDY, Command, fill_defaults

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUN_FAILED", "main"]

EPILOG = """\
examples:
  fnotui                                         the dashboard on ./arms.toml and its runs
  fnotui run arm_stable_warmup                   train one arm of ./arms.toml in the foreground
  fnotui run arm_stable_warmup --profile quick   a few-minute CPU version (runs in <output_dir>_quick)
  fnotui run arm_control --set epochs=2 --set data.train_stride=32
  fnotui run arm_control --resume                continue after a crash, kill or stop
  fnotui list                                    arms and the state of their runs
  fnotui launch arm_control arm_stable           detached engines that outlive this shell,
                                                 one at a time per device (queued)
  fnotui launch --max-parallel 2 --device cuda:0,cuda:1 arm_control arm_stable arm_stable_lowlr
  fnotui stop arm_control                        graceful stop (SIGTERM); continue with --resume
  fnotui sweep seeds --list                      the runs of [sweeps.seeds] and their state
  fnotui sweep seeds --max-parallel 4            launch them all through the device queue
  fnotui export [--out STUDY_DIR] [--report DIR] [--bundle DIR]
                                                 stats.json per arm, study metrics, summary.md
  fnotui evaluate arm_control arm_stable         re-score finished runs with the current
                                                 evaluation code (metrics.json, recon.npz)
  fnotui --remote me@gpubox:~/study              the dashboard here, the study on gpubox (ssh)

  fnotui --run ARM ... and fnotui --list are the same as fnotui run ARM ... and fnotui list.
  --arms, --profile and --out pick the study in every command; --out is always the study's
  output directory. fnotui COMMAND --help lists a command's options.

exit codes:
  0    every requested arm finished
  1    a run failed or ran out of memory (the error is in the arm's status.json, telemetry
       and run.log)
  2    bad input: arms file, --set, unknown arm or profile, unusable --out, a memory estimate
       above the device's memory (--force tries anyway); nothing was written
  130  stopped by SIGINT/SIGTERM after saving the model, history and a final status
"""

# The dashboard's own options: nothing builds them, so they are declared here, not in the
# grammar. (dest, default) pairs, filled in when the dashboard opens.
DASHBOARD_DEFAULTS = {
    "remote": None,
    "ssh": None,
    "remote_fnotui": "fnotui",
    "mirror": None,
    "color_system": None,
}


def _declare(parser, options) -> None:
    """Declare grammar options on ``parser``; a tuple of options is mutually exclusive."""
    for item in options:
        if isinstance(item, tuple):
            group = parser.add_mutually_exclusive_group()
            for option in item:
                option.add_to(group, suppress_default=True)
        else:
            item.add_to(parser, suppress_default=True)


def _study_parent() -> argparse.ArgumentParser:
    """--arms, --profile, --out: the parent parser of every command and of the dashboard."""
    parent = argparse.ArgumentParser(add_help=False)
    _declare(parent.add_argument_group("the study"), STUDY)
    return parent


def _add_command(sub, command: Command, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        command.name,
        parents=[parent],
        help=command.summary,
        description=command.description,
        prog=f"fnotui {command.name}",
    )
    if command.names:
        dest, metavar = command.names
        p.add_argument(dest, nargs="+" if dest == "names" else None, metavar=metavar)
    _declare(p, [o for o in command.options if o not in STUDY])


# The dashboard's options for following a study through ssh: (flag, metavar, help).
REMOTE_OPTIONS = (
    (
        "--remote",
        "[USER@]HOST[:DIR]",
        "run the dashboard here and follow the study in DIR on HOST through ssh (remote: "
        "fnotui stream); reconnects after a drop; --arms/--profile/--out are read on the remote "
        "side",
    ),
    (
        "--ssh",
        "CMD",
        'ssh command line (default: $FNOTUI_SSH or ssh), e.g. "ssh -p 2222 -i ~/.ssh/gpu"',
    ),
    (
        "--remote-fnotui",
        "CMD",
        "fnotui on the remote host (default: fnotui on its PATH), e.g. "
        "'~/fnotui/.venv/bin/fnotui' (quoted: the remote shell expands ~)",
    ),
    (
        "--mirror",
        "DIR",
        "local copy of the remote run files (default: ~/.cache/fnotui/remote/HOST-HASH)",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parent = _study_parent()
    p = argparse.ArgumentParser(
        prog="fnotui",
        description="Train and compare FNO generator arms for ptychographic reconstruction.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[parent],
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS.values():
        _add_command(sub, command, parent)
    legacy = p.add_mutually_exclusive_group()
    legacy.add_argument(
        "--run",
        nargs="+",
        metavar="ARM",
        dest="legacy_run",
        default=argparse.SUPPRESS,
        help="the same as fnotui run ARM ...",
    )
    legacy.add_argument(
        "--list",
        action="store_true",
        dest="legacy_list",
        default=argparse.SUPPRESS,
        help="the same as fnotui list",
    )
    # The dashboard's launches, and --run, take the run options.
    _declare(p, [o for o in RUN_OPTIONS if o not in STUDY])
    remote = p.add_argument_group("following a study on another machine (no open ports)")
    for flag, metavar, help_text in REMOTE_OPTIONS:
        remote.add_argument(flag, metavar=metavar, default=argparse.SUPPRESS, help=help_text)
    p.add_argument(
        "--color-system",
        choices=("auto", "standard", "256", "truecolor"),
        default=argparse.SUPPRESS,
        help="dashboard colours (default: auto, from the terminal); over ssh, "
        "COLORTERM is not forwarded, so try 256 or truecolor explicitly",
    )
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """The namespace of one command line, every option of its command filled in; ``command``
    is None for the dashboard."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    given = set(vars(args)) - {"command"}
    if command is None:
        if hasattr(args, "legacy_run"):
            args.command, args.names = "run", args.legacy_run
        elif getattr(args, "legacy_list", False):
            args.command = "list"
    else:
        # Options before the command word belong to the main parser; refuse those the command
        # does not take rather than ignore them.
        spec = COMMANDS[command]
        takes = {o.dest for o in spec.flat_options()} | {spec.names[0] if spec.names else ""}
        stray = sorted(given - takes)
        if stray:
            flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
            what = ", ".join(flags.get(d, d) for d in stray)
            parser.error(f"fnotui {command} does not take {what}")
    if args.command is None:
        for dest, default in DASHBOARD_DEFAULTS.items():
            if not hasattr(args, dest):
                setattr(args, dest, default)
    # --list and the dashboard read the run options too (--set shows overridden configs).
    fill_defaults(args, args.command if args.command not in (None, "list") else None)
    return args


def main(argv: list[str] | None = None) -> int:
    from app.commands.dashboard import cmd_dashboard, cmd_stream
    from app.commands.manage import cmd_evaluate, cmd_export, cmd_launch, cmd_stop
    from app.commands.train import cmd_list, cmd_run, cmd_sweep

    handlers = {
        None: cmd_dashboard,
        "run": cmd_run,
        "list": cmd_list,
        "launch": cmd_launch,
        "stop": cmd_stop,
        "export": cmd_export,
        "stream": cmd_stream,
        "evaluate": cmd_evaluate,
        "sweep": cmd_sweep,
    }
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return handlers[args.command](args)
    except Exit as exc:
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
