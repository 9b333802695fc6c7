"""The option table is the one list of option names: the typed signatures must follow it."""

from __future__ import annotations

import typing

from sqlalchemy_rds_iam.options import (
    DEFAULTS,
    KEYWORD_ONLY_NAMES,
    OPTION_NAMES,
    OPTIONS,
    UNPRINTED,
    AttachOptions,
    Options,
)


def test_name_tuples_come_from_the_table_in_its_order() -> None:
    assert OPTION_NAMES + KEYWORD_ONLY_NAMES == tuple(OPTIONS)
    assert set(OPTIONS.values()) == {"url", "keyword"}


def test_attach_options_types_every_option_and_no_other() -> None:
    assert set(typing.get_type_hints(AttachOptions)) == set(OPTIONS)


def test_options_has_a_field_per_option_and_no_other() -> None:
    assert set(Options.__annotations__) == set(OPTIONS) == set(DEFAULTS)
    assert {name: getattr(Options(), name) for name in OPTIONS} == DEFAULTS


def test_keyword_only_options_stay_out_of_reprs() -> None:
    # Python objects (a boto3 session, a provider) may hold secrets: never printed; nor is
    # an external id (a shared secret).
    assert set(KEYWORD_ONLY_NAMES) <= set(UNPRINTED)
    secrets = {"aws_external_id": "ext-id-SECRET-1", "boto3_session": "session-SECRET-2",
               "credentials_provider": "provider-SECRET-3"}
    text = repr(Options(aws_region="us-east-1", **secrets))
    assert "aws_region='us-east-1'" in text
    assert [value for value in secrets.values() if value in text] == []


def test_options_are_immutable_values() -> None:
    import pytest

    options = Options(aws_region="us-east-1")
    with pytest.raises(AttributeError, match="immutable"):
        options.aws_region = "eu-west-1"  # type: ignore[misc]
    assert options == Options(aws_region="us-east-1") != Options(aws_region="eu-west-1")
    assert hash(options) == hash(Options(aws_region="us-east-1"))
    # the keyword-only Python objects are not part of the value
    assert Options(credentials_provider=print) == Options()
    with pytest.raises(TypeError, match="aws_regoin"):
        Options(aws_regoin="us-east-1")
