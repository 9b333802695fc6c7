"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

``<!-- cli:help -->`` in a page becomes the ``--help`` of every command and sub-command,
taken from :func:`sqlalchemy_rds_iam.cli.build_parser` (the parser ``main`` runs).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

CLI_MARKER = "<!-- cli:help -->"
#: argparse wraps at the terminal width: fix it so the page is the same on every machine.
HELP_COLUMNS = "100"


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


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Expand the generated sections of a page."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown
