"""The plugin's options: parsed once from URL query parameters or keywords, validated early.

The same names work as ``?name=value`` in the URL, as ``attach(engine, name=value)``
and as ``create_engine(url, plugins=["rds_iam"], name=value)``. Every mistake is an
:class:`~sqlalchemy_rds_iam.errors.ConfigurationError` raised by ``create_engine`` or
``attach``, never a surprise at the first connect.

Credentials beyond the default botocore chain (role assumption, a callable provider)
will arrive as further keyword-only options resolved by ``credentials.py``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["OPTION_NAMES", "TLS_MODES", "Options", "parse_options"]

#: ``iam_tls`` values: both verify the chain against the CA; ``verify-full`` also the hostname.
TLS_MODES = ("verify-full", "verify-ca")

#: Options that may appear in a URL query string (and are removed from it).
OPTION_NAMES = ("aws_region", "aws_profile", "iam_host", "iam_port", "iam_ca_bundle", "iam_tls")

#: Options that only make sense as Python objects, never in a URL.
KEYWORD_ONLY_NAMES = ("boto3_session",)

_OUR_PREFIXES = ("aws_", "iam_")
_REGION_RE = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+-\d+$")


@dataclass(frozen=True)
class Options:
    """Validated plugin options. ``None`` means "infer it" (see the README's option table)."""

    aws_region: str | None = None
    aws_profile: str | None = None
    iam_host: str | None = None
    iam_port: int | None = None
    iam_ca_bundle: str | None = None
    iam_tls: str = "verify-full"
    boto3_session: Any = field(default=None, repr=False, compare=False)


def _text(name: str, value: object) -> str:
    if isinstance(value, (tuple, list)):
        raise ConfigurationError(f"option {name!r} is given {len(value)} times; give it once")
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"option {name!r} must be a non-empty string")
    return value.strip()


def _port(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    else:
        text = _text("iam_port", value)
        if not text.isdigit():
            raise ConfigurationError(f"option 'iam_port' must be an integer, got {text!r}")
        port = int(text)
    if not 0 < port < 65536:
        raise ConfigurationError(f"option 'iam_port' must be between 1 and 65535, got {port}")
    return port


def _ca_bundle(value: object) -> str:
    path = _text("iam_ca_bundle", value)
    try:
        # Loading is the check that matters: readable, and PEM certificates in it.
        ssl.create_default_context(cafile=path)
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
    from_url = {k: v for k, v in query.items() if k.startswith(_OUR_PREFIXES)}
    unknown = sorted(set(from_url) - set(OPTION_NAMES))
    unknown += sorted(set(keywords) - set(OPTION_NAMES + KEYWORD_ONLY_NAMES))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(OPTION_NAMES + KEYWORD_ONLY_NAMES)}"
        )
    twice = sorted(set(from_url) & set(keywords))
    if twice:
        raise ConfigurationError(f"option {twice[0]!r} is given in the URL and as a keyword")
    keyword_only = [name for name in KEYWORD_ONLY_NAMES if name in query]
    if keyword_only:
        raise ConfigurationError(f"{keyword_only[0]!r} cannot be a URL parameter")
    ours = {**from_url, **keywords}
    parsed: dict[str, Any] = {}
    for name in ("aws_profile", "iam_host"):
        if name in ours:
            parsed[name] = _text(name, ours[name])
    if "aws_region" in ours:
        region = _text("aws_region", ours["aws_region"]).lower()
        if not _REGION_RE.match(region):
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
