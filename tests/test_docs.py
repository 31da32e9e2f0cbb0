"""The docs cannot drift from the code: README.md and docs/*.md link only to files and headings that exist, and every
`orchestrator ...` command in their fenced blocks names a real command with real flags of the command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from orchestrator.cli import app

CLI = typer.main.get_command(app)
ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
REDIRECT = re.compile(r"\s\d*(?:>>|>|<)&?\s*\S+")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
SEPARATOR = re.compile(r"[();<>|&]+")  # what shlex splits off as shell punctuation


def split_fences(text: str) -> tuple[list[str], list[list[str]]]:
    """The page's prose lines (fenced blocks blanked out) and the lines of each fenced block."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives the page's headings (a repeated heading gets -1, -2 ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in split_fences(page.read_text())[0]:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of a page whose file or heading does not exist, as 'page:line: link (why)'."""
    broken = []
    for number, line in enumerate(split_fences(page.read_text())[0], 1):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of this repository
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not file.exists():
                broken.append(f"{where} (no file {file})")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                broken.append(f"{where} (no heading with anchor #{anchor} in {file.name})")
    return broken


def commands(block: list[str]) -> list[list[str]]:
    """The argument lists of every `orchestrator` (or `python -m orchestrator`) command in a fenced block.

    Lines ending in a backslash continue; comments, redirections, `&&`, `;` and pipes are shell, not arguments.
    """
    found = []
    for line in "\n".join(block).replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(REDIRECT.sub(" ", " " + line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True  # words end at blanks and shell punctuation only: `$URL`, `toto,kronos`
        try:
            words = list(lexer)
        except ValueError:  # an unbalanced quote: output, not a command
            continue
        segment: list[str] = []
        for word in [*words, ";"]:
            if not SEPARATOR.fullmatch(word):
                if segment or not ASSIGNMENT.match(word):  # `URL=...` or `HF_HUB_OFFLINE=1 orchestrator ...`
                    segment.append(word)
                continue
            if segment[:3] in (["python", "-m", "orchestrator"], ["python3", "-m", "orchestrator"]):
                found.append(segment[3:])
            elif segment and Path(segment[0]).name == "orchestrator":
                found.append(segment[1:])
            segment = []
    return found


def bad_usage(argv: list[str]) -> str | None:
    """Why `orchestrator ARGV` is not a real command with real flags, or None when it is."""
    if not argv or argv[0].startswith("-"):  # `orchestrator --help`
        context = CLI.context_class(CLI, info_name="orchestrator")
        known = {flag for param in CLI.get_params(context) for flag in (*param.opts, *param.secondary_opts)}
        unknown = [word for word in argv if word not in known]
        return f"orchestrator: no option {unknown[0]}" if unknown else None
    name, args = argv[0], argv[1:]
    command = CLI.commands.get(name)
    if command is None:
        return f"no command {name!r} (commands: {', '.join(sorted(CLI.commands))})"
    context = CLI.context_class(command, info_name=name)
    try:
        _, extra, _ = command.make_parser(context).parse_args(args)
    except typer.TyperException as error:  # click's UsageError: an unknown flag, a flag without its value
        return f"{name}: {error.format_message()}"  # type: ignore[attr-defined]
    takes_arguments = any(param.param_type_name != "option" for param in command.params)
    return f"{name}: unexpected argument {extra[0]!r}" if extra and not takes_arguments else None


def test_pages_exist() -> None:
    """The README links to the docs pages; the folder is not empty."""
    assert len(PAGES) > 1, "docs/*.md is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link names a file that exists, and a heading of it where an anchor is given."""
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_commands_in_fenced_blocks_are_real(page: Path) -> None:
    """Every `orchestrator ...` command shown in a fenced block names a real command and real flags."""
    wrong = [
        f"{page.relative_to(ROOT)}: orchestrator {shlex.join(argv)}: {why}"
        for block in split_fences(page.read_text())[1]
        for argv in commands(block)
        if (why := bad_usage(argv))
    ]
    assert wrong == []


def test_the_checks_catch_drift(tmp_path: Path) -> None:
    """The checks themselves fail on a broken link, a missing anchor, a bogus flag and a bogus command."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](missing.md) [b](#title) [c](#nope) [d](https://example.com/x)\n")
    broken = broken_links(page, root=tmp_path)
    assert [line.split(" (")[0].rsplit(": ", 1)[1] for line in broken] == ["missing.md", "#nope"]
    block = [
        "URL=postgresql://host/orchestrator",
        "HF_HUB_OFFLINE=1 orchestrator status --all",
        "orchestrator status --storage $URL \\",
        "    --json   # a comment --not-a-flag",
        "cd /srv && .venv/bin/orchestrator launch --models toto --bogus 2 >> log 2>&1 | tee x",
        "python -m orchestrator frobnicate",
        "orchestrator best --model",
        "orchestrator --help",
        "orchestrator --version",
    ]
    argvs = commands(block)
    assert argvs == [
        ["status", "--all"],
        ["status", "--storage", "$URL", "--json"],
        ["launch", "--models", "toto", "--bogus", "2"],
        ["frobnicate"],
        ["best", "--model"],
        ["--help"],
        ["--version"],
    ]
    assert [bad_usage(argv) is None for argv in argvs] == [True, True, False, False, False, True, False]
    assert "--bogus" in bad_usage(argvs[2])

