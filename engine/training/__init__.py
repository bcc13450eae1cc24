"""Training: the engine process and its loop, optimizers and schedules, checkpoints, and
re-evaluation of a stopped run from its checkpoint.

May import: everything below it (foundation, sim, models, runs, scoring, study); never
live following, reporting or control, and never the dashboard.
"""
