"""engine/ must run headless on a GPU box with no terminal: it never imports textual (or app)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

REPO = Path(__file__).resolve().parents[1]


def engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine."))


def test_engine_has_modules_to_check():
    assert {"engine.training.train", "engine.runs.telemetry", "engine.study.arms"} <= set(
        engine_modules()
    )


def test_no_engine_module_pulls_in_textual_rich_or_app():
    code = (
        "import importlib, sys\n"
        f"for name in {engine_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'app', 'plotext'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"engine imports {out.stdout.strip()}"


def last_line_of(code: str) -> str:
    """The last line a fresh interpreter prints running ``code`` in the repository."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_headless_cli_does_not_import_textual():
    code = (
        "import sys\n"
        "from app import cli\n"
        "try:\n"
        "    cli.main(['--list', '--arms', 'arms.toml'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('textual' in sys.modules)\n"
    )
    assert last_line_of(code) == "False"


def test_read_only_commands_do_not_import_torch():
    # `fnotui --list` (and `list`) only read status files: torch alone costs ~2 s there.
    code = (
        "import sys\n"
        "from app import cli\n"
        "for argv in (['--list'], ['list'], ['sweep', 'seeds', '--list'], ['stop', 'nope']):\n"
        "    cli.main([*argv, '--arms', 'arms.toml'])\n"
        "print(sorted(m for m in ('torch', 'textual') if m in sys.modules))\n"
    )
    assert last_line_of(code) == "[]"


def test_loading_a_study_for_the_dashboard_does_not_import_torch_or_scipy():
    # The dashboard's first frame waits on this; torch alone costs ~2 s and ~250 MB here.
    code = (
        "import sys\n"
        "from engine.study.arms import load_study\n"
        "load_study('arms.toml', validate_models=False)\n"
        "print(sorted(m for m in ('torch', 'scipy', 'skimage') if m in sys.modules))\n"
    )
    assert last_line_of(code) == "[]"


# The subsystems of engine/ and what each may import (engine/__init__.py says why). Every import
# counts, also those inside functions: a lazy import is still a dependency.
FOUNDATION = {"errors", "atomic", "config", "fmt", "knobs", "locking"}
ALLOWED = {
    "foundation": set(),
    "sim": set(),
    "models": set(),
    "runs": set(),
    "scoring": {"sim", "runs"},  # runs: the telemetry schema its events are written in
    "study": {"sim", "models", "runs"},
    "training": {"sim", "models", "runs", "scoring", "study"},
    "live": {"runs", "scoring"},
    "reporting": {"sim", "runs", "scoring", "study"},
    "control": {"sim", "models", "runs", "scoring", "study", "training", "live", "reporting"},
}


def _subsystem(module: str) -> str:
    part = module.split(".")[1]
    return "foundation" if part in FOUNDATION else part


def _engine_imports(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine."))
    return found


def test_every_engine_module_belongs_to_a_declared_subsystem():
    for name in engine_modules():
        if name.count(".") >= 1:
            assert _subsystem(name) in ALLOWED, f"{name} is in no subsystem of ALLOWED"


def test_subsystems_import_only_downwards():
    bad = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts)
        if name == "engine.__init__":
            continue
        src = _subsystem(name)
        for target in _engine_imports(path):
            dst = _subsystem(target)
            if dst != src and dst != "foundation" and dst not in ALLOWED[src]:
                bad.append(f"{name} ({src}) imports {target} ({dst})")
    assert not bad, "imports against the layering of engine/__init__.py:\n" + "\n".join(bad)
