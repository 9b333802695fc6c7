"""Finding 9 (part) of issue 20: ``iam_host`` is a host name or an IP literal, nothing else.

It is signed into the token and printed in notes, commands and ``doctor``'s report: CR/LF,
spaces, ``@``, ``/`` or ``:`` could forge a log line or a URL part.
"""

from __future__ import annotations

import string

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from sqlalchemy_rds_iam import ConfigurationError
from sqlalchemy_rds_iam.target import check_host_name

BARE = "postgresql+psycopg2://iamuser@127.0.0.1:5432/app"


@pytest.mark.parametrize("host", [
    "db.cluster-abc123.us-east-1.rds.amazonaws.com", "localhost", "db.example.com.", "10.0.0.5",
    "::1", "[::1]", "2001:db8::5", "my_host.internal", "a" * 63 + ".example",
])
def test_host_names_and_ip_literals_are_accepted(host: str) -> None:
    assert check_host_name(host, "iam_host") == host
    sa.create_engine(BARE, plugins=["rds_iam"], aws_region="us-east-1", iam_host=host)


@pytest.mark.parametrize("host", [
    "db.example.com\r\nX-Forged: 1", "db example.com", "user@db.example.com", "db.example.com/x",
    "db.example.com:5432", "fe80::1%eth0", "db..example.com", "-db.example.com", "db-.example",
    "\uff44\uff42.example.com", "a" * 64 + ".example", "db.example.com?x=1", "db\x00.example.com", ".",
])
def test_anything_else_is_refused_at_create_engine(host: str) -> None:
    with pytest.raises(ConfigurationError, match="must be a host name or an IP address"):
        check_host_name(host, "iam_host")
    with pytest.raises(ConfigurationError, match="iam_host"):
        sa.create_engine(BARE, plugins=["rds_iam"], aws_region="us-east-1", iam_host=host)


_ALLOWED = set(string.ascii_letters + string.digits + "-._:[]")


@given(st.text(min_size=1, max_size=80))
def test_no_accepted_host_holds_a_character_outside_names_and_ip_literals(text: str) -> None:
    try:
        accepted = check_host_name(text, "iam_host")
    except ConfigurationError as exc:
        assert "iam_host" in str(exc)
        return
    assert set(accepted) <= _ALLOWED
    assert not any(c in accepted for c in "\r\n @/%?#\\")


@given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
                min_size=1, max_size=5))
def test_every_dns_name_is_accepted(labels: list[str]) -> None:
    name = ".".join(labels)
    assert check_host_name(name, "iam_host") == name
