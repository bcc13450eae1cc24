"""The docs: generated references match the code, and every pointer stays inside the repository.

Links and anchors in README.md and docs/ resolve, repository paths named in code and docs exist,
cited doc sections ("docs/science.md, 'Stitching'") exist, and nothing cites a file outside the
repository (such as the notes the project was built from), which a user never sees.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arms_reference_is_current():
    expected = load_script("gen_arms_doc").render()
    assert (REPO / "docs" / "arms.md").read_text() == expected, (
        "docs/arms.md is stale: run python scripts/gen_arms_doc.py"
    )


def test_telemetry_field_tables_are_current():
    gen = load_script("gen_telemetry_doc")
    text = (REPO / "docs" / "telemetry.md").read_text()
    assert gen.render(text) == text, (
        "docs/telemetry.md's field tables are stale: run python scripts/gen_telemetry_doc.py"
    )
    assert gen.documented(text) == set(gen.TABLES), "a declared record kind has no table"


# --- the repository stands on its own ----------------------------------------------------------
#
# README.md, docs/, comments, docstrings and generated report text must only send a reader to
# files inside the repository: a user of the published package has nothing else.


TEXT_SUFFIXES = (".py", ".md", ".toml", ".sh", ".tcss", ".cfg", ".txt", ".yml", ".yaml")
# Not part of the repository: environments, caches, build output and the (git-ignored) runs.
SKIP_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", "node_modules"}
SKIP_TOP_LEVEL = {"runs", "build", ".whl", ".gl"}
# Written split so that this file does not cite them itself.
OUTSIDE_CITATIONS = ("domain" + ".md", "engineering" + "-notes", "../" + "shared")


def repo_text_files(suffixes=TEXT_SUFFIXES) -> list[Path]:
    """The repository's own text files: what git tracks or would track (so a virtual environment
    or any other ignored folder never counts), or a walk that skips the known ones without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is not None:
        paths = sorted({REPO / p for p in listed.split("\0") if p})
        return [p for p in paths if p.suffix in suffixes and p.is_file()]
    files = []
    for root, dirs, names in os.walk(REPO):
        top = Path(root) == REPO
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (top and d in SKIP_TOP_LEVEL)
        )
        files += [Path(root) / n for n in sorted(names) if Path(n).suffix in suffixes]
    return files


def markdown_files() -> list[Path]:
    return repo_text_files((".md",))


def test_the_scan_sees_code_docs_and_tests():
    names = {p.relative_to(REPO).as_posix() for p in repo_text_files()}
    assert {
        "README.md",
        "docs/science.md",
        "engine/training/train.py",
        "app/cli.py",
        "tests/test_docs.py",
        "arms.toml",
    } <= names
    assert not any(n.startswith((".venv/", "runs/")) for n in names)


def test_no_file_outside_the_repository_is_cited():
    hits = []
    for path in repo_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(needle in line.lower() for needle in OUTSIDE_CITATIONS):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, (
        "files outside the repository are cited; point to docs/ instead "
        "(e.g. docs/science.md):\n" + "\n".join(hits)
    )


def _without_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    return [
        m.group(1).strip()
        for line in _without_fences(path.read_text(encoding="utf-8"))
        if (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line))
    ]


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_markdown_links_resolve_inside_the_repository():
    broken = []
    for path in markdown_files():
        for number, line in enumerate(_without_fences(path.read_text(encoding="utf-8")), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(REPO)}:{number}: ({target})"
                if not dest.exists():
                    broken.append(f"{where}: no such file")
                elif REPO.resolve() not in dest.parents and dest != REPO.resolve():
                    broken.append(f"{where}: outside the repository")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{where}: no heading with anchor #{anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


MENTION = re.compile(
    r"(?<![\w./-])((?:docs|engine|app|scripts|tests|bench)/[\w./-]*"
    r"\.(?:md|py|png|toml|json|sh|tcss))\b"
)


def test_repository_paths_mentioned_in_text_exist():
    missing = []
    for path in repo_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for mention in MENTION.findall(line):
                if not (REPO / mention).exists():
                    missing.append(f"{path.relative_to(REPO)}:{number}: {mention}")
    assert not missing, "paths that do not exist in the repository:\n" + "\n".join(missing)


# "(docs/science.md, 'Stitching')" or "docs/science.md, 'Forward model' and 'Losses'", possibly
# wrapped over comment or docstring lines.
SECTION_CITATION = re.compile(r"(docs/[\w/.-]+\.md),\s*('[^']+'(?:\s*(?:,|and)\s*'[^']+')*)")


def _unwrapped(text: str) -> str:
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


def test_cited_doc_sections_exist():
    wrong = []
    for path in repo_text_files():
        text = _unwrapped(path.read_text(encoding="utf-8"))
        for doc, names in SECTION_CITATION.findall(text):
            target = REPO / doc
            if not target.exists():
                wrong.append(f"{path.relative_to(REPO)}: {doc} does not exist")
                continue
            titles = [h.replace("`", "") for h in headings(target)]
            for name in re.findall(r"'([^']+)'", names):
                if not any(t == name or t.startswith(name + ":") for t in titles):
                    wrong.append(f"{path.relative_to(REPO)}: {doc} has no section '{name}'")
    assert not wrong, "citations of sections that do not exist:\n" + "\n".join(wrong)


def test_the_readme_lists_every_reference_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in (
        "science.md",
        "twin.md",
        "original_conditions.md",
        "arms.md",
        "telemetry.md",
        "detectors.md",
        "engineering.md",
        "benchmarks.md",
        "param_counts.md",
    ):
        assert f"(docs/{page})" in readme, f"README.md does not link docs/{page}"
