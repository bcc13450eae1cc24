"""``fnotui run`` (also ``--run``), ``fnotui list`` (also ``--list``) and ``fnotui sweep``."""

from __future__ import annotations

from app.commands import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    bad_input,
    err,
    load,
)


def cmd_run(args) -> int:
    from engine.control.local import check_output_dir, check_startable
    from engine.errors import ConfigError, Dequeued, FnotuiError, RunLockedError
    from engine.runs.rundir import data_cache_dir
    from engine.runs.status import archive_run
    from engine.training.memory_check import is_out_of_memory
    from engine.training.train import resolve_device, resolve_devices, train_arm

    study = load(args, validate_models=True)
    with bad_input():
        arms = [study.arm(name) for name in args.names]  # every name checked before any run
        if args.max_parallel:
            devices = resolve_devices(args.device)
        else:
            devices = [str(resolve_device(args.device))]
        # Everything that would make an arm refuse is checked before the first one trains:
        # exit 2 means nothing was written.
        check_devices_can_train(arms, devices, args.force)
        check_output_dir(study.output_dir)
        for cfg in arms:
            check_startable(study.run_dir(cfg.name), "resume" if args.resume else None)
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
            err(str(exc))
            return EXIT_INTERRUPTED
        except RunLockedError as exc:
            err(str(exc))
            return EXIT_BAD_INPUT
        except ConfigError as exc:  # e.g. a probe file found unusable while building data
            err(f"arm {cfg.name!r}: {exc}")
            return EXIT_BAD_INPUT
        except (FnotuiError, RuntimeError, OSError, ValueError, MemoryError) as exc:
            how = "ran out of memory" if is_out_of_memory(exc) else "failed"
            err(f"arm {cfg.name!r} {how}: {type(exc).__name__}: {exc}")
            return EXIT_RUN_FAILED
        except KeyboardInterrupt:
            err(f"arm {cfg.name!r} interrupted")
            return EXIT_INTERRUPTED
        if result.state != "finished":
            print(
                f"fnotui: {cfg.name} stopped after {result.epochs_done} epochs; "
                f"model, history and status saved",
                flush=True,
            )
            return EXIT_INTERRUPTED
    return EXIT_OK


def check_devices_can_train(arms, devices: list[str], force: bool) -> None:
    """Refuse (ConfigError, exit 2) an arm that none of ``devices`` can train: a precision or
    compile mode none of them honours, or, unless ``force``, a memory estimate above the
    roomiest one's memory. run, launch and sweep call it before anything is written; the
    estimates missing from the cache are traced in one child process."""
    from engine.training.memory_check import check_fits
    from engine.training.train import check_modes

    for cfg in arms:
        check_modes(cfg, devices)
    if not force:
        check_fits(list(arms), devices)


def cmd_list(args) -> int:
    # Read-only: no generator is built here (that would import torch). The memory estimates come
    # from their cache; the missing ones are traced in one child process (seconds per distinct
    # generator config, once; it says so on stderr).
    from engine.control.local import profiles_with_runs
    from engine.runs.status import read_status, run_state
    from engine.training.memory_check import MemoryEstimate, fmt_bytes
    from engine.training.memory_check import estimates as memory_estimates

    study = load(args)
    sweep = getattr(args, "sweep", None)  # fnotui sweep NAME --list
    with bad_input():
        names = study.sweep(sweep) if sweep else list(study.arms)
    print(f"study {study.name} ({study.path}) -> {study.output_dir}")
    _refresh_slurm([study.run_dir(n) for n in names])
    width = max(len(n) for n in names)
    memory = memory_estimates({n: study.arms[n] for n in names})
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
            f"clip {cfg.train.clip_algorithm + ' ' + format(cfg.train.grad_clip, 'g') if cfg.train.grad_clip > 0 else 'off'}, "
            f"memory {_memory_text(memory.get(name), MemoryEstimate, fmt_bytes)}"
        )
    # Each profile has its own output directory: after `fnotui run X --profile quick`, the
    # plain list shows X not started. Say where the other runs are.
    for profile, count in profiles_with_runs(study, args.out).items():
        how = f"fnotui list --profile {profile}" if profile else "fnotui list"
        label = f"profile {profile}" if profile else "no profile"
        print(f"  ({label} has {count} run{'s' if count > 1 else ''}: {how})")
    return EXIT_OK


def _memory_text(estimate, kind, fmt_bytes) -> str:
    if isinstance(estimate, kind):
        return f"~{fmt_bytes(estimate.total)} at batch {estimate.batch_size}"
    return "not estimated" + (f" ({estimate})" if estimate else "")


def cmd_sweep(args) -> int:
    """A sweep is its points: expanded here, then listed, launched or run like arms."""
    if args.list:
        return cmd_list(args)
    executor = getattr(args, "executor", "local")
    if executor != "local":
        return _submit_sweep(args, executor)
    study = load(args)
    with bad_input():
        args.names = study.sweep(args.sweep)
    if args.foreground:
        return cmd_run(args)
    from app.commands.manage import cmd_launch

    args.max_parallel = args.max_parallel or 1
    return cmd_launch(args)


def _submit_sweep(args, executor: str) -> int:
    """``--executor slurm`` (or submitit-local): one batch job per point, through submitit.
    Every check comes first: bad input exits 2 and an unreachable controller 1, with nothing
    submitted and nothing written."""
    from pathlib import Path

    from engine.control.local import check_output_dir, check_startable
    from engine.control.slurm import (
        SlurmUnreachable,
        check_controller,
        check_options,
        check_submittable,
        refresh,
        require_submitit,
        submit,
    )
    from engine.study.slurm import options_from_flags

    mode = "resume" if args.resume else "restart" if args.restart else None
    with bad_input():
        if args.foreground:
            from engine.errors import ConfigError

            raise ConfigError(
                f"--foreground trains here; --executor {executor} submits jobs: choose one"
            )
        require_submitit()
    study = load(args, validate_models=True)
    with bad_input():
        names = study.sweep(args.sweep)
        options = study.slurm.merged(options_from_flags(args))
        check_options(executor, options)
        check_output_dir(study.output_dir)
    try:
        if executor == "slurm":
            check_controller()
            refresh([study.run_dir(n) for n in names])
    except SlurmUnreachable as exc:
        err(str(exc))
        return EXIT_RUN_FAILED
    with bad_input():
        for name in names:
            check_submittable(study.run_dir(name), name, mode)
            check_startable(study.run_dir(name), mode)
    submitted = submit(
        study,
        Path(args.arms),
        names,
        kind=executor,
        options=options,
        mode=mode,
        profile=args.profile,
        out=Path(args.out) if args.out else None,
        overrides=args.overrides,
        device=args.device,
        force=args.force,
        log=lambda m: print(m, flush=True),
    )
    how = f" ({mode})" if mode else ""
    for job in submitted:
        print(
            f"submitted {job.name}{how}: {executor} job {job.job_id}, "
            f"log {study.run_dir(job.name) / 'run.log'}",
            flush=True,
        )
    return EXIT_OK


def _refresh_slurm(run_dirs) -> None:
    """Ask Slurm (once, for every run with a job whose end is unknown) how its jobs ended, so
    that a TIMEOUT or a preemption shows as such; a run without a job costs nothing."""
    from engine.runs.status import read_status

    if any((read_status(d) or {}).get("executor") == "slurm" for d in run_dirs):
        from engine.control.slurm import refresh

        refresh(run_dirs)
