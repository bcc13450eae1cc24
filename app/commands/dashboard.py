"""The dashboard (``fnotui`` with no command, here or ``--remote``) and ``fnotui stream``, the
remote half that feeds a remote dashboard through ssh."""

from __future__ import annotations

import sys
from pathlib import Path

from app.commands import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, Exit, bad_input, err, load


def _connect_remote(args):
    """Start mirroring the remote study: (study, the mirror's arms file, RemoteControl)."""
    import os
    import shlex

    from engine.control.remote import RemoteControl, open_mirror, study_values
    from engine.live.ssh import RemoteError, Target
    from engine.study.arms import load_study

    with bad_input():
        target = Target.parse(args.remote)
    study = study_values(args.arms, args.profile, args.out)
    ssh = shlex.split(args.ssh or os.environ.get("FNOTUI_SSH") or "ssh")
    mirror = open_mirror(
        target,
        Path(args.mirror) if args.mirror else None,
        ssh=ssh,
        fnotui=args.remote_fnotui,
        study=study,
    )
    print(f"fnotui: connecting to {target.label} through {ssh[0]}…", file=sys.stderr, flush=True)
    try:
        mirror.start()
    except RemoteError as exc:
        err(str(exc))
        raise Exit(EXIT_RUN_FAILED) from None
    try:
        with bad_input("the remote arms file: "):
            remote_study = load_study(
                mirror.arms_file,
                profile=args.profile,
                overrides=args.overrides,
                output_dir=mirror.runs_dir,
                validate_models=False,
            )
    except Exit:
        mirror.close()
        raise
    control = RemoteControl(
        mirror,
        study,
        overrides=args.overrides,
        device=args.device,
        max_parallel=args.max_parallel or 1,
        force=args.force,
    )
    return remote_study, mirror.arms_file, control


def cmd_dashboard(args) -> int:
    import os

    from engine.live.prefetch import start_prefetch

    # The child process that will read the runs, started first: its imports (numpy, polars)
    # overlap with loading the study and Textual's start-up here.
    prefetch = start_prefetch()
    try:
        session = _local_or_remote_session(args, prefetch)
    except BaseException:
        if prefetch is not None:
            prefetch.close()
        raise
    session.start_first_read()
    # Textual reads the colour system when it is imported: set it first. ssh does not forward
    # COLORTERM, so a truecolor terminal reached over ssh is seen as 256 colours anyway.
    if args.color_system:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = args.color_system
    from app.tui import FnotuiApp

    try:
        FnotuiApp(session).run()
    finally:
        session.control.close()
    return EXIT_OK


def _local_or_remote_session(args, prefetch):
    """The dashboard's session and its run store, whose first read (possibly a million
    records) the child process ``prefetch`` does while Textual is imported and set up; the
    rows are shown as it goes."""
    from app.session import Session
    from engine.live.runstore import RunStore

    if args.remote:
        study, arms_file, control = _connect_remote(args)
        session = Session(study, control, arms_file)
    else:
        study = load(args)
        session = Session.local(
            study,
            Path(args.arms),
            profile=args.profile,
            out=Path(args.out) if args.out else None,
            device=args.device,
            max_parallel=args.max_parallel or 1,
            overrides=args.overrides,
            force=args.force,
        )
    session.store = RunStore.from_study(study, prefetch=prefetch)
    return session


def cmd_stream(args) -> int:
    import base64
    import json
    import os

    from engine.live.stream import run_stream

    study = load(args, overrides=False)
    try:
        if args.from_stdin:
            known = json.loads(sys.stdin.readline() or "{}")
        else:
            known = json.loads(base64.b64decode(args.known)) if args.known else {}
    except ValueError as exc:
        err(f"--from: {exc}")
        return EXIT_BAD_INPUT
    run_stream(study, sys.stdout, known, poll_s=args.poll, max_s=args.max_seconds)
    # After a dropped link stdout is a broken pipe: make the interpreter's final flush quiet.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK
