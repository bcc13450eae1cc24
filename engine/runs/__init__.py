"""Runs on disk: the run directory and its file names, status.json and the run lock, the
telemetry format (writer and reader), and the device queue that hands out training slots.

May import: the foundation modules. It is the format layer every other subsystem reads and writes.
"""
