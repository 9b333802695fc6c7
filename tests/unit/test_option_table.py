"""The option table is the one list of option names: the typed signatures must follow it."""

from __future__ import annotations

import dataclasses
import typing

from sqlalchemy_rds_iam.options import (
    KEYWORD_ONLY_NAMES,
    OPTION_NAMES,
    OPTIONS,
    AttachOptions,
    Options,
)


def test_name_tuples_come_from_the_table_in_its_order() -> None:
    assert OPTION_NAMES + KEYWORD_ONLY_NAMES == tuple(OPTIONS)
    assert set(OPTIONS.values()) == {"url", "keyword"}


def test_attach_options_types_every_option_and_no_other() -> None:
    assert set(typing.get_type_hints(AttachOptions)) == set(OPTIONS)


def test_options_has_a_field_per_option_and_no_other() -> None:
    assert {f.name for f in dataclasses.fields(Options)} == set(OPTIONS)


def test_keyword_only_options_stay_out_of_reprs() -> None:
    # Python objects (a boto3 session, a provider) may hold secrets: never printed.
    fields = {f.name: f for f in dataclasses.fields(Options)}
    assert all(not fields[name].repr for name in KEYWORD_ONLY_NAMES)
