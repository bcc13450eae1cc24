"""The detector events of one run as a table that grows as the run logs more of them."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from app.widgets.cells import fmt_num, severity_text

# (column key and label, width)
COLUMNS = (
    ("epoch", 5),
    ("severity", 10),
    ("rule", 15),
    ("message", 60),
    ("value", 9),
    ("threshold", 9),
    ("step", 7),
)


def _number(value) -> Text:
    return Text(fmt_num(value) if isinstance(value, (int, float)) else "—", justify="right")


def events_summary(events: list[dict]) -> str:
    if not events:
        return "no detector events (firings of the collapse and instability rules appear here)"
    alarms = sum(1 for e in events if e.get("severity") in ("collapse", "fatal"))
    return f"{len(events)} detector events, {alarms} collapse/fatal"


class EventsTable(DataTable):
    """Adds only the events it has not shown yet; starts over when the run restarted."""

    def __init__(self, *, id: str):
        super().__init__(id=id, cursor_type="row")
        self._shown = 0

    def on_mount(self) -> None:
        for key, width in COLUMNS:
            self.add_column(key, key=key, width=width)

    def show(self, events: list[dict]) -> None:
        if len(events) < self._shown:  # fewer than before: the run restarted
            self.clear()
            self._shown = 0
        for i, ev in enumerate(events[self._shown :], start=self._shown):
            self.add_row(
                Text(str(ev.get("epoch", "")), justify="right"),
                severity_text(ev.get("severity")),
                Text(str(ev.get("rule", "?"))),
                Text(ev.get("message") or ""),
                _number(ev.get("value")),
                _number(ev.get("threshold")),
                Text(str(ev.get("step", "")), justify="right"),
                key=str(i),
            )
        self._shown = len(events)
