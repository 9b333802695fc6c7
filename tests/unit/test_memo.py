"""The memoized classification (``memo.py``): reused only while it must give the same answer.

A changed argument, a value of another type that compares equal (``1`` for ``True``), a
mutated nested dict or ``SSLContext`` are classified again; a removed or replaced CA bundle
is refused at the latest one re-check window later, through the real listener too; and a
differential property test: over random sequences of arguments, the memoized answer (a
``Transport`` or a refusal) is always the one a full classification gives.
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.memo import RECHECK_SECONDS, MemoizedClassify
from sqlalchemy_rds_iam.transport import Transport

BUNDLE = Path(sqlalchemy_rds_iam.__file__).parent / "data" / "global-bundle.pem"
RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A row's real classification, counting how often it runs in full."""

    def __init__(self, driver: str) -> None:
        inner = DRIVERS[driver].classify
        self.inner: Callable[[Sequence[Any], Mapping[str, Any]], Transport] = getattr(
            inner, "classify", inner)
        self.calls = 0

    def __call__(self, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
        self.calls += 1
        return self.inner(cargs, cparams)


def memo_for(driver: str) -> tuple[MemoizedClassify, Counting, Clock]:
    counting, clock = Counting(driver), Clock()
    return MemoizedClassify(counting, clock=clock), counting, clock


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.pem"
    shutil.copyfile(BUNDLE, path)
    return path


def libpq(bundle: Path, **changes: Any) -> dict[str, Any]:
    cparams = {"host": RDS, "dbname": "app", "user": "iamuser", "port": 5432,
               "sslmode": "verify-full", "sslrootcert": str(bundle), "gssencmode": "disable"}
    cparams.update(changes)
    return cparams


def test_same_arguments_are_classified_once(bundle: Path) -> None:
    memo, counting, _ = memo_for("psycopg2")
    cparams = libpq(bundle)
    first = memo([], cparams)
    assert memo([], cparams) is first
    assert memo([], dict(cparams)) is first  # equal values, other objects: the hashed path
    assert counting.calls == 1


@pytest.mark.parametrize("key, value", [
    ("sslmode", "require"), ("sslmode", "prefer"), ("gssencmode", "prefer"),
    ("host", "/var/run/postgresql"), ("requiressl", "1"), ("sslrootcert", "/nonexistent.pem"),
    ("host", None), ("sslnegotiation", "tls"),
])
def test_a_changed_argument_is_classified_again(bundle: Path, key: str, value: Any) -> None:
    memo, counting, _ = memo_for("psycopg2")
    cparams = libpq(bundle)
    memo([], cparams)
    cparams[key] = value
    with pytest.raises(InsecureConnectionError):
        memo([], cparams)
    assert counting.calls == 2


def test_an_argument_read_for_the_first_time_joins_the_snapshot(bundle: Path) -> None:
    memo, counting, _ = memo_for("psycopg2")
    cparams = libpq(bundle, sslmode="verify-ca")
    assert memo([], cparams).chain_only_by == "sslmode=verify-ca"
    cparams["sslmode"] = "verify-full"
    assert memo([], cparams).hostname_checked
    assert counting.calls == 2


def test_equal_values_of_another_type_are_not_confused(bundle: Path) -> None:
    """``1 == True`` and they hash alike; PyMySQL's check refuses 1 for ssl_verify_cert."""
    memo, counting, _ = memo_for("pymysql")
    cparams = {"host": RDS, "ssl_ca": str(bundle), "ssl_verify_cert": True,
               "ssl_verify_identity": True}
    memo([], cparams)
    with pytest.raises(InsecureConnectionError, match="ssl_verify_cert"):
        memo([], {**cparams, "ssl_verify_cert": 1})
    with pytest.raises(InsecureConnectionError, match="ssl_verify_identity"):
        memo([], {**cparams, "ssl_verify_identity": 1})
    assert counting.calls == 3


def test_a_nested_dict_changed_in_place_is_classified_again(bundle: Path) -> None:
    memo, counting, _ = memo_for("mysqldb")
    options = {"ca": str(bundle)}
    cparams = {"host": RDS, "ssl": options, "ssl_mode": "VERIFY_IDENTITY"}
    memo([], cparams)
    options["verify_mode"] = False  # the user's connect_args dict, mutated
    with pytest.raises(InsecureConnectionError, match="not understood"):
        memo([], cparams)
    assert counting.calls == 2


def test_an_ssl_context_counts_by_identity_and_its_checked_attributes(bundle: Path) -> None:
    memo, counting, _ = memo_for("pg8000")
    context = ssl.create_default_context(cafile=str(bundle))
    cparams = {"host": RDS, "ssl_context": context}
    assert memo([], cparams).hostname_checked
    assert memo([], cparams).hostname_checked and counting.calls == 1
    other = ssl.create_default_context(cafile=str(bundle))
    memo([], {**cparams, "ssl_context": other})
    assert counting.calls == 2  # another object: classified, even though equivalent
    context.check_hostname = False
    assert not memo([], cparams).hostname_checked
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(InsecureConnectionError, match="verify_mode"):
        memo([], cparams)
    assert counting.calls == 4


def test_values_of_unknown_types_are_never_memoized(bundle: Path) -> None:
    class Text(str):
        """A str subclass could compare or hash as it likes."""

    memo, counting, _ = memo_for("psycopg2")
    cparams = libpq(bundle, sslmode=Text("verify-full"))
    for _ in range(3):
        memo([], cparams)
    assert counting.calls == 3


@pytest.mark.parametrize(("key", "value"), [("sslkeylogfile", "/tmp/keys.log"),
                                            ("not_a_keyword", "x"), ("service", "other")])
def test_a_key_added_to_the_same_dict_is_classified_again(bundle: Path, key: str,
                                                          value: str) -> None:
    """The allow-list walks every key: the key set is part of the snapshot, so a key added
    in place (an earlier do_connect listener, say) is refused on the hot path too."""
    memo, counting, _ = memo_for("psycopg2")
    cparams = libpq(bundle)
    memo([], cparams)
    memo([], cparams)
    assert counting.calls == 1
    cparams[key] = value
    with pytest.raises(InsecureConnectionError, match=key):
        memo([], cparams)
    del cparams[key]
    memo([], cparams)
    assert counting.calls == 2  # the refusal ran in full; the old snapshot is memoized


def test_refusals_are_never_memoized(bundle: Path) -> None:
    memo, counting, _ = memo_for("psycopg2")
    for _ in range(3):
        with pytest.raises(InsecureConnectionError):
            memo([], libpq(bundle, sslmode="disable"))
    assert counting.calls == 3


@pytest.mark.parametrize("damage", ["remove", "replace"])
def test_a_damaged_bundle_is_refused_at_the_latest_after_the_window(
    bundle: Path, damage: str
) -> None:
    memo, counting, clock = memo_for("psycopg2")
    cparams = libpq(bundle)
    memo([], cparams)
    if damage == "remove":
        bundle.unlink()
    else:
        bundle.write_text("not a certificate\n")
    clock.now += RECHECK_SECONDS / 2
    memo([], cparams)  # inside the window: the memoized answer (documented)
    clock.now += RECHECK_SECONDS / 2
    with pytest.raises(InsecureConnectionError, match="cannot verify the server"):
        memo([], cparams)
    assert counting.calls == 2


def test_the_listener_refuses_a_removed_bundle_after_the_window(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the engine's own listener, the row's own memo, its clock advanced."""
    memo = DRIVERS["psycopg2"].classify
    assert isinstance(memo, MemoizedClassify)
    clock = Clock()
    monkeypatch.setattr(memo, "clock", clock)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin=rds_iam",
                              connect_args={"sslrootcert": str(bundle)})
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(engine.dialect, "connect", lambda *a, **kw: sent.append(kw))
    listener = sqlalchemy_rds_iam.connector(engine)
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1], sslrootcert=str(bundle))
    listener(engine.dialect, None, [], cparams)
    assert sent[-1]["sslrootcert"] == str(bundle)
    bundle.unlink()
    clock.now += RECHECK_SECONDS
    with pytest.raises(InsecureConnectionError, match="cannot verify the server"):
        listener(engine.dialect, None, [], cparams)
    assert len(sent) == 1


# -- differential: memoized == full, over random sequences ---------------------------------

CONTEXT = ssl.create_default_context(cafile=str(BUNDLE))

VALUES = st.sampled_from([
    None, True, False, 1, 0, 1.0, "", "1", "true", "false", "verify-full", "verify-ca",
    "require", "disable", "prefer", "postgres", "direct", "VERIFY_IDENTITY", "VERIFY_CA",
    RDS, "/tmp/.s.PGSQL.5432", "localhost", str(BUNDLE), "/nonexistent.pem", "system",
    CONTEXT, {"ca": str(BUNDLE)}, {"ca": str(BUNDLE), "check_hostname": False},
    {"verify_mode": False}, [RDS], b"bytes",
])
KEYS = {
    "psycopg2": ["sslmode", "sslrootcert", "gssencmode", "host", "hostaddr", "requiressl",
                 "sslnegotiation", "sslkeylogfile", "service", "application_name",
                 "not_a_keyword"],
    "pymysql": ["ssl", "ssl_ca", "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled",
                "host", "unix_socket", "charset", "not_a_keyword"],
    "pg8000": ["ssl_context", "host", "unix_sock", "sock", "timeout", "not_a_keyword"],
}
BASE = {
    "psycopg2": {"host": RDS, "sslmode": "verify-full", "sslrootcert": str(BUNDLE),
                 "gssencmode": "disable"},
    "pymysql": {"host": RDS, "ssl_ca": str(BUNDLE), "ssl_verify_cert": True,
                "ssl_verify_identity": True},
    "pg8000": {"host": RDS, "ssl_context": CONTEXT},
}


def outcome(classify: Callable[[], Transport]) -> object:
    try:
        return classify()
    except InsecureConnectionError as exc:
        return str(exc)
    except Exception as exc:  # a ConfigurationError, say: must be the same too
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("driver", sorted(KEYS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_memoized_answers_equal_full_classification(driver: str, data: st.DataObject) -> None:
    memo, counting, _ = memo_for(driver)
    cparams = dict(BASE[driver])
    steps = data.draw(st.lists(st.tuples(st.sampled_from(KEYS[driver]),
                                         st.one_of(st.just("<del>"), VALUES)), max_size=8))
    for key, value in [("", None), *steps]:
        if key and value == "<del>":
            cparams.pop(key, None)
        elif key:
            cparams[key] = value
        expected = outcome(lambda: counting.inner([], cparams))
        assert outcome(lambda: memo([], cparams)) == expected
        assert outcome(lambda: memo([], cparams)) == expected  # the hot path, too
