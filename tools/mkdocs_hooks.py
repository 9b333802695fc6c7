"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

``<!-- cli:help -->`` in a page becomes the ``--help`` of every command and sub-command,
taken from :func:`sqlalchemy_rds_iam.cli.build_parser` (the parser ``main`` runs).

``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` holds a table made from the code
(:data:`GENERATED`; the exit codes come from doctor's step table). The text between the
markers is written in the page too, for readers of the Markdown on GitHub: the build
replaces it with the table the code makes now, and ``tests/unit/test_docs.py`` fails while
the two differ. ``python tools/mkdocs_hooks.py`` rewrites the pages' copies.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

CLI_MARKER = "<!-- cli:help -->"
#: argparse wraps at the terminal width: fix it so the page is the same on every machine.
HELP_COLUMNS = "100"
ROOT = Path(__file__).resolve().parents[1]


def _commands(
    parser: argparse.ArgumentParser, prog: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prog} {name}")


def cli_reference() -> str:
    """Every command's ``--help``, one section each, as Markdown."""
    from sqlalchemy_rds_iam.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        sections = [
            f"## `{prog}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"
            for prog, parser in _commands(build_parser(), "sqlalchemy-rds-iam")
        ]
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(sections)


def _markdown_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def exit_code_table() -> str:
    """Every exit code of the command line: the codes no step owns, then one row per code of
    doctor's steps, with the error classes that exit with it everywhere."""
    from sqlalchemy_rds_iam.cli import OTHER_EXIT_CODES
    from sqlalchemy_rds_iam.doctor import STEPS

    rows = [(str(code), "every command", meaning) for code, meaning in OTHER_EXIT_CODES]
    for code in sorted({step.exit_code for step in STEPS}):
        steps = [step for step in STEPS if step.exit_code == code]
        names = " or ".join(step.name for step in steps)
        meaning = "; ".join(step.meaning for step in steps if step.meaning)
        classes = ", ".join(f"`{cls.__name__}`" for step in steps for cls in step.errors)
        if classes:
            rows.append((str(code), "every command",
                         f"{meaning} ({classes}); `doctor`: the {names} step"))
        else:
            rows.append((str(code), "`doctor`", f"the {names} step: {meaning}"))
    return _markdown_table(("code", "command", "meaning"), rows)


def exit_class_table() -> str:
    """The exit code of each exception class, in the order the command line matches them:
    a class no step names exits with its closest ancestor's code."""
    from sqlalchemy_rds_iam import errors
    from sqlalchemy_rds_iam.cli import ERROR_EXIT_CODES

    declared = [cls for cls, _ in ERROR_EXIT_CODES]
    rows = []
    for cls, code in ERROR_EXIT_CODES:
        others = [
            f"`{name}`" for name in errors.__all__
            if getattr(errors, name) not in declared
            and next(d for d in declared if issubclass(getattr(errors, name), d)) is cls
        ]
        if others:
            rows.append((f"`{cls.__name__}` (and {', '.join(others)})", str(code)))
        elif cls is declared[-1]:  # the root, last: what no other row matched
            rows.append((f"`{cls.__name__}` (anything else)", str(code)))
        else:
            rows.append((f"`{cls.__name__}`", str(code)))
    return _markdown_table(("class", "exit code"), rows)


def contract_layers() -> list[list[str]]:
    """The layers of pyproject.toml's import-linter layers contract, top to bottom (a name in
    parentheses, optional there, left out)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split('type = "layers"', 1)[1].split("layers = [", 1)[1].split("]", 1)[0]
    return [
        [name.strip() for name in re.split(r"[|:]", layer) if "(" not in name]
        for layer in re.findall(r'^\s*"([^"]+)",', block, re.M)
    ]


def layer_of(module: str) -> int:
    """The contract layer (1 = top) of a runtime module; the package's ``__init__.py``: 0."""
    if module == "__init__.py":
        return 0
    top = module.split("/", 1)[0].removesuffix(".py")
    (index,) = [n for n, layer in enumerate(contract_layers(), 1) if top in layer]
    return index


def module_map_table() -> str:
    """Lines per runtime module (``testing/`` aside), in layer order."""
    package = ROOT / "sqlalchemy_rds_iam"
    lines = {
        path.relative_to(package).as_posix(): len(path.read_text().splitlines())
        for path in package.rglob("*.py") if "testing" not in path.relative_to(package).parts
    }
    rows = [(f"`{module}`", str(lines[module]), str(layer_of(module)) if layer_of(module) else
             "package") for module in sorted(lines, key=lambda m: (layer_of(m), m))]
    rows.append(("total", str(sum(lines.values())), ""))
    return _markdown_table(("module", "lines", "layer"), rows).replace(
        "| --- | --- | --- |", "| --- | ---: | --- |")


#: Marker name -> what the code makes for it.
GENERATED: dict[str, Callable[[], str]] = {
    "exit-codes": exit_code_table,
    "exit-classes": exit_class_table,
    "module-map": module_map_table,
}


def _regions(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)


def written(markdown: str) -> dict[str, list[str]]:
    """The generated regions as a page writes them: marker name -> their texts."""
    return {
        name: [m.group(2).rstrip("\n") for m in _regions(name).finditer(markdown)]
        for name in GENERATED
    }


def expand(markdown: str) -> str:
    """``markdown`` with every generated region holding what the code makes now."""
    for name, make in GENERATED.items():
        if f"<!-- {name}:begin -->" in markdown:
            text = make()
            markdown = _regions(name).sub(
                lambda m: f"{m[1]}{text}\n{m[3]}", markdown  # noqa: B023 (used at once)
            )
    return markdown


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Expand the generated sections of a page."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return expand(markdown)


def pages() -> list[Path]:
    """The Markdown that may hold generated regions: the README (GitHub shows it as it is
    written) and the site's pages."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


if __name__ == "__main__":
    for page in pages():
        text = page.read_text()
        if expand(text) != text:
            page.write_text(expand(text))
            print(f"rewrote {page.relative_to(ROOT)}")
