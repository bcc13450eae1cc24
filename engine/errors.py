"""Typed exceptions raised where a problem is found.

The CLI (app/cli.py) is the one place that turns them into a message and an exit code:
``ConfigError`` (bad input) exits 2, anything else that escapes a run exits 1.
"""


class FnotuiError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(FnotuiError):
    """Bad input: arms.toml, a ``--set`` override, a model or data knob, a probe file.

    Raised before anything is written, so the message is the whole story.
    """


class DatasetError(FnotuiError):
    """The simulated dataset cannot be built or a cached copy is unusable."""


class TelemetryError(FnotuiError):
    """The telemetry stream cannot be written or read as the schema says."""


class RunLockedError(FnotuiError):
    """Another live process already owns this arm's run directory."""


class Dequeued(FnotuiError):
    """A queued engine was stopped before it got a device slot: nothing was trained."""
