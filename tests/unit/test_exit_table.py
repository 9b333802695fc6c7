"""doctor's step table is the one table of exit codes: the CLI's codes follow it."""

from __future__ import annotations

from sqlalchemy_rds_iam import errors
from sqlalchemy_rds_iam.cli import exit_code_for
from sqlalchemy_rds_iam.doctor import STEPS, UNEXPECTED_EXIT_CODE


def test_every_error_a_step_declares_exits_with_that_steps_code() -> None:
    declared = [(cls, step.exit_code) for step in STEPS for cls in step.errors]
    assert {cls for cls, _ in declared} == {
        errors.ConfigurationError, errors.RegionError, errors.TrustStoreError,
        errors.CredentialsError, errors.TokenError,
    }
    for cls, code in declared:
        assert exit_code_for(cls("x")) == code, cls


def test_a_subclass_takes_its_closest_steps_code_and_the_rest_exit_1() -> None:
    # InsecureConnectionError is a ConfigurationError no step names: the options step's code.
    assert exit_code_for(errors.InsecureConnectionError("x")) == 2
    assert exit_code_for(errors.RdsIamError("x")) == UNEXPECTED_EXIT_CODE == 1
