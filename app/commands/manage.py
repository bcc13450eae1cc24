"""``fnotui launch``, ``stop``, ``export`` and ``evaluate``: acting on runs that exist or run
elsewhere, through the study's control (engine/control/)."""

from __future__ import annotations

from pathlib import Path

from app.commands import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RUN_FAILED,
    bad_input,
    each_arm,
    err,
    load,
    load_named,
)


def _control(study, args, **options):
    from engine.control.local import LocalControl

    return LocalControl(
        study,
        Path(args.arms),
        profile=args.profile,
        out=Path(args.out) if args.out else None,
        **options,
    )


def cmd_launch(args) -> int:
    from app.commands.train import check_devices_can_train
    from engine.control.local import check_output_dir
    from engine.training.train import resolve_devices

    mode = "resume" if args.resume else "restart" if args.restart else None
    study, names = load_named(args, validate_models=True)
    with bad_input():
        devices = resolve_devices(args.device)
        check_output_dir(study.output_dir)
        # every arm checked before the first one starts
        check_devices_can_train([study.arm(n) for n in names], devices, args.force)
    control = _control(
        study,
        args,
        device=args.device,
        max_parallel=args.max_parallel,
        overrides=args.overrides,
        force=args.force,
    )
    print(
        f"queue: at most {args.max_parallel} engine(s) at a time on each of "
        f"{', '.join(devices)}; first come, first served"
    )
    return each_arm(names, lambda name: control.launch(name, mode).message)


def cmd_stop(args) -> int:
    study, names = load_named(args)
    control = _control(study, args)

    # A run submitted to Slurm is stopped by cancelling its job (LocalControl.stop).
    return each_arm(names, lambda name: control.stop(name).message)


def cmd_export(args) -> int:
    import sys

    with bad_input("export: "):
        if args.runs and args.out and Path(args.runs) != Path(args.out):
            from engine.errors import ConfigError

            raise ConfigError(
                f"--runs {args.runs} and --out {args.out} both name the study's output "
                f"directory (--runs is its older name); the report directory is --report DIR"
            )
    args.out = args.out or args.runs
    study = load(args, overrides=False)
    with bad_input("export: "):
        outcome = _control(study, args).export(
            Path(args.report) if args.report else None,
            bundle=Path(args.bundle) if args.bundle else None,
        )
    for path in outcome.files:
        print(f"wrote {path}")
    for problem in outcome.problems:
        print(f"fnotui export: could not use: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from engine.errors import ConfigError, FnotuiError, RunLockedError
    from engine.runs.rundir import data_cache_dir
    from engine.training.reevaluate import reevaluate_run

    study, names = load_named(args)
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
            err(str(exc))
            code = max(code, EXIT_BAD_INPUT)
            continue
        except (FnotuiError, RuntimeError, OSError, ValueError) as exc:
            err(f"arm {name!r}: re-evaluation failed: {type(exc).__name__}: {exc}")
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
