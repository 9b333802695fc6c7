"""The usual first mistakes, in words: a driver that is not installed, a misspelt name.

SQLAlchemy's own answers are a bare ``ModuleNotFoundError`` (``No module named 'psycopg'``
for a plain ``postgresql://`` URL on SQLAlchemy 2.1) and "Can't load plugin:
sqlalchemy.dialects:postgresql.psycopg3". The plugin runs before either: SQLAlchemy
constructs URL plugins before it loads the dialect or imports its DBAPI, so
:func:`driver_problem` checks, without importing the driver, that each module the
driver's row needs can be found (``drivers.modules_missing``), and names the extra that
installs it. ``doctor`` uses the same function. The plugin makes the same check itself and
loads this module only when something is wrong; ``difflib`` only for a misspelt name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .drivers import DRIVER_MODULES, DRIVERS, modules_missing, url_driver
from .errors import ConfigurationError, UnsupportedDriverError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "DRIVER_MODULES",
    "MISSPELT_PLUGIN_NAMES",
    "DriverProblem",
    "MisspeltPlugin",
    "close_names",
    "driver_problem",
    "require_driver",
]

#: For a URL without ``+driver``: the driver to name instead, and its extra.
_NAMED_INSTEAD = {"postgresql": ("psycopg2", "postgresql"), "mysql": ("pymysql", "mysql")}


class DriverProblem:
    """What is wrong with the URL's driver, and the one thing to do about it.

    ``error`` is what the plugin raises for it: an unknown name is an
    :class:`UnsupportedDriverError`. (A plain class: a named tuple costs every cold start
    ~0.2 ms to build, and this module is on every plugin engine's path.)
    """

    __slots__ = ("detail", "error", "fix")

    def __init__(self, detail: str, fix: str,
                 error: type[ConfigurationError] = ConfigurationError) -> None:
        self.detail = detail
        self.fix = fix
        self.error = error

    def __repr__(self) -> str:
        return f"DriverProblem({self.detail!r}, {self.fix!r}, {self.error.__name__})"

    def __str__(self) -> str:
        return f"{self.detail}: {self.fix}"


def close_names(name: str, candidates: list[str]) -> list[str]:
    """Up to two of ``candidates`` that look like ``name`` (a misspelling), best first."""
    import difflib

    return difflib.get_close_matches(name, candidates, n=2, cutoff=0.6)


def _driver_names() -> list[str]:
    names = ["postgresql", "mysql", "mariadb"]
    for spec in DRIVERS.values():
        names.append(spec.url_prefix)
        if spec.family == "mysql":
            names.append(f"mariadb+{spec.name}")
    return names


def _unknown_driver(drivername: str) -> DriverProblem:
    guesses = close_names(drivername, _driver_names())
    supported = ", ".join(spec.url_prefix for spec in DRIVERS.values())
    fix = (
        "did you mean " + " or ".join(f"{g}://" for g in guesses) + "?"
        if guesses
        else f"use one of {supported}"
    )
    return DriverProblem(
        f"SQLAlchemy has no dialect or driver named {drivername!r}", fix, UnsupportedDriverError
    )


def driver_problem(url: URL, *, is_async: bool = False) -> DriverProblem | None:
    """Why ``create_engine(url)`` would fail to load its driver, or None if it would not.

    Loads the dialect class (as ``create_engine`` does next) but imports no driver. A
    dialect this package has no row for is left to the plugin's own error.
    """
    from sqlalchemy.exc import NoSuchModuleError

    try:
        spec = url_driver(url, is_async)
    except NoSuchModuleError:
        return _unknown_driver(url.drivername)
    if spec is None:
        return None
    missing = modules_missing(spec.name)
    if not missing:
        return None
    install = f"pip install 'sqlalchemy-rds-iam[{spec.extra}]'"
    modules = ", ".join(missing)
    which = "which is" if len(missing) == 1 else "which are"
    if "+" in url.drivername:
        return DriverProblem(f"{url.drivername}:// needs {modules}, {which} not installed", install)
    import sqlalchemy

    backend = url.get_backend_name()  # postgresql, mysql or mariadb
    detail = (
        f"{url.drivername}:// without a driver means {backend}+{spec.name}:// on SQLAlchemy "
        f"{sqlalchemy.__version__}, and {modules} is not installed"
    )
    instead, extra = _NAMED_INSTEAD.get(spec.family, (spec.name, spec.extra))
    if instead != spec.name:
        install += (
            f", or name the driver you have, e.g. {backend}+{instead}:// "
            f"(pip install 'sqlalchemy-rds-iam[{extra}]')"
        )
    return DriverProblem(detail, install)


def require_driver(url: URL, *, is_async: bool = False) -> None:
    """Raise :class:`ConfigurationError` (for an unknown name, its subclass
    :class:`UnsupportedDriverError`) for what :func:`driver_problem` finds."""
    problem = driver_problem(url, is_async=is_async)
    if problem is not None:
        raise problem.error(str(problem))


#: ``plugin=`` names registered (entry points ``sqlalchemy.plugins``) only to say the right
#: one: SQLAlchemy's own answer to an unknown plugin is "Can't load plugin: ...:rds-iam".
MISSPELT_PLUGIN_NAMES = ("rds-iam", "rdsiam")


class MisspeltPlugin:
    """What ``?plugin=rds-iam`` loads: a :class:`ConfigurationError` naming ``rds_iam``."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        names = url.query.get("plugin", ())
        given = [n for n in ((names,) if isinstance(names, str) else names) if n != "rds_iam"]
        given += [n for n in kwargs.get("plugins", ()) if n != "rds_iam"]
        shown = given[0] if given else MISSPELT_PLUGIN_NAMES[0]
        raise ConfigurationError(
            f"there is no SQLAlchemy plugin {shown!r}: did you mean plugin=rds_iam (with an "
            "underscore)?"
        )
