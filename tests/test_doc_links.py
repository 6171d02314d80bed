"""The docs' links and references resolve: a newcomer who follows one lands where it says.

Checked in README.md and docs/*.md: relative Markdown links (and their #anchors), the repository
files they name (`node/harness/data.py`, `tests/cli/test_disk_full.py`, ...), and references to
a section of another doc (`docs/HARNESS.md, "Checkpoints and resume"`), which must name one of
its headings or bold paragraph titles. Commands and flags are checked by
tests/cli/test_newcomer.py; docs/schema and docs/vectors by tests/memory/test_protocol_docs.py.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a path in this repository with a file extension: memory/x.py, tests/cli/test_y.py, docs/X.md
REPO_FILE = re.compile(r"(?<![\w./~-])((?:memory|node|roles|swarm|tests|scripts|docs)/"
                       r"[\w/.-]*\w\.(?:py|md|json|sh|txt|xz|swarm))\b")
SECTION = re.compile(r"((?:docs/)?[A-Z]+\.md),?\s+\"([^\"]+)\"")


def _ids(doc: Path) -> str:
    return doc.name


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _titles(text: str) -> list[str]:
    """Headings and bold paragraph titles (`**Multiplicity: LOND ...**`), whitespace folded."""
    found = [m.group(1) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)]
    found += [m.group(1) for m in re.finditer(r"\*\*([^*]+)\*\*", text)]
    return [" ".join(t.split()).lower() for t in found]


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    text, broken = doc.read_text(encoding="utf-8"), []
    for link in LINK.findall(text):
        if re.match(r"[a-z]+:", link):
            continue                                  # http(s), mailto: not checked here
        path, _, anchor = link.partition("#")
        target = (doc.parent / path) if path else doc
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in {
                _anchor(h) for h in re.findall(r"^#+\s+(.*)$", target.read_text(), re.M)}:
            broken.append(link)
    assert broken == []


def _exists(path: str) -> bool:
    """Whether the repository holds `path`; a placeholder (`records-vN.swarm`, `NAME`) matches any."""
    pattern = re.sub(r"(?<=v)N\b|\b(?:NAME|KEY)\b", "*", path)
    return (ROOT / path).exists() if pattern == path else any(ROOT.glob(pattern))


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_repository_files_named_exist(doc: Path) -> None:
    named = set(REPO_FILE.findall(doc.read_text(encoding="utf-8")))
    assert named and sorted(p for p in named if not _exists(p)) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_sections_named_in_other_docs_exist(doc: Path) -> None:
    missing = []
    for name, section in SECTION.findall(doc.read_text(encoding="utf-8")):
        target = ROOT / name if name.startswith("docs/") else doc.parent / name
        wanted = " ".join(section.split()).lower()
        if not target.exists() or not any(wanted in t for t in _titles(target.read_text())):
            missing.append(f"{name}, {section!r}")
    assert missing == []
