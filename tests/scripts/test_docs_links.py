"""The README is the front door and docs/ the rooms behind it: every relative link in them leads
to a file that exists, and every #anchor to a heading of that file."""
from __future__ import annotations

import re

import pytest

from tests.scripts.test_script_help import ROOT

PAGES = [ROOT / "README.md", ROOT / "n8n_workflows" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert not broken, broken


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    assert {p.name for p in (ROOT / "docs").glob("*.md")} - {m.split("/")[-1] for m in LINK.findall(readme)} == set()
