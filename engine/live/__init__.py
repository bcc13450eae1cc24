"""Live following: tailing telemetry, the in-memory run store the dashboard reads, the
stream protocol and the SSH mirror that brings a remote study here.

May import: the foundation modules, engine.runs and engine.scoring (verdicts); never torch-heavy
training code, so the dashboard starts fast.
"""
