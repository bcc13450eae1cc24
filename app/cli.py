"""fnotui's entry point: arguments, the headless ``--run``, ``--list``, and the dashboard.

This is the one place where engine exceptions become a message and an exit code. Textual is
imported only when the dashboard opens, so headless use on a GPU box never needs a terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
examples:
  fnotui                                         the dashboard on ./arms.toml and its runs
  fnotui --run arm_stable_warmup                 train one arm of ./arms.toml in the foreground
  fnotui --run arm_stable_warmup --profile quick a few-minute CPU version (runs in <output_dir>_quick)
  fnotui --run arm_control --set epochs=2 --set data.train_stride=32
  fnotui --run arm_control --resume              continue after a crash, kill or stop
  fnotui --list                                  arms and the state of their runs
  fnotui launch arm_control arm_stable           detached engines that outlive this shell,
                                                 one at a time per device (queued)
  fnotui launch --max-parallel 2 --device cuda:0,cuda:1 arm_control arm_stable arm_stable_lowlr
  fnotui stop arm_control                        graceful stop (SIGTERM); continue with --resume
  fnotui sweep seeds --list                      the runs of [sweeps.seeds] and their state
  fnotui sweep seeds --max-parallel 4            launch them all through the device queue
  fnotui export [--out DIR] [--bundle DIR]       stats.json per arm, study metrics, summary.md
  fnotui evaluate arm_control arm_stable         re-score finished runs with the current
                                                 evaluation code (metrics.json, recon.npz)
  fnotui --remote me@gpubox:~/study              the dashboard here, the study on gpubox (ssh)

exit codes:
  0    every requested arm finished
  1    a run failed (the error is in the arm's status.json, telemetry and run.log)
  2    bad input: arms file, --set, unknown arm or profile; nothing was written
  130  stopped by SIGINT/SIGTERM after saving the model, history and a final status
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnotui",
        description="Train and compare FNO generator arms for ptychographic reconstruction.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--run", nargs="+", metavar="ARM", help="train these arms, one after the other"
    )
    action.add_argument("--list", action="store_true", help="list arms and their run state")
    p.add_argument(
        "--arms", default="arms.toml", metavar="FILE", help="arms file (default: ./arms.toml)"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [study] output_dir)")
    p.add_argument(
        "--profile", metavar="NAME", help="apply [profiles.NAME] of the arms file (e.g. quick)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a knob for every selected arm; repeatable; data knobs as "
        "data.KEY (e.g. --set epochs=2 --set data.train_stride=32)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...; with "
        "--max-parallel a list (cuda:0,cuda:1) and auto means every GPU",
    )
    p.add_argument(
        "--max-parallel",
        type=_positive_int,
        metavar="N",
        help="wait in the device queue until fewer than N engines use the device "
        "(--run; arms launched from the dashboard always queue, default 1)",
    )
    remote = p.add_argument_group("following a study on another machine (no open ports)")
    remote.add_argument(
        "--remote",
        metavar="[USER@]HOST[:DIR]",
        help="run the dashboard here and follow the study in DIR on HOST "
        "through ssh (remote: fnotui stream); reconnects after a drop; "
        "--arms/--profile/--out are read on the remote side",
    )
    remote.add_argument(
        "--ssh",
        metavar="CMD",
        help='ssh command line (default: $FNOTUI_SSH or ssh), e.g. "ssh -p 2222 -i ~/.ssh/gpu"',
    )
    remote.add_argument(
        "--remote-fnotui",
        default="fnotui",
        metavar="CMD",
        help="fnotui on the remote host (default: fnotui on its PATH), e.g. "
        "'~/fnotui/.venv/bin/fnotui' (quoted: the remote shell expands ~)",
    )
    remote.add_argument(
        "--mirror",
        metavar="DIR",
        help="local copy of the remote run files (default: ~/.cache/fnotui/remote/HOST-HASH)",
    )
    p.add_argument(
        "--color-system",
        choices=("auto", "standard", "256", "truecolor"),
        help="dashboard colours (default: auto, from the terminal); over ssh, "
        "COLORTERM is not forwarded, so try 256 or truecolor explicitly",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue each arm from its last epoch-end checkpoint"
    )
    again.add_argument(
        "--restart",
        action="store_true",
        help="move an arm's earlier run to <output_dir>/.archive/ and start over",
    )
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _err(message: str) -> None:
    print(f"fnotui: error: {message}", file=sys.stderr)


def _load(args):
    from engine.study.arms import load_study

    return load_study(
        args.arms, profile=args.profile, overrides=args.overrides, output_dir=args.out
    )


def cmd_run(args) -> int:
    from engine.errors import ConfigError, Dequeued, FnotuiError, RunLockedError
    from engine.runs.rundir import data_cache_dir
    from engine.runs.status import archive_run
    from engine.training.train import resolve_device, resolve_devices, train_arm

    try:
        study = _load(args)
        arms = [study.arm(name) for name in args.run]  # every name checked before any run
        if args.max_parallel:
            resolve_devices(args.device)
        else:
            resolve_device(args.device)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    cache = data_cache_dir(study.output_dir)
    for cfg in arms:
        print(f"fnotui: training {cfg.name} -> {study.run_dir(cfg.name)}", flush=True)
        try:
            if args.restart:
                archived = archive_run(study.output_dir, cfg.name)
                if archived:
                    print(f"fnotui: moved the earlier run to {archived}", flush=True)
            result = train_arm(
                cfg,
                study.run_dir(cfg.name),
                cache_dir=cache,
                device=args.device,
                log=lambda m: print(m, flush=True),
                resume=args.resume,
                max_parallel=args.max_parallel,
            )
        except Dequeued as exc:
            _err(str(exc))
            return EXIT_INTERRUPTED
        except RunLockedError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
        except ConfigError as exc:  # e.g. a probe file found unusable while building data
            _err(f"arm {cfg.name!r}: {exc}")
            return EXIT_BAD_INPUT
        except (FnotuiError, RuntimeError, OSError, ValueError) as exc:
            _err(f"arm {cfg.name!r} failed: {type(exc).__name__}: {exc}")
            return EXIT_RUN_FAILED
        except KeyboardInterrupt:
            _err(f"arm {cfg.name!r} interrupted")
            return EXIT_INTERRUPTED
        if result.state != "finished":
            print(
                f"fnotui: {cfg.name} stopped after {result.epochs_done} epochs; "
                f"model, history and status saved",
                flush=True,
            )
            return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_list(args) -> int:
    from engine.errors import ConfigError
    from engine.runs.status import read_status, run_state

    try:
        study = _load(args)
        sweep = getattr(args, "sweep", None)  # fnotui sweep NAME --list
        names = study.sweep(sweep) if sweep else list(study.arms)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    print(f"study {study.name} ({study.path}) -> {study.output_dir}")
    width = max(len(n) for n in names)
    for name in names:
        cfg = study.arms[name]
        run_dir = study.run_dir(name)
        state = run_state(run_dir)
        st = read_status(run_dir) or {}
        progress = (
            f"epoch {st.get('epoch', 0)}/{st.get('epochs', cfg.train.epochs)}"
            if state != "not started"
            else f"{cfg.train.epochs} epochs"
        )
        print(
            f"  {name:<{width}}  {state:<11}  {progress:<14}  {cfg.model.architecture}, "
            f"{cfg.train.optimizer} lr {cfg.train.lr:g}, {cfg.train.scheduler}, "
            f"clip {cfg.train.clip_algorithm + ' ' + format(cfg.train.grad_clip, 'g') if cfg.train.grad_clip > 0 else 'off'}"
        )
    return EXIT_OK


def _connect_remote(args):
    """Start mirroring the remote study; (study, arms file, RemoteControl) or an exit code."""
    import os
    import shlex

    from engine.errors import ConfigError
    from engine.live.remote import (
        RemoteControl,
        RemoteError,
        RemoteMirror,
        Target,
        default_mirror_root,
    )
    from engine.study.arms import load_study

    try:
        target = Target.parse(args.remote)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    study_args = []
    if args.arms != "arms.toml":
        study_args += ["--arms", args.arms]
    if args.profile:
        study_args += ["--profile", args.profile]
    if args.out:
        study_args += ["--out", args.out]
    ssh = shlex.split(args.ssh or os.environ.get("FNOTUI_SSH") or "ssh")
    mirror = RemoteMirror(
        target,
        Path(args.mirror) if args.mirror else default_mirror_root(target, study_args),
        ssh=ssh,
        fnotui=args.remote_fnotui,
        stream_args=study_args,
    )
    print(f"fnotui: connecting to {target.label} through {ssh[0]}…", file=sys.stderr, flush=True)
    try:
        mirror.start()
        study = load_study(
            mirror.arms_file,
            profile=args.profile,
            overrides=args.overrides,
            output_dir=mirror.runs_dir,
            validate_models=False,
        )
    except RemoteError as exc:
        _err(str(exc))
        return EXIT_RUN_FAILED
    except ConfigError as exc:
        mirror.close()
        _err(f"the remote arms file: {exc}")
        return EXIT_BAD_INPUT
    control = RemoteControl(mirror, study_args, args.overrides)
    return study, mirror.arms_file, control


def cmd_dashboard(args) -> int:
    import os

    # Textual reads the colour system when it is imported: set it first. ssh does not forward
    # COLORTERM, so a truecolor terminal reached over ssh is seen as 256 colours anyway.
    if args.color_system:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = args.color_system
    from engine.errors import ConfigError
    from engine.study.arms import load_study

    remote = None
    arms_file = Path(args.arms)
    if args.remote:
        connected = _connect_remote(args)
        if isinstance(connected, int):
            return connected
        study, arms_file, remote = connected
    else:
        try:
            study = load_study(
                args.arms,
                profile=args.profile,
                overrides=args.overrides,
                output_dir=args.out,
                validate_models=False,
            )
        except ConfigError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
    import threading

    from engine.live.runstore import RunStore

    # The first read (possibly a million records) runs while Textual is imported and set up.
    store = RunStore.from_study(study)
    preload = threading.Thread(target=store.poll, name="fnotui-first-read", daemon=True)
    preload.start()
    from app.tui import FnotuiApp

    app = FnotuiApp(
        study,
        arms_file=arms_file,
        profile=args.profile,
        out=Path(args.out) if args.out else None,
        device=args.device,
        max_parallel=args.max_parallel or 1,
        remote=remote,
        overrides=args.overrides,
        store=store,
        preload=preload,
    )
    try:
        app.run()
    finally:
        if remote is not None:
            remote.mirror.close()
    return EXIT_OK


def build_export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnotui export",
        description="Write stats.json per arm, the study metrics table and summary.md (with "
        "figures); runs that are missing, partial or still in progress are used as "
        "far as possible and listed as problems.",
    )
    p.add_argument(
        "--arms", default="arms.toml", metavar="FILE", help="arms file (default: ./arms.toml)"
    )
    p.add_argument("--profile", metavar="NAME", help="export the runs of [profiles.NAME]")
    p.add_argument(
        "--runs",
        metavar="DIR",
        help="study output directory to read (overrides [study] output_dir)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="report directory (default: <study output dir>/report)"
    )
    p.add_argument(
        "--bundle",
        metavar="DIR",
        help="also archive every arm's evidence (config, history, metrics, stats, "
        "checkpoint, telemetry, run.log) into DIR",
    )
    return p


def cmd_export(argv: list[str]) -> int:
    from engine.errors import ConfigError
    from engine.reporting.export import export_study
    from engine.study.arms import load_study

    args = build_export_parser().parse_args(argv)
    try:
        study = load_study(
            args.arms, profile=args.profile, output_dir=args.runs, validate_models=False
        )
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    result = export_study(
        study,
        Path(args.out) if args.out else None,
        bundle=Path(args.bundle) if args.bundle else None,
    )
    for path in result.files:
        print(f"wrote {path}")
    for problem in result.problems:
        print(f"fnotui export: could not use: {problem}", file=sys.stderr)
    return EXIT_OK


def _load_named(args, validate_models: bool = False):
    """(study, names) for the subcommands that act on named arms: each name checked (an arm or
    a sweep point) before anything acts. Raises ConfigError."""
    from engine.study.arms import load_study

    study = load_study(
        args.arms,
        profile=args.profile,
        overrides=getattr(args, "overrides", None),
        output_dir=args.out,
        validate_models=validate_models,
    )
    return study, [study.arm(name).name for name in args.arms_names]


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("arms_names", nargs="+", metavar="ARM")
    p.add_argument(
        "--arms", default="arms.toml", metavar="FILE", help="arms file (default: ./arms.toml)"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [study] output_dir)")
    p.add_argument("--profile", metavar="NAME", help="apply [profiles.NAME] of the arms file")


def build_launch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnotui launch",
        description="Start each arm as a detached engine (its own session: it survives this "
        "shell, the dashboard and an ssh hang-up); output goes to the arm's run.log. "
        "Engines wait in the device queue, first come first served, until a device "
        "has fewer than --max-parallel busy slots. An arm that is queued or "
        "running is refused.",
    )
    _study_args(p)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a knob, as for --run",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where the arms may train: auto (every GPU, else the CPU), cpu, cuda:1, "
        "or a list such as cuda:0,cuda:1 (each arm takes the first free one)",
    )
    p.add_argument(
        "--max-parallel",
        type=_positive_int,
        default=1,
        metavar="N",
        help="engines at a time per device (default 1); the others wait, queued",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    again.add_argument("--restart", action="store_true", help="archive the earlier run first")
    return p


def _each_arm(names: list[str], act, refused: type[Exception]) -> int:
    """Run ``act(name)`` for every arm, printing what it returns; an arm it refuses is reported
    and skipped, and makes the exit code 2."""
    code = EXIT_OK
    for name in names:
        try:
            print(act(name))
        except refused as exc:
            _err(str(exc))
            code = EXIT_BAD_INPUT
    return code


def cmd_launch(argv: list[str]) -> int:
    from engine.control.launch import LaunchError, last_log_line, launch_detached, wait_started
    from engine.errors import ConfigError
    from engine.training.train import resolve_devices

    args = build_launch_parser().parse_args(argv)
    mode = "resume" if args.resume else "restart" if args.restart else None
    try:
        study, names = _load_named(args, validate_models=True)
        devices = resolve_devices(args.device)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT

    def launch(name: str) -> str:
        run_dir = study.run_dir(name)
        pid = launch_detached(
            Path(args.arms),
            name,
            Path(args.out) if args.out else None,
            args.profile,
            args.device,
            run_dir=run_dir,
            mode=mode,
            overrides=args.overrides,
            max_parallel=args.max_parallel,
        )
        # Return once the engine holds its arm, so that what we print (and --list right
        # after) is true, and an engine that exits at once is reported, not hidden.
        state, code = wait_started(pid, run_dir)
        if code is not None:
            raise LaunchError(
                f"{name}: the engine (pid {pid}) exited with code {code}: "
                f"{last_log_line(run_dir / 'run.log')}"
            )
        return f"launched {name}: pid {pid}, {state}, log {run_dir / 'run.log'}"

    print(
        f"queue: at most {args.max_parallel} engine(s) at a time on each of "
        f"{', '.join(devices)}; first come, first served"
    )

    return _each_arm(names, launch, LaunchError)


def cmd_stop(argv: list[str]) -> int:
    from engine.control.launch import LaunchError, stop_run
    from engine.errors import ConfigError

    p = argparse.ArgumentParser(
        prog="fnotui stop",
        description="Ask running arms to stop gracefully (SIGTERM): each finishes its current "
        "step, saves model, history and checkpoint, writes a final status, exits. "
        "Continue later with --resume.",
    )
    _study_args(p)
    args = p.parse_args(argv)
    try:
        study, names = _load_named(args)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    return _each_arm(
        names,
        lambda name: f"asked {name} (pid {stop_run(study.run_dir(name))}) to stop",
        LaunchError,
    )


def build_evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnotui evaluate",
        description="Re-score finished runs with the current evaluation code: rebuild each "
        "arm's generator from its config.json and model.pt (the last epoch's "
        "weights, or for a run stopped with fnotui stop the weights at the stop, "
        "which the metrics then name), load its dataset from the study cache, and "
        "rewrite metrics.json and recon.npz; a metrics record marked reevaluated is "
        "appended to its telemetry. An arm whose engine is alive, or whose run "
        "failed or crashed, is refused and left untouched (exit 2). Run fnotui "
        "export afterwards to refresh stats.json and summary.md.",
    )
    _study_args(p)
    p.add_argument(
        "--device",
        default="cpu",
        help="where to predict (default cpu: a study may be training on the GPUs, "
        "and the test image is small); auto, cuda, cuda:1, ...",
    )
    return p


def cmd_evaluate(argv: list[str]) -> int:
    from engine.errors import ConfigError, FnotuiError, RunLockedError
    from engine.runs.rundir import data_cache_dir
    from engine.training.reevaluate import reevaluate_run

    args = build_evaluate_parser().parse_args(argv)
    try:
        study, names = _load_named(args)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    code = EXIT_OK
    for name in names:
        try:
            result = reevaluate_run(
                study.run_dir(name),
                data_cache_dir(study.output_dir),
                device=args.device,
                log=lambda m, n=name: print(f"[{n}] {m}", flush=True),
            )
        except (ConfigError, RunLockedError) as exc:
            _err(str(exc))
            code = max(code, EXIT_BAD_INPUT)
            continue
        except (FnotuiError, RuntimeError, OSError, ValueError) as exc:
            _err(f"arm {name!r}: re-evaluation failed: {type(exc).__name__}: {exc}")
            code = max(code, EXIT_RUN_FAILED)
            continue
        print(
            f"re-evaluated {name}: {_evaluation_line(result.metrics, result.previous)}; "
            f"wrote {result.run_dir / 'metrics.json'} and recon.npz",
            flush=True,
        )
    return code


def _evaluation_line(metrics: dict, previous: dict | None) -> str:
    """amplitude SSIM and MAE (with the values they replace) and the twin fraction."""

    def amp(m: dict | None, key: str) -> str:
        pair = (m or {}).get(key)
        return "—" if not isinstance(pair, list) or pair[0] is None else f"{pair[0]:.4g}"

    line = ", ".join(
        f"amplitude {key} {amp(metrics, key)} (was {amp(previous, key)})" for key in ("ssim", "mae")
    )
    twin = metrics.get("twin") or {}
    fraction, undecidable = twin.get("fraction"), twin.get("undecidable_fraction")
    vs_twin = (twin.get("metrics") or {}).get("ssim")
    shown = f"{fraction:.3g}" if fraction is not None and fraction == fraction else "—"
    line += f", twin fraction {shown}"
    if undecidable is not None:
        line += f" ({undecidable:.0%} of patches undecidable)"
    if isinstance(vs_twin, list) and vs_twin[0] is not None:
        line += f", amplitude ssim vs twin {vs_twin[0]:.4g}"
    return line


def cmd_stream(argv: list[str]) -> int:
    import base64
    import json
    import os

    from engine.errors import ConfigError
    from engine.live.stream import run_stream
    from engine.study.arms import load_study

    p = argparse.ArgumentParser(
        prog="fnotui stream",
        description="Write the study's new telemetry, status and artifacts to stdout as JSON "
        "lines, as they appear, until stdout closes: the remote half of "
        "fnotui --remote (run through ssh; see engine/live/stream.py).",
    )
    p.add_argument("--arms", default="arms.toml", metavar="FILE")
    p.add_argument("--profile", metavar="NAME")
    p.add_argument("--out", metavar="DIR", help="study output directory")
    p.add_argument(
        "--from", dest="known", metavar="B64", help="what the client already holds (base64 JSON)"
    )
    p.add_argument(
        "--from-stdin",
        action="store_true",
        help="read what the client holds as one JSON line on stdin (fnotui --remote)",
    )
    p.add_argument("--poll", type=float, default=0.5, metavar="S", help="poll interval")
    p.add_argument("--max-seconds", type=float, metavar="S", help="end after S seconds")
    args = p.parse_args(argv)
    try:
        study = load_study(
            args.arms, profile=args.profile, output_dir=args.out, validate_models=False
        )
        if args.from_stdin:
            known = json.loads(sys.stdin.readline() or "{}")
        else:
            known = json.loads(base64.b64decode(args.known)) if args.known else {}
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except ValueError as exc:
        _err(f"--from: {exc}")
        return EXIT_BAD_INPUT
    run_stream(study, sys.stdout, known, poll_s=args.poll, max_s=args.max_seconds)
    # After a dropped link stdout is a broken pipe: make the interpreter's final flush quiet.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def build_sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnotui sweep",
        description="Run every point of a [sweeps.NAME] of the arms file: each point is a run "
        "named <arm>.<key>-<value>... (fnotui sweep NAME --list shows them). By "
        "default the points start as detached engines through the device queue, as "
        "with fnotui launch; --foreground trains them here one after the other. "
        "stop, evaluate, --resume, --restart and the dashboard take the point names "
        "like arm names.",
    )
    p.add_argument("sweep", metavar="NAME")
    p.add_argument(
        "--arms", default="arms.toml", metavar="FILE", help="arms file (default: ./arms.toml)"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [study] output_dir)")
    p.add_argument("--profile", metavar="NAME", help="apply [profiles.NAME] of the arms file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a knob for every point, as for --run",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the points and their run state")
    what.add_argument(
        "--foreground", action="store_true", help="train the points here, one after the other"
    )
    p.add_argument("--device", default="auto", help="as for fnotui launch")
    p.add_argument(
        "--max-parallel",
        type=_positive_int,
        metavar="N",
        help="engines at a time per device (default 1), as for fnotui launch",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    again.add_argument("--restart", action="store_true", help="archive the earlier runs first")
    return p


def cmd_sweep(argv: list[str]) -> int:
    """A sweep is its points: expanded here, then listed, launched or run like arms."""
    args = build_sweep_parser().parse_args(argv)
    if args.list:
        return cmd_list(args)
    from engine.errors import ConfigError

    try:
        points = _load(args).sweep(args.sweep)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    common = [
        "--arms",
        args.arms,
        *(["--out", args.out] if args.out else []),
        *(["--profile", args.profile] if args.profile else []),
        *(f"--set={o}" for o in args.overrides),
        "--device",
        args.device,
        *(["--resume"] if args.resume else []),
        *(["--restart"] if args.restart else []),
    ]
    if args.foreground:
        run_args = ["--run", *points, *common]
        if args.max_parallel:
            run_args += ["--max-parallel", str(args.max_parallel)]
        return main(run_args)
    return cmd_launch([*points, *common, "--max-parallel", str(args.max_parallel or 1)])


SUBCOMMANDS = {
    "export": cmd_export,
    "launch": cmd_launch,
    "stop": cmd_stop,
    "stream": cmd_stream,
    "evaluate": cmd_evaluate,
    "sweep": cmd_sweep,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    if args.run:
        return cmd_run(args)
    if args.list:
        return cmd_list(args)
    return cmd_dashboard(args)


if __name__ == "__main__":
    sys.exit(main())
