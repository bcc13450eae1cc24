"""A question with a few keyed answers. Escape always means "cancel", so a stray Escape (easy
over a laggy SSH link) never stops or starts anything."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ChoiceScreen(ModalScreen):
    """Dismisses with the value of the chosen answer, or None on cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, detail: str, choices: list[tuple[str, str, object, str]]):
        """``choices``: (key, label, value, button variant); the last one gets the focus."""
        super().__init__()
        self.question = question
        self.detail = detail
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question", markup=False)
            if self.detail:
                yield Static(self.detail, id="detail", markup=False)
            with Horizontal(id="buttons"):
                for i, (key, label, _, variant) in enumerate(self.choices):
                    yield Button(f"{label} ({key})", id=f"choice-{i}", variant=variant)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{len(self.choices) - 1}", Button).focus()

    def on_key(self, event) -> None:
        for key, _, value, _ in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        index = int(event.button.id.rsplit("-", 1)[1])
        self.dismiss(self.choices[index][2])

    def action_cancel(self) -> None:
        self.dismiss(None)
