"""README.md and docs/ link only to what the repository holds: every relative link names a file
that exists (and, with `#anchor`, a heading of it), and no page names a path outside the
repository, which a reader of a clone or of the rendered site could not follow."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)
# Paths of a machine rather than of the repository, and the sibling checkout `../shared`.
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])/(?:work|home|Users|root|mnt)/|file://")


def prose(text: str) -> str:
    """The page without its fenced code blocks, which hold examples rather than links."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, markup and punctuation dropped, spaces
    as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = prose(page.read_text())
    for _, title in HEADING.findall(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found.update(HTML_ANCHOR.findall(text))
    return found


def links(page: Path) -> Iterator[str]:
    for target in LINK.findall(INLINE_CODE.sub("", prose(page.read_text()))):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_are_found() -> None:
    assert ROOT / "README.md" in PAGES
    assert ROOT / "docs" / "lanes.md" in PAGES
    assert len(PAGES) > 10


def test_slugs_are_githubs() -> None:
    assert slug("Performance (`make bench`)") == "performance-make-bench"
    assert slug("A Redis password") == "a-redis-password"
    assert slug("Lanes and outcomes") == "lanes-and-outcomes"
    assert slug("1. What you need") == "1-what-you-need"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_relative_link_names_a_file_and_anchor_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{name(page)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_no_page_names_a_path_outside_the_repository(page: Path) -> None:
    hits = [m.group(0) for m in OUTSIDE.finditer(page.read_text())]
    assert not hits, f"{name(page)} names {hits}"


REPO_PATH = re.compile(r"`((?:services|shared|tests|deploy|docs)/[\w./-]+)`")


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_repository_path_named_in_code_exists(page: Path) -> None:
    """A path such as `shared/infra/stream/lanes.py` names the tree as it is: a module moved or
    renamed leaves no page pointing at its old place."""
    missing = [p for p in REPO_PATH.findall(page.read_text()) if not (ROOT / p).exists()]
    assert not missing, f"{name(page)} names {missing}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """Each check fails on the mistake it exists for, so a green run means something."""
    (tmp_path / "b.md").write_text("# Title here\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#title-here) [gone](c.md) [bad](b.md#nope) `[code](x.md)`\n")
    targets = list(links(page))
    assert targets == ["b.md#title-here", "c.md", "b.md#nope"]
    assert anchors(tmp_path / "b.md") == {"title-here"}
    assert OUTSIDE.search("see ../shared/client")
    assert OUTSIDE.search("in /work/main/docs")
    assert not OUTSIDE.search("shared/client and docs/lanes.md")
    assert REPO_PATH.findall("`shared/infra/outbox.py` and `services/<name>/x.py`") == [
        "shared/infra/outbox.py"
    ]
