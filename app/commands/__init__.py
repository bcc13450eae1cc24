"""The subcommands of fnotui, one function each (``cmd_<name>(args) -> exit code``).

app/cli.py parses the command line and dispatches here; this is where engine exceptions become
a message and an exit code. Heavy engine modules are imported inside the commands, so that
``fnotui --help`` and the read-only commands start fast and never import torch or Textual
without need.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Exit(Exception):
    """End the command with ``code``; its message has been printed."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def err(message: str) -> None:
    print(f"fnotui: error: {message}", file=sys.stderr)


@contextmanager
def bad_input(prefix: str = "") -> Iterator[None]:
    """Bad input inside the block (an arms file, a name, a directory, a refused action) is
    printed and ends the command with exit 2."""
    from engine.control.base import ControlError
    from engine.errors import ConfigError

    try:
        yield
    except (ConfigError, ControlError) as exc:
        err(f"{prefix}{exc}")
        raise Exit(EXIT_BAD_INPUT) from None


def load(args, *, validate_models: bool = False, output_dir=None, overrides: bool = True):
    """The study the command line names (--arms, --profile, --out, --set); exit 2 if bad."""
    from engine.study.arms import load_study

    with bad_input():
        return load_study(
            args.arms,
            profile=args.profile,
            overrides=getattr(args, "overrides", None) if overrides else None,
            output_dir=output_dir if output_dir is not None else args.out,
            validate_models=validate_models,
        )


def load_named(args, validate_models: bool = False):
    """(study, names) for the commands that act on named runs: each name checked (an arm or a
    sweep point) before anything acts."""
    study = load(args, validate_models=validate_models)
    with bad_input():
        return study, [study.arm(name).name for name in args.names]


def each_arm(names: list[str], act: Callable[[str], str]) -> int:
    """Run ``act(name)`` for every arm, printing what it returns; an arm it refuses is reported
    and skipped, and makes the exit code 2 (an OS error: 1)."""
    from engine.control.base import ControlError
    from engine.errors import ConfigError

    code = EXIT_OK
    for name in names:
        try:
            print(act(name), flush=True)
        except (ConfigError, ControlError) as exc:
            err(str(exc))
            code = max(code, EXIT_BAD_INPUT)
        except OSError as exc:
            err(f"{name}: {exc}")
            code = max(code, EXIT_RUN_FAILED)
    return code
