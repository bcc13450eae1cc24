"""Reporting: per-arm statistics, the markdown summary, PNG figures and the export command
that writes them.

May import: the foundation modules, engine.sim, engine.runs, engine.scoring and engine.study;
never training or live following.
"""
