"""The documentation stays in step with the command line and with itself: every option of every
command's ``--help`` has a row in the options table under that command's heading in
docs/commands.md (and no row names an option the command no longer has), every relative link in
README.md and docs/*.md reaches a file and, with ``#anchor``, a heading of it, and the README
stays under 20 KB. Fast: the commands are read from the typer app, nothing is run."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import typer

from edge_opt.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMANDS_MD = DOCS / "commands.md"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_BYTES = 20_000

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_COMMAND_HEADING = re.compile(r"edge-opt ([a-z][a-z0-9-]*)")
_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose(path: Path) -> list[str]:
    """The file's lines, with fenced code blocks blanked (line numbers kept)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: a link's text kept, lowercase, every character but letters,
    digits, '_', '-' and spaces dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    for line in _prose(path):
        m = _HEADING.match(line)
        if m:
            base = slug(m.group(2))
            seen[base] = seen.get(base, -1) + 1
    return {base if n == 0 else f"{base}-{n}" for base, count in seen.items() for n in range(count + 1)}


def command_sections(path: Path = COMMANDS_MD) -> dict[str, list[str]]:
    """Command name -> the lines under its ``edge-opt NAME`` heading, up to the next heading of
    the same level or above. A command with two headings is an error."""
    sections: dict[str, list[str]] = {}
    current, level = None, 0
    for line in _prose(path):
        m = _HEADING.match(line)
        if m:
            depth = len(m.group(1))
            if current is not None and depth <= level:
                current = None
            named = _COMMAND_HEADING.fullmatch(m.group(2).replace("`", "").strip())
            if named:
                current, level = named.group(1), depth
                assert current not in sections, f"{path.name}: two headings for `edge-opt {current}`"
                sections[current] = []
                continue
        if current is not None:
            sections[current].append(line)
    return sections


def documented_options(lines: list[str]) -> list[str]:
    """The options named in the first cell of the option-table rows (rows whose first cell
    starts with `-`)."""
    found = []
    for line in lines:
        if not line.lstrip().startswith("|"):
            continue
        first = line.strip().strip("|").split("|")[0].strip()
        if first.startswith("`-"):
            found += _OPTION.findall(first)
    return found


def cli_options() -> dict[str, set[str]]:
    """Command name -> every option its --help shows (long and short; --help itself aside). Typer
    ships its own copy of click, so options are told by ``param_type_name``, not by class."""
    group = typer.main.get_command(app)
    return {
        name: {
            opt
            for param in command.params
            if param.param_type_name == "option" and not getattr(param, "hidden", False)
            for opt in (*param.opts, *param.secondary_opts)
        }
        for name, command in group.commands.items()
        if not command.hidden
    }


CLI = cli_options()


def test_every_command_has_one_heading_in_commands_md():
    sections = command_sections()
    missing = sorted(set(CLI) - set(sections))
    extra = sorted(set(sections) - set(CLI))
    assert not missing, f"docs/commands.md has no `## edge-opt NAME` heading for: {missing}"
    assert not extra, f"docs/commands.md has a heading for commands the CLI does not have: {extra}"


@pytest.mark.parametrize("command", sorted(CLI))
def test_every_option_of_the_command_is_documented_under_its_heading(command):
    documented = documented_options(command_sections().get(command, []))
    missing = sorted(CLI[command] - set(documented))
    stale = sorted(set(documented) - CLI[command])
    twice = sorted({o for o in documented if documented.count(o) > 1})
    where = f"docs/commands.md, the options table under `edge-opt {command}`"
    assert not missing, f"{where} lacks options that `edge-opt {command} --help` shows: {missing}"
    assert not stale, f"{where} documents options the command does not have: {stale}"
    assert not twice, f"{where} lists options twice: {twice}"


def _links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and link definition outside code."""
    text = "\n".join(_prose(page))
    text = _INLINE_CODE.sub(lambda m: "\n" * m.group().count("\n"), text)
    found = [(m.start(), m.group(1)) for m in _LINK.finditer(text)]
    found += [(m.start(), m.group(1)) for m in _REFERENCE.finditer(text)]
    return sorted((text.count("\n", 0, start) + 1, target) for start, target in found)


def _broken(page: Path, target: str) -> str | None:
    """Why a relative link does not resolve, or None when it does (or is not relative)."""
    if _SCHEME.match(target):
        return None
    path, _, anchor = target.partition("#")
    dest = (page.parent / unquote(path)).resolve() if path else page
    if not dest.is_relative_to(ROOT):
        return "points outside the checkout"
    if not dest.exists():
        return "no such file"
    if anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
        return f"no heading with the anchor #{anchor} in {dest.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = [
        f"{page.relative_to(ROOT)}:{line}: ({target}) {why}"
        for line, target in _links(page)
        if (why := _broken(page, target))
    ]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_index():
    linked = {(DOCS / t.partition("#")[0]).resolve() for _, t in _links(DOCS / "index.md") if not _SCHEME.match(t)}
    unlisted = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.resolve() not in linked)
    assert not unlisted, f"docs/index.md does not link: {unlisted}"


def test_readme_stays_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, over {README_MAX_BYTES}: move detail into docs/"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("`edge-opt run`", "edge-opt-run"),
        ("The inventory (`devices/*.yaml`)", "the-inventory-devicesyaml"),
        ("The search in `report.html`", "the-search-in-reporthtml"),
        ("Target profiles (`targets/*.yaml`)", "target-profiles-targetsyaml"),
    ],
)
def test_slug_follows_githubs_rules(heading, anchor):
    assert slug(heading) == anchor
