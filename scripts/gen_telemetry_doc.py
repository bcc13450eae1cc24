"""Write the field tables of docs/telemetry.md from engine/runs/schema.py's declarations.

The prose of docs/telemetry.md is written by hand; every table between a
``<!-- fields: NAME -->`` and a ``<!-- /fields -->`` line is generated, never typed, so the
documented schema cannot drift from what the engine writes (tests/test_docs.py fails when a
table is stale). Run: python scripts/gen_telemetry_doc.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runs.schema import COMMON, DATASET_PROBE, HEADER_PHYSICS, RECORD_KINDS, RecordKind  # noqa: E402

DOC = REPO / "docs" / "telemetry.md"
TABLES: dict[str, RecordKind] = {
    COMMON.name: COMMON,
    **RECORD_KINDS,
    HEADER_PHYSICS.name: HEADER_PHYSICS,
    DATASET_PROBE.name: DATASET_PROBE,
}
BLOCK = re.compile(r"(<!-- fields: (?P<name>[\w. ]+) -->\n)(?P<body>.*?)(<!-- /fields -->)", re.S)


def table(kind: RecordKind) -> str:
    lines = ["| field | type | unit | present | meaning |", "|---|---|---|---|---|"]
    for f in kind.fields:
        present = []
        if f.optional:
            present.append(f"not in {f.optional}")
        if f.since:
            present.append(f"since {f.since}")
        lines.append(
            f"| `{f.name}` | {f.type.replace('|', ' or ')} | {f.unit or '—'} | "
            f"{'; '.join(present) or 'always'} | {f.meaning} |"
        )
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """``text`` with every generated table rewritten from the declarations."""

    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise KeyError(f"docs/telemetry.md names an undeclared record kind {name!r}")
        return m.group(1) + table(TABLES[name]) + m.group(4)

    return BLOCK.sub(fill, text)


def documented(text: str) -> set[str]:
    return {m.group("name") for m in BLOCK.finditer(text)}


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    print("wrote docs/telemetry.md")
