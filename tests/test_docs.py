"""The documentation holds together: every relative link and image in README.md and docs/*.md points at a file
that exists (and, for a `#anchor`, at a heading of that file), and the README stays a short front page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220  # issue 15: "a README of at most ~200 lines"; the rest lives in docs/

# [text](target) and ![alt](target); a target ends at the first space (an optional "title" follows) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(text: str) -> list[str]:
    # Code blocks hold shell and Python, where "[x](y)" is not a link.
    return LINK.findall(FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (not '-' or '_'), spaces become '-'."""
    out = set()
    for line in FENCE.sub("", text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link as written, the file it points at, its anchor or "") for every link that is not a URL."""
    out = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        out.append((target, (page.parent / path).resolve() if path else page, anchor))
    return out


def test_the_link_parser_sees_links_images_and_anchors_but_not_code():
    text = "See [a](docs/a.md#x-y) and ![pic](p.png \"t\"), [web](https://x.org).\n```\n[no](n.md)\n```\n"
    assert links(text) == ["docs/a.md#x-y", "p.png", "https://x.org"]
    assert anchors("## dlp-sim: a simulated deep-learning processor\n## `run` flags\n") == {
        "dlp-sim-a-simulated-deep-learning-processor", "run-flags"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(page):
    found = relative_links(page)
    broken = [t for t, path, _ in found if not path.exists()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"
    bad_anchor = [t for t, path, a in found
                  if a and path.suffix == ".md" and a not in anchors(path.read_text(encoding="utf-8"))]
    assert not bad_anchor, f"{page.relative_to(ROOT)}: links to missing headings: {bad_anchor}"


def test_the_readme_links_every_docs_page():
    linked = {path for _, path, _ in relative_links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"README.md does not link docs pages: {missing}"


def test_the_readme_stays_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/ (limit {README_MAX_LINES})"
