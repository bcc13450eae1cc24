"""The study definition: arms.toml loading, profiles, per-arm validation and sweep expansion.

May import: the foundation modules, engine.sim, engine.models and engine.runs (run-name rules).
Validation builds models on the meta device, so it needs the model builders but never trains.
"""
