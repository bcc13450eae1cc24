"""fnotui's engine: everything that runs without a terminal.

Subsystems, lowest first; each may import only those listed before it in its own docstring
(tests/test_import_hygiene.py keeps the directions):

- foundation modules: ``errors`` (the error types), ``atomic`` (crash-safe writes), ``locking``
  (OS file locks), ``fmt`` (how durations read), ``knobs`` (a knob's declaration and its one
  validator), ``config`` (every knob of an arm)
- ``sim``: probe, physics, simulated object, scan grid, dataset cache
- ``models``: the generators (cnn, fno, hybrid, stable_hybrid)
- ``runs``: run directory, status and lock, telemetry format, device queue
- ``scoring``: metrics, twin decision, evaluation, collapse detectors, verdicts
- ``study``: arms.toml, profiles, sweeps
- ``training``: the engine process and training loop, optimizers, checkpoints, re-evaluation
- ``live``: telemetry tailing, the dashboard's run store, streaming and the SSH mirror
- ``reporting``: stats, summary, figures, export
- ``control``: the command grammar; launching, stopping and exporting, here or through ssh
"""
