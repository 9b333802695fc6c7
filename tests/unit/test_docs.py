"""The documentation against the code: options, exit codes, the README's size, no made-up URLs.

The code blocks themselves run in ``tests/integration/test_docs_blocks.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sqlalchemy_rds_iam.cli import ERROR_EXIT_CODES, USAGE_EXIT_CODE
from sqlalchemy_rds_iam.doctor import EXIT_CODES, UNEXPECTED_EXIT_CODE
from sqlalchemy_rds_iam.options import (
    DEFAULTS,
    KEYWORD_ONLY_NAMES,
    OPTION_NAMES,
    AttachOptions,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 250

#: Addresses that were never real: the made-up repository, and template leftovers.
PLACEHOLDERS = (
    "github.com/sqlalchemy-rds-iam/sqlalchemy-rds-iam",
    "example.com/your",
    "your-org/",
    "<your-repo>",
)


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header row starts with ``header``."""
    lines = text[text.index(header):].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def test_readme_is_a_front_door_under_250_lines() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_try_it_locally_has_the_three_commands() -> None:
    section = README.read_text().split("## Try it locally", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    assert block.group(1).splitlines() == [
        "pip install 'sqlalchemy-rds-iam[postgresql,mysql,testing]'",
        "sqlalchemy-rds-iam emulator start",
        'eval "$(sqlalchemy-rds-iam emulator env)"',
    ]


def _shipped_text_files() -> list[Path]:
    paths = [README, ROOT / "pyproject.toml", ROOT / "CHANGELOG.md", ROOT / "mkdocs.yml"]
    for folder in ("docs", "examples", "tools", "sqlalchemy_rds_iam", "bench"):
        paths += [
            p for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in {".md", ".py", ".toml", ".yaml", ".yml", ".ini", ".txt"}
        ]
    return paths


def test_no_placeholder_url_anywhere() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in _shipped_text_files()
        for needle in PLACEHOLDERS
        if needle in path.read_text(errors="replace")
    ]
    assert found == []


def test_options_reference_matches_options_py() -> None:
    rows = _table((DOCS / "reference" / "options.md").read_text(), "| option | type |")
    documented = {row[0].strip("`"): row for row in rows}
    assert list(documented) == [*OPTION_NAMES, *KEYWORD_ONLY_NAMES]
    assert len(rows) == len(documented), "an option is listed twice"
    annotations = AttachOptions.__annotations__
    defaults = dict(DEFAULTS)
    assert set(annotations) == set(documented) == set(defaults)
    for name, (_, type_cell, in_url, default_cell, meaning) in documented.items():
        annotation = annotations[name]  # a ForwardRef: options.py postpones annotations
        annotation = getattr(annotation, "__forward_arg__", annotation)
        assert re.match(r"`([^`]*)`", type_cell)[1] == annotation, name  # type: ignore[index]
        assert in_url == ("yes" if name in OPTION_NAMES else "no"), name
        assert default_cell.startswith(f"`{defaults[name]!r}`"), (name, default_cell)
        assert meaning, name


def _exit_code_headings() -> set[int]:
    text = (DOCS / "troubleshooting.md").read_text()
    return {int(n) for n in re.findall(r"^### exit (\d+)\b", text, re.M)}


def test_troubleshooting_has_an_entry_per_exit_code() -> None:
    codes = {0, USAGE_EXIT_CODE, UNEXPECTED_EXIT_CODE}
    codes |= set(EXIT_CODES.values()) | {code for _, code in ERROR_EXIT_CODES}
    assert codes - _exit_code_headings() == set()


@pytest.mark.parametrize("name", [*EXIT_CODES, *(cls.__name__ for cls, _ in ERROR_EXIT_CODES)])
def test_troubleshooting_names_every_doctor_step_and_error_class(name: str) -> None:
    headings = re.findall(r"^### (.*)$", (DOCS / "troubleshooting.md").read_text(), re.M)
    if name == "RdsIamError":  # the root: exit 1, "a failure the message explains"
        assert any(h.startswith("exit 1:") for h in headings)
        return
    assert any(name in h for h in headings), name


def _hooks() -> Any:
    """``tools/mkdocs_hooks.py``, the site build's generator (not a package: a file by path)."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return mkdocs_hooks


#: Where each generated table must be: a page that drops its markers would drop the check.
GENERATED_ON = {"exit-codes": "docs/troubleshooting.md", "exit-classes": "docs/reference/exceptions.md",
                "module-map": "docs/architecture.md"}
#: The headers of the generated tables: one written by hand, outside the markers, is a copy.
GENERATED_HEADERS = ("| code | command | meaning |", "| class | exit code |",
                     "| module | lines | layer |")


def test_generated_tables_are_where_they_belong() -> None:
    hooks = _hooks()
    assert set(GENERATED_ON) == set(hooks.GENERATED)
    for name, page in GENERATED_ON.items():
        assert len(hooks.written((ROOT / page).read_text())[name]) == 1, (page, name)
        stale = f"text\n<!-- {name}:begin -->\n| stale |\n<!-- {name}:end -->\nmore\n"
        built = hooks.on_page_markdown(stale)  # the site shows what the code makes now
        assert built == stale.replace("| stale |", hooks.GENERATED[name]())


@pytest.mark.parametrize("page", [p.relative_to(ROOT).as_posix() for p in _hooks().pages()])
def test_written_tables_are_what_the_code_makes(page: str) -> None:
    """GitHub shows README.md and docs/ as written, the site as generated: they must agree.
    Each exit code is declared once, in doctor's step table; the pages' tables follow it."""
    hooks = _hooks()
    text = (ROOT / page).read_text()
    for name, regions in hooks.written(text).items():
        expected = hooks.GENERATED[name]()
        for region in regions:
            assert region == expected, (
                f"{page}: the {name} table is not what the code makes; run "
                f"`python tools/mkdocs_hooks.py`, or put this between its markers:\n{expected}"
            )
    outside = hooks.expand(text)
    for name in hooks.GENERATED:
        outside = hooks._regions(name).sub("", outside)
    copies = [header for header in GENERATED_HEADERS if header in outside]
    assert copies == [], f"{page}: a hand-written copy of a generated table; use its markers"


def test_troubleshooting_headings_give_each_step_and_class_its_own_code() -> None:
    """``### exit 5: dns`` is right only while the dns step exits 5."""
    from sqlalchemy_rds_iam import errors
    from sqlalchemy_rds_iam.cli import exit_code_for

    codes = dict(EXIT_CODES)
    codes.update({name: exit_code_for(getattr(errors, name)("x")) for name in errors.__all__})
    text = (DOCS / "troubleshooting.md").read_text()
    wrong = [
        f"exit {code}: {word} exits {codes[word]}"
        for code, label in re.findall(r"^### exit (\d+): (.*)$", text, re.M)
        for word in re.findall(r"[A-Za-z]+", re.sub(r'"[^"]*"', "", label))  # quotes: messages
        if word in codes and codes[word] != int(code)
    ]
    assert wrong == []


def test_cli_reference_is_generated_from_the_parser() -> None:
    mkdocs_hooks = _hooks()
    page = (DOCS / "reference" / "cli.md").read_text()
    assert mkdocs_hooks.CLI_MARKER in page
    generated = mkdocs_hooks.on_page_markdown(page)
    for command in ("token", "psql", "mysql", "ca path", "ca update", "doctor", "emulator start"):
        assert f"## `sqlalchemy-rds-iam {command}`" in generated
        assert f"usage: sqlalchemy-rds-iam {command}" in generated


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert {p for p in pages if f": {p}\n" not in nav} == set()


# -- docs/architecture.md against the package and the layers contract -------------------------

ARCHITECTURE = DOCS / "architecture.md"
PACKAGE = ROOT / "sqlalchemy_rds_iam"
#: Paths the page may name that are not modules of the package.
_OTHER_FILES = ("tests/", "bench/", "tools/", "examples/")


def _runtime_modules() -> dict[str, int]:
    """Every runtime module (the package outside ``testing/``), as the page names it
    (``plugin.py``, ``drivers/rules.py``), with its line count."""
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text().count("\n")
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "testing"
    }


def _contract_layers() -> list[list[str]]:
    return _hooks().contract_layers()  # type: ignore[no-any-return]


def _layer_of(module: str) -> int:
    return _hooks().layer_of(module)  # type: ignore[no-any-return]


def _architecture(section: str) -> str:
    """The text of one ``## section`` of the page (up to the next ``## ``)."""
    return ARCHITECTURE.read_text().split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]


def test_architecture_layer_table_is_the_contract() -> None:
    rows = _table(ARCHITECTURE.read_text(), "| layer | modules |")
    assert [int(number) for number, _ in rows] == list(range(1, len(rows) + 1))
    assert [re.findall(r"`(\w+)`", modules) for _, modules in rows] == _contract_layers()


def test_architecture_module_map_names_every_runtime_module_and_no_other() -> None:
    actual = _runtime_modules()
    rows = {cells[0].strip("`"): cells[1:] for cells in _table(_architecture("Module map"),
                                                                "| module |")}
    total = rows.pop("total")
    assert sorted(rows) == sorted(actual), "docs/architecture.md's module map is stale"
    # (its counts and layers: test_written_tables_are_what_the_code_makes)
    assert int(total[0]) == sum(int(lines) for lines, _ in rows.values())
    # and the page names no module that is not there (a file moved, renamed or split)
    named = {
        name.removeprefix("sqlalchemy_rds_iam/")
        for name in re.findall(r"`([\w./]+\.py)`", ARCHITECTURE.read_text())
        if not name.startswith(_OTHER_FILES)
    }
    assert named - set(actual) == set()


def test_architecture_walk_visits_each_module_once_in_layer_order() -> None:
    section = _architecture("The walk")
    walk = re.findall(r"^\d+\. `([\w/]+\.py)`:", section, re.M)
    beside = set(re.findall(r"`([\w/]+\.py)`", section.split("\nBeside the walk", 1)[1]))
    assert len(walk) == len(set(walk)), "a module visited twice"
    assert set(walk) | beside == set(_runtime_modules()) and not set(walk) & beside
    layers = [_layer_of(module) for module in walk]
    assert layers == sorted(layers), list(zip(walk, layers, strict=True))
