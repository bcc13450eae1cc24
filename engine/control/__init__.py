"""Control: starting and stopping engine processes (detached launches, stop by signal).

The top of the engine: may import any other subsystem.
"""
