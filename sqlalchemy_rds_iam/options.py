"""The plugin's options: parsed once from URL query parameters or keywords, validated early.

The same names work as ``?name=value`` in the URL, as ``attach(engine, name=value)``
and as ``create_engine(url, plugins=["rds_iam"], name=value)``. Every mistake is an
:class:`~sqlalchemy_rds_iam.errors.ConfigurationError` raised by ``create_engine`` or
``attach``, never a surprise at the first connect.

Credentials beyond the default botocore chain (``aws_role_arn`` & co., a
``credentials_provider`` callable) are resolved by the ``credentials`` package.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .cabundle import ca_certificates
from .endpoints import is_region
from .errors import ConfigurationError
from .tls import TLS_MODES, VERIFY_FULL

if TYPE_CHECKING:
    from .attach_options import AttachOptions

__all__ = [
    "DEFAULTS",
    "MAX_BUDGET",
    "MAX_RETRIES",
    "OPTIONS",
    "OPTION_NAMES",
    "TLS_MODES",
    "UNPRINTED",
    "AttachOptions",
    "Options",
    "is_ours",
    "parse_options",
    "unknown_options_error",
]

#: Upper bounds of ``iam_connect_retries`` and ``iam_retry_budget`` (``backoff``): beyond
#: them a login would hang rather than fail.
MAX_RETRIES = 20
MAX_BUDGET = 60.0

#: Every option, once: its name and where it may be given ("url": a URL query string, from
#: which it is removed, or a keyword; "keyword": only as a Python object, never in a URL).
#: The name tuples below come from here; a test checks ``AttachOptions`` and ``Options``.
OPTIONS: dict[str, str] = {
    "aws_region": "url",
    "aws_profile": "url",
    "aws_role_arn": "url",
    "aws_role_session_name": "url",
    "aws_external_id": "url",
    "aws_role_duration": "url",
    "iam_host": "url",
    "iam_port": "url",
    "iam_ca_bundle": "url",
    "iam_tls": "url",
    "iam_token_lifetime": "url",
    "iam_connect_retries": "url",
    "iam_retry_budget": "url",
    "boto3_session": "keyword",
    "credentials_provider": "keyword",
}

#: Options that may appear in a URL query string (and are removed from it).
OPTION_NAMES = tuple(name for name, where in OPTIONS.items() if where == "url")

#: Options that only make sense as Python objects, never in a URL.
KEYWORD_ONLY_NAMES = tuple(name for name, where in OPTIONS.items() if where == "keyword")

#: Aurora DSQL accepts tokens valid for 1 s to 7 days; RDS fixes 15 minutes.
MAX_TOKEN_LIFETIME = 604_800
#: STS AssumeRole accepts sessions of 15 minutes to 12 hours (the role's maximum applies).
ROLE_DURATION_RANGE = (900, 43_200)

_OUR_PREFIXES = ("aws_", "iam_")
_ROLE_ARN_PREFIX = "arn:aws"


def is_ours(name: str) -> bool:
    """Whether a keyword or query name belongs to this plugin's namespace (a typo is ours too)."""
    return name.startswith(_OUR_PREFIXES)


def unknown_options_error(names: Iterable[str]) -> ConfigurationError:
    """The error for misspelt option names: the known ones, and the closest for each."""
    import difflib  # errors only: not on a successful connect's path

    known = OPTION_NAMES + KEYWORD_ONLY_NAMES
    hints = []
    for name in sorted(names):
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ConfigurationError(
        f"unknown option(s) {', '.join(hints)}; sqlalchemy-rds-iam knows {', '.join(known)}"
    )


#: What an option is when it is not given: ``None`` means "infer it".
DEFAULTS: Mapping[str, Any] = {**dict.fromkeys(OPTIONS), "iam_tls": VERIFY_FULL}
#: Options no repr shows: an external id is a shared secret; a session or a provider may
#: hold credentials. The keyword-only ones are also left out of ``==``.
UNPRINTED = ("aws_external_id", *KEYWORD_ONLY_NAMES)


class Options:
    """Validated plugin options. ``None`` means "infer it" (see the README's option table).

    Immutable, compared by value (but for the keyword-only Python objects), with a repr
    that leaves out :data:`UNPRINTED`. A plain class with ``__slots__``, not a frozen
    dataclass: building one of those costs every cold start about 1 ms (issue 16).
    """

    __slots__ = tuple(OPTIONS)

    aws_region: str | None
    aws_profile: str | None
    aws_role_arn: str | None
    aws_role_session_name: str | None
    aws_external_id: str | None
    aws_role_duration: int | None
    iam_host: str | None
    iam_port: int | None
    iam_ca_bundle: str | None
    iam_tls: str
    iam_token_lifetime: int | None
    iam_connect_retries: int | None
    """Retries of a refused fresh-token login (``None``: ``backoff.DEFAULT_RETRIES``)."""
    iam_retry_budget: float | None
    """Seconds those retries may take (``None``: ``backoff.DEFAULT_BUDGET``)."""
    boto3_session: Any
    credentials_provider: Any

    def __init__(self, **values: Any) -> None:
        unknown = set(values).difference(OPTIONS)
        if unknown:
            raise TypeError(f"Options() got unknown option(s): {', '.join(sorted(unknown))}")
        for name in OPTIONS:
            object.__setattr__(self, name, values.get(name, DEFAULTS[name]))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Options are immutable: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Options are immutable: cannot delete {name!r}")

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in OPTION_NAMES)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Options:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = (f"{name}={getattr(self, name)!r}" for name in OPTIONS if name not in UNPRINTED)
        return f"Options({', '.join(shown)})"


def _text(name: str, value: object) -> str:
    if isinstance(value, (tuple, list)):
        raise ConfigurationError(f"option {name!r} is given {len(value)} times; give it once")
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"option {name!r} must be a non-empty string")
    return value.strip()


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = _text(name, value)
        if not (text.isascii() and text.isdigit()):  # int() rejects some Unicode digits
            raise ConfigurationError(f"option {name!r} must be an integer, got {text!r}")
        number = int(text)
    if not low <= number <= high:
        raise ConfigurationError(f"option {name!r} must be between {low} and {high}, got {number}")
    return number


def _seconds(name: str, value: object, high: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = _text(name, value)
        if not (text.isascii() and text.replace(".", "", 1).isdigit()):  # no inf, nan, 1e3
            raise ConfigurationError(f"option {name!r} must be a number of seconds, got {text!r}")
        number = float(text)
    if not 0 <= number <= high:  # also False for NaN
        raise ConfigurationError(f"option {name!r} must be between 0 and {high:g}, got {number}")
    return number


def _port(value: object) -> int:
    return _integer("iam_port", value, 1, 65535)


def _ca_bundle(value: object) -> str:
    path = _text("iam_ca_bundle", value)
    if "\0" in path:
        raise ConfigurationError("option 'iam_ca_bundle' contains a NUL character")
    try:
        # Loading is the check that matters: readable, and PEM certificates in it (parsed
        # once: the connect path's checks of the same file reuse it).
        ca_certificates(path)
    except ssl.SSLError:
        raise ConfigurationError(
            f"option 'iam_ca_bundle': {path!r} holds no PEM certificate; "
            "download the RDS bundle (sqlalchemy-rds-iam ca update) or fix the path"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"option 'iam_ca_bundle': cannot read {path!r} ({exc.strerror or exc}); "
            "give the path of a readable PEM bundle, or omit it to use the shipped RDS bundle"
        ) from None
    return path


def parse_options(
    query: Mapping[str, object] = {}, keywords: Mapping[str, object] = {}
) -> Options:
    """Validate a URL ``query`` and Python ``keywords`` into :class:`Options`.

    The query may hold the driver's own parameters; of those, names with our prefixes
    (``aws_``, ``iam_``) that we do not know are errors, to catch typos that would
    otherwise fall back silently to a default. Every keyword must be one of ours.
    """
    from_url = {k: v for k, v in query.items() if is_ours(k)}
    unknown = set(from_url) - set(OPTION_NAMES)
    unknown |= set(keywords) - set(OPTION_NAMES + KEYWORD_ONLY_NAMES)
    if unknown:
        raise unknown_options_error(unknown)
    twice = sorted(set(from_url) & set(keywords))
    if twice:
        raise ConfigurationError(f"option {twice[0]!r} is given in the URL and as a keyword")
    keyword_only = [name for name in KEYWORD_ONLY_NAMES if name in query]
    if keyword_only:
        raise ConfigurationError(f"{keyword_only[0]!r} cannot be a URL parameter")
    ours = {**from_url, **keywords}
    parsed: dict[str, Any] = {}
    for name in ("aws_profile", "iam_host", "aws_role_session_name", "aws_external_id"):
        if name in ours:
            parsed[name] = _text(name, ours[name])
    if "aws_role_arn" in ours:
        arn = _text("aws_role_arn", ours["aws_role_arn"])
        if not arn.startswith(_ROLE_ARN_PREFIX) or ":role/" not in arn:
            raise ConfigurationError(
                f"option 'aws_role_arn' is not a role ARN: {arn!r} "
                "(e.g. 'arn:aws:iam::123456789012:role/db-connect')"
            )
        parsed["aws_role_arn"] = arn
    role_only = [n for n in ("aws_role_session_name", "aws_external_id", "aws_role_duration")
                 if n in ours]
    if role_only and "aws_role_arn" not in parsed:
        raise ConfigurationError(f"option {role_only[0]!r} needs aws_role_arn= (which role)")
    if "aws_role_duration" in ours:
        parsed["aws_role_duration"] = _integer(
            "aws_role_duration", ours["aws_role_duration"], *ROLE_DURATION_RANGE
        )
    if "iam_token_lifetime" in ours:
        parsed["iam_token_lifetime"] = _integer(
            "iam_token_lifetime", ours["iam_token_lifetime"], 1, MAX_TOKEN_LIFETIME
        )
    if "iam_connect_retries" in ours:
        parsed["iam_connect_retries"] = _integer(
            "iam_connect_retries", ours["iam_connect_retries"], 0, MAX_RETRIES
        )
    if "iam_retry_budget" in ours:
        parsed["iam_retry_budget"] = _seconds(
            "iam_retry_budget", ours["iam_retry_budget"], MAX_BUDGET
        )
    provider = ours.get("credentials_provider")
    if provider is not None:
        if not callable(provider):
            raise ConfigurationError("option 'credentials_provider' must be a callable")
        clash = [n for n in ("aws_profile", "boto3_session", "aws_role_arn") if ours.get(n)]
        if clash:
            raise ConfigurationError(
                f"give either 'credentials_provider' or {clash[0]!r}, not both: the callable "
                "is the only source of credentials"
            )
        parsed["credentials_provider"] = provider
    if "aws_region" in ours:
        region = _text("aws_region", ours["aws_region"]).lower()
        if not is_region(region):
            raise ConfigurationError(
                f"option 'aws_region' is not a region name: {region!r} (e.g. 'us-east-1')"
            )
        parsed["aws_region"] = region
    if "iam_port" in ours:
        parsed["iam_port"] = _port(ours["iam_port"])
    if "iam_tls" in ours:
        mode = _text("iam_tls", ours["iam_tls"]).lower()
        if mode not in TLS_MODES:
            raise ConfigurationError(
                f"option 'iam_tls' must be one of {', '.join(TLS_MODES)}, got {mode!r}"
            )
        parsed["iam_tls"] = mode
    if "iam_ca_bundle" in ours:
        parsed["iam_ca_bundle"] = _ca_bundle(ours["iam_ca_bundle"])
    session = ours.get("boto3_session")
    if session is not None:
        if not hasattr(session, "_session") or not hasattr(session, "get_credentials"):
            raise ConfigurationError("option 'boto3_session' must be a boto3.Session")
        if "aws_profile" in parsed:
            raise ConfigurationError(
                "give either 'boto3_session' or 'aws_profile', not both: "
                "the session already names its profile"
            )
        parsed["boto3_session"] = session
    return Options(**parsed)


def __getattr__(name: str) -> Any:
    """``AttachOptions`` where it was first defined (it lives in :mod:`.attach_options`)."""
    if name == "AttachOptions":
        from .attach_options import AttachOptions

        return AttachOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
