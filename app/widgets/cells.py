"""Text for table cells: numbers, states, severities and sparklines, all NaN- and inf-safe.

Every state and severity carries a glyph and a word, so nothing is said by colour alone
(256-colour terminals over SSH merge similar hues). Pure functions: unit-tested without an app.
"""

from __future__ import annotations

import math

from rich.text import Text

from engine.fmt import fmt_duration  # noqa: F401 (re-exported for the screens)

SPARK_CHARS = "▁▂▃▄▅▆▇█"
# A bucket holding a NaN or inf: shown as a marker instead of a bar (and never crashes).
SPARK_NONFINITE = "✖"
SPARK_EMPTY = " "

STATES = {
    # run state -> (glyph, word, style)
    "not started": ("○", "not started", "dim"),
    "queued": ("◷", "queued", "cyan"),
    "running": ("▶", "running", "bold green"),
    "finished": ("✔", "finished", ""),
    "collapsed": ("✖", "collapsed", "bold red"),
    "failed": ("✘", "failed", "bold red"),
    # Out of memory: a failure whose cure is a smaller batch or generator, not a bug hunt.
    "oom": ("⊘", "oom", "bold red"),  # its own glyph: the group view shows glyphs alone
    # the engine's state name is "killed"; for the user it is a stop (by s, or a signal)
    "killed": ("■", "stopped", "yellow"),
    "crashed": ("‼", "crashed", "bold yellow"),
    "stale": ("?", "stale", "yellow"),
    # Ended by Slurm (the state is "slurm:TIMEOUT", "slurm:PREEMPTED", ...): the word shown is
    # the Slurm state, so a time limit never reads as a crash or as still running.
    "slurm": ("□", "slurm", "yellow"),  # hollow: told apart from a stop by its glyph too
}

SEVERITIES = {
    "info": ("·", "info", ""),
    "warning": ("▲", "warning", "yellow"),
    "collapse": ("✖", "collapse", "bold red"),
    "fatal": ("‼", "fatal", "bold red"),
}

# Every engine.scoring.verdict label (a test checks none is missing); the glyph is in the verdict text.
VERDICT_STYLES = {
    "healthy": "green",
    "twin": "bold magenta",
    "mixed twin": "magenta",
    "collapsed": "bold red",
    "diverged": "bold red",
    "nan": "bold red",
    "failed": "bold red",
    "incomplete": "yellow",
    "running": "",
}


# A cell whose value needs the run's telemetry, before the first read has reached the run: said
# in words, dim, so that it can never pass for a value ("—" means "not recorded").
READING = "reading…"
# The state glyph of a run not read yet: its state is status.json's, but the ✔ of "finished"
# would read as "healthy" before the verdict is known.
UNREAD_GLYPH = "◌"


def reading_text(width: int, justify: str = "right") -> Text:
    """The placeholder for a cell of this width: "reading…", "reading", or "…"."""
    word = READING if width >= len(READING) else READING[:-1] if width >= 7 else "…"
    return Text(word, style="dim italic", justify=justify)


def unread_state_text(state: str) -> Text:
    """The state column of a run not read yet: status.json's state, marked as not judged."""
    key = state_key(state, False)
    word = state if key == "slurm" else STATES[key][1]
    return Text(f"{UNREAD_GLYPH} {word}", style="dim")


def fmt_num(x: float | None, digits: int = 4) -> str:
    """Compact number; NaN and inf are spelled out with a marker, never hidden."""
    if x is None:
        return "—"
    if isinstance(x, float) and math.isnan(x):
        return "✖nan"
    if isinstance(x, float) and math.isinf(x):
        return "✖inf" if x > 0 else "✖-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 2, 1)}e}".replace("e-0", "e-").replace("e+0", "e")


def num_text(x: float | None, digits: int = 4, missing: str = "—") -> Text:
    """A right-aligned number cell; a non-finite value is red AND marked."""
    if x is None:
        return Text(missing, style="dim", justify="right")
    s = fmt_num(x, digits)
    style = "bold red" if s.startswith("✖") else ""
    return Text(s, style=style, justify="right")


def state_key(state: str, collapsed: bool) -> str:
    """The table's state: the process state, except that a detector alarm shows "collapsed"
    (a failed process stays "failed", and one out of memory "oom": the engine error is the more
    urgent news)."""
    if collapsed and state not in ("failed", "oom"):
        return "collapsed"
    if state.startswith("slurm:"):
        return "slurm"
    return state if state in STATES else "stale"


def state_text(state: str, collapsed: bool) -> Text:
    key = state_key(state, collapsed)
    glyph, word, style = STATES[key]
    if key == "slurm":
        word = state  # e.g. slurm:TIMEOUT
    return Text(f"{glyph} {word}", style=style)


def severity_text(severity: str | None) -> Text:
    glyph, word, style = SEVERITIES.get(severity or "info", ("?", str(severity), "yellow"))
    return Text(f"{glyph} {word}", style=style)


def sparkline_text(peaks: tuple[float, ...], bad: tuple[bool, ...], width: int) -> Text:
    """Bar characters scaled between the finite minimum and maximum of ``peaks``; a bucket
    that held a NaN or inf shows a red marker; nothing is ever converted from NaN."""
    text = Text()
    finite = [v for v in peaks if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = hi - lo
    for value, nonfinite in zip(peaks, bad):
        if nonfinite:
            text.append(SPARK_NONFINITE, style="bold red")
        elif not math.isfinite(value):
            text.append(SPARK_EMPTY)
        else:
            level = 0 if span <= 0 else int((value - lo) / span * (len(SPARK_CHARS) - 1) + 0.5)
            text.append(SPARK_CHARS[min(max(level, 0), len(SPARK_CHARS) - 1)])
    if len(text) < width:
        text.append(" " * (width - len(text)))
    return text


def abbreviate_key(key: str) -> str:
    """A sweep key shortened to the initials of its words: max_hidden_channels -> mhc,
    fno_blocks -> fb; a one-word key (seed, lr) stays whole."""
    words = [w for w in key.split("_") if w]
    return "".join(w[0] for w in words) if len(words) > 1 else key


def short_names(names) -> dict[str, str]:
    """Short, still unique display names for a study's arms.

    Sweep points are ``arm.key-value.key-value...``. Points of one arm with the same keys come
    from one sweep; the parts all of them share (epochs-30 and max_hidden_channels-512 in the
    nine crash-hunt points) tell none apart and are dropped, and multi-word keys are cut to
    their initials:
    arm_control.epochs-30.fno_blocks-4.max_hidden_channels-512.seed-20260128 ->
    arm_control.fb-4.seed-20260128. Names that would collide keep their full form."""
    names = list(names)

    def sweep_of(name: str) -> tuple[str, tuple[str, ...]]:
        # Grouped by arm and key set, not by arm alone: the plain arm and another sweep over the
        # same arm (seeds only) share nothing with these points and would empty the common set.
        arm, _, point = name.partition(".")
        return arm, tuple(sorted(p.partition("-")[0] for p in point.split("."))) if point else ()

    groups: dict[tuple, list[set[str]]] = {}
    for name in names:
        point = name.partition(".")[2]
        if point:
            groups.setdefault(sweep_of(name), []).append(set(point.split(".")))
    common = {
        g: set.intersection(*parts) if len(parts) > 1 else set() for g, parts in groups.items()
    }
    out: dict[str, str] = {}
    for name in names:
        arm, _, point = name.partition(".")
        if not point:
            out[name] = name
            continue
        kept = []
        for part in point.split("."):
            if part in common[sweep_of(name)]:
                continue
            key, dash, value = part.partition("-")
            kept.append(f"{abbreviate_key(key)}{dash}{value}" if dash else part)
        out[name] = ".".join([arm, *kept])
    shown = list(out.values())
    return {n: (out[n] if shown.count(out[n]) == 1 else n) for n in names}
