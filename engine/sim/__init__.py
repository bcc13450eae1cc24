"""Simulation and data: the probe, the far-field physics, the synthetic grid-lines object, the
scan grid and stitching, and the cached dataset built from them.

May import: the foundation modules (engine.errors, engine.atomic, engine.config). Nothing here
knows about runs, training or the dashboard.
"""
