"""Every ```python block of README.md and docs/ runs against the emulator, or says why not.

A block runs with the environment ``sqlalchemy-rds-iam emulator env`` prints (AWS keys and
region, the trust-store override, ``RDS_IAM_POSTGRESQL_URL``, ``RDS_IAM_MYSQL_URL``), as a
reader who ran the README's "Try it locally" has it. The blocks of one page share one
namespace, in order. A block that defines ``test_*`` functions has them called with the
emulator fixtures their parameters name. A block that cannot run carries
``<!-- not-run: <reason> -->`` on the line right before its fence (see docs/contributing.md).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sqlalchemy_rds_iam.testing.info import EmulatorInfo

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
_MARKER = re.compile(r"<!--\s*not-run\b")

#: The variables ``emulator env`` exports that the documented code reads.
URL_VARIABLES = ("RDS_IAM_POSTGRESQL_URL", "RDS_IAM_MYSQL_URL")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason, when marked


def python_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks (indented ones in lists too), with their not-run reason."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        language = (opening["info"].split() or [""])[0]
        if language in ("python", "py"):
            body = "\n".join(line[indent:] for line in lines[index + 1:end])
            marker = _NOT_RUN.match(lines[index - 1]) if index else None
            reason = marker["reason"].strip() if marker else None
            blocks.append(Block(page, index + 1, textwrap.dedent(body), reason))
        index = end + 1
    return blocks


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_not_run_marker_gives_a_reason_and_stands_before_a_python_block() -> None:
    problems = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not _MARKER.search(line) or "````" in "".join(lines[number - 3:number]):
                continue
            marker = _NOT_RUN.match(line)
            if marker is None or not marker["reason"].strip():
                problems.append(f"{_name(page)}:{number}: not-run without a reason")
            elif number >= len(lines) or not re.match(r"^\s*```python\b", lines[number]):
                problems.append(f"{_name(page)}:{number}: not-run not right before ```python")
    assert problems == []


def test_every_block_compiles_even_when_not_run() -> None:
    for page in PAGES:
        for block in python_blocks(page):
            compile(block.code, f"{_name(page)}:{block.line}", "exec", dont_inherit=True)


def test_the_readme_and_the_docs_have_runnable_blocks() -> None:
    """A guard against a parser that finds nothing: then every page would 'pass'."""
    runnable = {_name(p): sum(b.not_run is None for b in python_blocks(p)) for p in PAGES}
    assert runnable["README.md"] >= 4
    assert runnable["docs/getting-started.md"] >= 4
    assert sum(runnable.values()) >= 15


def _emulator_env(info: EmulatorInfo) -> dict[str, str]:
    """What ``eval "$(sqlalchemy-rds-iam emulator env)"`` sets, from the command itself."""
    from sqlalchemy_rds_iam.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["emulator", "env", "--state-dir", str(info.state_dir)])
    if code == 0:
        env = {}
        for line in out.getvalue().splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "export":
                for word in words[1:]:
                    name, _, value = word.partition("=")
                    env[name] = value
        return env
    # Before `emulator env` existed: the same variables, from the emulator's description.
    env = {**info.aws_env("primary"), **info.trust_store_env()}
    for variable, server in zip(URL_VARIABLES, ("postgresql", "mysql"), strict=True):
        key = f"{server}-instance"
        env[variable] = (
            info.topology[key].url("iamuser", "psycopg2" if server == "postgresql" else "pymysql")
            if key in info.topology
            else info.servers[server].url("iamuser")
        )
    return env


@pytest.fixture
def docs_env(
    rds_iam_emulator: EmulatorInfo,
    rds_iam_aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    env = _emulator_env(rds_iam_emulator)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", *URL_VARIABLES} <= set(env)
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_EMULATOR_DIR", str(rds_iam_emulator.state_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**rds_iam_aws_env, **env}


RUNNABLE = [p for p in PAGES if any(b.not_run is None for b in python_blocks(p))]


@pytest.mark.integration
@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_page_blocks_run(page: Path, rds_iam_emulator: EmulatorInfo, docs_env: dict[str, str]) -> None:
    import sqlalchemy as sa

    namespace: dict[str, Any] = {"__name__": "docs_" + re.sub(r"\W", "_", page.stem)}
    fixtures = {
        "rds_iam_emulator": rds_iam_emulator,
        "rds_iam_aws_env": docs_env,
        "rds_iam_topology_env": docs_env,
    }
    try:
        for block in python_blocks(page):
            if block.not_run is not None:
                continue
            before = set(namespace)
            where = f"{_name(page)}:{block.line}"
            # dont_inherit: not this module's `from __future__ import annotations`
            code = compile(block.code, where, "exec", dont_inherit=True)
            exec(code, namespace)  # noqa: S102 (our own docs)
            for name in sorted(set(namespace) - before):
                function = namespace[name]
                if name.startswith("test_") and callable(function):
                    arguments = [fixtures[p] for p in inspect.signature(function).parameters]
                    function(*arguments)
    finally:
        for value in namespace.values():
            if isinstance(value, sa.engine.Engine):
                value.dispose()
