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
    assert {"engine.train", "engine.telemetry", "engine.arms"} <= set(engine_modules())


def test_no_engine_module_pulls_in_textual_rich_or_app():
    code = (
        "import importlib, sys\n"
        f"for name in {engine_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'app', 'plotext'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"engine imports {out.stdout.strip()}"


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
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_loading_a_study_for_the_dashboard_does_not_import_torch_or_scipy():
    # The dashboard's first frame waits on this; torch alone costs ~2 s and ~250 MB here.
    code = (
        "import sys\n"
        "from engine.arms import load_study\n"
        "load_study('arms.toml', validate_models=False)\n"
        "print(sorted(m for m in ('torch', 'scipy', 'skimage') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
