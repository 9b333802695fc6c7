"""The token reaches only a server whose certificate chain was verified: proved on the wire.

Every setting in :data:`CATALOGUE` (and every value hypothesis draws for each TLS key) is
tried by the real driver against four recording fake servers per protocol
(``tests/fakes.py``): self-signed, wrong host name, no TLS, and valid. The rule, for each:
either :class:`InsecureConnectionError` at ``create_engine``/``attach``/connect before any
byte leaves, or the token reaches the valid server only (and the wrong-host one only under
an explicit chain-only choice). The valid server is the positive control: a setting we
accept must get its token there, or the harness would be blind to it.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.drivers import DRIVERS
from tests.fakes import (
    KINDS,
    Pki,
    RecordingServer,
    hostile_servers,
    login,
    make_pki,
    set_aws_env,
)

PG = ["psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg"]
MY = ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("hostile-pki"))


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[dict[str, dict[str, RecordingServer]]]:
    with hostile_servers("postgresql", pki) as pg, hostile_servers("mysql", pki) as my:
        yield {"postgresql": pg, "mysql": my}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    monkeypatch.delenv("PGSSLMODE", raising=False)


# -- running one setting against the four servers ---------------------------------------------


@dataclass
class Outcome:
    refused_at: str | None = None
    """``create_engine``, ``attach`` or ``connect`` when InsecureConnectionError was raised."""
    reached: set[str] = field(default_factory=set)
    """The server kinds whose recorded bytes hold the token."""
    errors: dict[str, str] = field(default_factory=dict)


CA = "<CA>"  # replaced with the test CA's path in queries and connect_args


def _fill(value: Any, ca: str) -> Any:
    if isinstance(value, str):
        return value.replace(CA, ca)
    if isinstance(value, dict):
        return {k: _fill(v, ca) for k, v in value.items()}
    return value


def _url(driver: str, port: int, query: str, ca: str, how: str) -> str:
    spec = DRIVERS[driver]
    # libmysqlclient reads "localhost" as its Unix socket; the valid certificate names both.
    host = "127.0.0.1" if driver == "mysqldb" else "localhost"
    base = f"{spec.family}+{driver}://iamuser@{host}:{port}/app"
    # iam_connect_retries=0: the valid server refuses every login, which the listener would
    # otherwise retry as a possible IAM throttle (tests/unit/test_backoff.py covers that).
    params = [f"aws_region=us-east-1&iam_ca_bundle={ca}&iam_connect_retries=0"] if how == "url" else []
    if how == "url":
        params.insert(0, "plugin=rds_iam")
    if query:
        params.append(_fill(query, ca))
    return base + ("?" + "&".join(params) if params else "")


class _Refused(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def attempt(servers: dict[str, RecordingServer], driver: str, query: str,
            connect_args: dict[str, Any], ca: str, how: str = "url") -> Outcome:
    outcome = Outcome()
    args = _fill(connect_args, ca)
    attach = {"aws_region": "us-east-1", "iam_ca_bundle": ca, "iam_connect_retries": 0}
    for kind in KINDS:
        server = servers[kind]
        server.take()
        url = _url(driver, server.port, query, ca, how)
        try:
            try:
                login(url, sql="", attach=attach if how == "attach" else None, connect_args=args)
            except InsecureConnectionError as exc:
                raise _Refused(_origin(exc)) from exc
            except sa.exc.DBAPIError as exc:
                if isinstance(exc.orig, InsecureConnectionError):
                    raise _Refused("connect") from exc
                outcome.errors[kind] = str(exc.orig)[:120]
            except Exception as exc:  # a driver's own refusal (bad TLS, login refused)
                outcome.errors[kind] = f"{type(exc).__name__}: {str(exc)[:120]}"
        except _Refused as refused:
            outcome.refused_at = refused.where
            data = server.take()
            assert data == b"", f"{driver}: refused, yet {len(data)} bytes reached {kind}"
            return outcome
        if server.got_token():
            outcome.reached.add(kind)
    return outcome


def _origin(exc: BaseException) -> str:
    """Where the refusal was raised: ``attach``, ``create_engine`` (the plugin) or ``connect``."""
    tb = exc.__traceback__
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    if "attach" in names:
        return "attach"
    return "create_engine" if "engine_created" in names else "connect"


# -- the catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    driver: str
    query: str = ""
    connect_args: dict[str, Any] = field(default_factory=dict)
    expect: str = "verified"
    """``refused``, ``verified`` (token only to the valid server) or ``chain-only``."""
    how: str = "url"
    """``url`` (``?plugin=rds_iam``) or ``attach`` (``attach()`` on a plain engine)."""

    def __str__(self) -> str:
        args = ",".join(f"{k}={v!r}" for k, v in self.connect_args.items())
        return f"{self.driver}[{self.how}] {self.query or '-'} {args or '-'} -> {self.expect}"


R, V, C = "refused", "verified", "chain-only"
NONE_CTX = ssl.create_default_context()
NONE_CTX.check_hostname = False
NONE_CTX.verify_mode = ssl.CERT_NONE
EMPTY_CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, no CA loaded at all


def _contexts(ca: str) -> dict[str, ssl.SSLContext]:
    full = ssl.create_default_context(cafile=ca)
    chain = ssl.create_default_context(cafile=ca)
    chain.check_hostname = False
    return {"full": full, "chain": chain}


def _libpq(d: str) -> list[Setting]:
    return [
        Setting(d), Setting(d, "iam_tls=verify-ca", expect=C), Setting(d, how="attach"),
        Setting(d, "sslmode=disable", expect=R), Setting(d, "sslmode=allow", expect=R),
        Setting(d, "sslmode=prefer", expect=R), Setting(d, "sslmode=require", expect=R),
        Setting(d, "sslmode=require&sslrootcert=", expect=R),
        Setting(d, "sslmode=require&sslrootcert=/nonexistent/ca.pem", expect=R),
        Setting(d, "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem", expect=R),
        Setting(d, "sslmode=VERIFY-FULL", expect=R),
        Setting(d, "sslmode=verify-ca", expect=C),
        Setting(d, "sslmode=verify-full&sslrootcert=<CA>"),
        Setting(d, connect_args={"sslmode": None}, expect=R),
        Setting(d, connect_args={"sslmode": "prefer"}, expect=R, how="attach"),
        Setting(d, connect_args={"sslrootcert": ""}, expect=R),
        Setting(d, connect_args={"host": "/run/postgresql"}, expect=R),
        Setting(d, connect_args={"host": "/tmp"}, expect=R, how="attach"),
        Setting(d, "gssencmode=prefer", expect=R),
        Setting(d, "sslnegotiation=direct"),
        Setting(d, connect_args={"requiressl": 1}, expect=R),
        Setting(d, "sslmode=verify-ca&sslrootcert=<CA>", expect=C),
        # issue 20: keywords that moved the connection or logged TLS keys
        Setting(d, "sslkeylogfile=/tmp/tls-keys.log", expect=R),
        Setting(d, "service=elsewhere", expect=R), Setting(d, "sslsni=0", expect=R),
        Setting(d, "hostaddr=127.0.0.1", expect=R), Setting(d, "host=127.0.0.1", expect=R),
        Setting(d, connect_args={"passfile": "/tmp/pgpass"}, expect=R),
        Setting(d, "application_name=app&connect_timeout=10&keepalives=1"),
    ]


def _my_common(d: str) -> list[Setting]:
    return [Setting(d), Setting(d, "iam_tls=verify-ca", expect=C), Setting(d, how="attach"),
            Setting(d, connect_args={"unix_socket": "/run/mysqld/mysqld.sock"}, expect=R)]


def catalogue(ca: str) -> list[Setting]:
    ctx = _contexts(ca)
    rows: list[Setting] = []
    for d in ("psycopg2", "psycopg", "psycopg_async"):
        rows += _libpq(d)
    rows += [
        Setting("pg8000"), Setting("pg8000", "iam_tls=verify-ca", expect=C),
        Setting("pg8000", how="attach"),
        Setting("pg8000", "ssl_context=true"),
        Setting("pg8000", "ssl_context=false", expect=R),
        Setting("pg8000", "ssl_context=0", expect=R),
        Setting("pg8000", connect_args={"ssl_context": NONE_CTX}, expect=R),
        Setting("pg8000", connect_args={"ssl_context": EMPTY_CTX}, expect=R),
        Setting("pg8000", connect_args={"ssl_context": ctx["full"]}),
        Setting("pg8000", connect_args={"ssl_context": ctx["chain"]}, expect=C),
        Setting("pg8000", connect_args={"unix_sock": "/run/postgresql/.s.PGSQL.5432"}, expect=R),
        Setting("pg8000", connect_args={"ssl_context": False}, expect=R, how="attach"),
        Setting("pg8000", connect_args={"ssl_context": 0}, expect=R),
        Setting("pg8000", connect_args={"ssl_context": []}, expect=R),
        Setting("pg8000", connect_args={"sock": "<a socket>"}, expect=R),
    ]
    rows += [
        Setting("asyncpg"), Setting("asyncpg", "iam_tls=verify-ca", expect=C),
        Setting("asyncpg", how="attach"),
        Setting("asyncpg", "ssl=require", expect=R),
        Setting("asyncpg", connect_args={"ssl": "require"}, expect=R),
        Setting("asyncpg", "ssl=prefer", expect=R), Setting("asyncpg", "ssl=disable", expect=R),
        Setting("asyncpg", "ssl=false", expect=R),
        Setting("asyncpg", "ssl=verify-full"), Setting("asyncpg", "ssl=verify-ca", expect=C),
        Setting("asyncpg", connect_args={"ssl": 0}, expect=R),
        Setting("asyncpg", connect_args={"ssl": []}, expect=R),
        Setting("asyncpg", connect_args={"ssl": NONE_CTX}, expect=R),
        Setting("asyncpg", connect_args={"ssl": EMPTY_CTX}, expect=R),
        Setting("asyncpg", connect_args={"ssl": ctx["full"]}),
        Setting("asyncpg", connect_args={"ssl": ctx["chain"]}, expect=C),
        Setting("asyncpg", connect_args={"host": "/run/postgresql"}, expect=R),
        Setting("asyncpg", connect_args={"ssl": "prefer"}, expect=R, how="attach"),
        Setting("asyncpg", connect_args={"direct_tls": True}),
        Setting("asyncpg", connect_args={"dsn": "postgresql://x@localhost/app?sslmode=disable"},
                expect=R),
        Setting("asyncpg", connect_args={"passfile": "/tmp/pgpass"}, expect=R),
        Setting("asyncpg", "service=elsewhere", expect=R),
        Setting("asyncpg", connect_args={"command_timeout": 10, "statement_cache_size": 0,
                                         "server_settings": {"application_name": "prefect"}}),
    ]
    rows += [
        *_my_common("pymysql"),
        Setting("pymysql", "ssl_verify_cert=false", expect=R),
        Setting("pymysql", "ssl_verify_cert=false&iam_tls=verify-ca", expect=R),
        Setting("pymysql", connect_args={"ssl": {"verify_mode": "none", "ca": "<CA>"}}, expect=R),
        Setting("pymysql", connect_args={"ssl": {"verify_mode": False, "ca": "<CA>"}}, expect=R),
        Setting("pymysql", "ssl_ca=<CA>", connect_args={"ssl_cert": "<CA>", "ssl_key": "<CA>"},
                expect=R),
        Setting("pymysql", connect_args={"ssl": 0}, expect=R),
        Setting("pymysql", connect_args={"ssl": []}, expect=R),
        Setting("pymysql", connect_args={"ssl": NONE_CTX}, expect=R),
        Setting("pymysql", connect_args={"ssl": ctx["full"]}),
        Setting("pymysql", connect_args={"ssl": ctx["chain"]}, expect=C),
        Setting("pymysql", "ssl_disabled=false", expect=R),
        Setting("pymysql", "ssl_ca=<CA>"),
        Setting("pymysql", "ssl_ca=<CA>&ssl_check_hostname=false", expect=C),
        Setting("pymysql", connect_args={"ssl_verify_identity": False}, expect=C),
        Setting("pymysql", connect_args={"ssl_disabled": True}, expect=R, how="attach"),
        Setting("pymysql", connect_args={"read_default_file": "<CNF-SOCKET>"}, expect=R),
        Setting("pymysql", connect_args={"read_default_file": "<CNF-OK>"}),
        Setting("pymysql", connect_args={"ssl_verify_identity": None}, expect=R),
        Setting("pymysql", "port=1", expect=R),
        Setting("pymysql", connect_args={"auth_plugin_map": {}}, expect=R),
    ]
    rows += [
        *_my_common("mysqldb"),
        Setting("mysqldb", "ssl_mode=REQUIRED", expect=R),
        Setting("mysqldb", "ssl_mode=PREFERRED", expect=R),
        Setting("mysqldb", "ssl_mode=DISABLED", expect=R),
        Setting("mysqldb", "ssl_mode=verify_identity", expect=R),
        Setting("mysqldb", "ssl_mode=VERIFY_CA", expect=C),
        Setting("mysqldb", connect_args={"ssl": False}, expect=R),
        Setting("mysqldb", connect_args={"ssl": 0}, expect=R),
        Setting("mysqldb", connect_args={"read_default_file": "<CNF-NOVERIFY>"}, expect=R),
        Setting("mysqldb", connect_args={"read_default_file": "/nonexistent/my.cnf"}, expect=R),
        Setting("mysqldb", connect_args={"read_default_file": "<CNF-OK>"}),
        Setting("mysqldb", "ssl_ca=<CA>"),
        Setting("mysqldb", connect_args={"ssl_mode": "REQUIRED"}, expect=R, how="attach"),
        Setting("mysqldb", connect_args={"host": "localhost"}, expect=R),
        Setting("mysqldb", connect_args={"read_default_group": "client"}, expect=R),
    ]
    rows += [
        *_my_common("mysqlconnector"),
        Setting("mysqlconnector", "ssl_verify_cert=false", expect=R),
        Setting("mysqlconnector", "ssl_disabled=false", expect=R),
        Setting("mysqlconnector", connect_args={"ssl_disabled": True}, expect=R),
        Setting("mysqlconnector", connect_args={"ssl_verify_cert": False}, expect=R),
        Setting("mysqlconnector", connect_args={"ssl_verify_identity": False}, expect=C),
        Setting("mysqlconnector", connect_args={"ssl_ca": "/nonexistent.pem"}, expect=R),
        Setting("mysqlconnector", "ssl_ca=<CA>"),
        Setting("mysqlconnector", connect_args={"ssl_verify_cert": False}, expect=R,
                how="attach"),
        Setting("mysqlconnector", connect_args={"option_files": "<CNF-OK>"}, expect=R),
        Setting("mysqlconnector", connect_args={"ssl_verify_identity": None}, expect=R),
        Setting("mysqlconnector", connect_args={"failover": [{"host": "127.0.0.1"}]},
                expect=R),
        Setting("mysqlconnector", connect_args={"tls_versions": ["TLSv1.2"]}, expect=R),
        Setting("mysqlconnector", connect_args={"use_pure": True}),
    ]
    for d in ("aiomysql", "asyncmy"):
        rows += [
            *_my_common(d),
            Setting(d, "ssl=false", expect=R),
            Setting(d, connect_args={"ssl": 0}, expect=R),
            Setting(d, connect_args={"ssl": []}, expect=R),
            Setting(d, connect_args={"ssl": NONE_CTX}, expect=R),
            Setting(d, connect_args={"ssl": EMPTY_CTX}, expect=R),
            Setting(d, connect_args={"ssl": ctx["full"]}),
            Setting(d, connect_args={"ssl": ctx["chain"]}, expect=C),
            Setting(d, "ssl_ca=<CA>"),
            Setting(d, "ssl_ca=<CA>&ssl_check_hostname=false", expect=C),
            Setting(d, connect_args={"ssl": False}, expect=R, how="attach"),
            Setting(d, connect_args={"read_default_file": "<CNF-SOCKET>"}, expect=R),
        ]
    rows.append(Setting("aiomysql", connect_args={"async_creator_fn": "<a connect function>"},
                        expect=R))
    rows.append(Setting("asyncmy", connect_args={"sock": "<a socket>"}, expect=R))
    return rows


def _option_files(pki: Pki) -> dict[str, str]:
    bad = pki.ca.parent / "noverify.cnf"
    bad.write_text("[client]\nssl-verify-server-cert=0\n")
    sock = pki.ca.parent / "socket.cnf"
    sock.write_text("[client]\nsocket=/run/mysqld/mysqld.sock\n")
    ok = pki.ca.parent / "ok.cnf"
    ok.write_text("[client]\ndefault-character-set=utf8mb4\n")
    return {"<CNF-NOVERIFY>": str(bad), "<CNF-SOCKET>": str(sock), "<CNF-OK>": str(ok)}


def _resolve(setting: Setting, pki: Pki) -> Setting:
    files = _option_files(pki)
    args = {k: files.get(v, v) if isinstance(v, str) else v
            for k, v in setting.connect_args.items()}
    if args.get("sock") == "<a socket>":  # a socket connected elsewhere: nothing to verify
        args["sock"] = object()
    if args.get("async_creator_fn") == "<a connect function>":
        import aiomysql

        args["async_creator_fn"] = aiomysql.connect
    return Setting(setting.driver, setting.query, args, setting.expect, setting.how)


RESULTS: dict[str, dict[str, int]] = {}


def check(setting: Setting, outcome: Outcome) -> str | None:
    """The rule; a message if this outcome breaks it (or the positive control failed)."""
    leaked = outcome.reached & {"self-signed", "plain"}
    if leaked:
        return f"LEAK to {sorted(leaked)}"
    if "wrong-host" in outcome.reached and setting.expect != C:
        return "token reached the wrong-host server without a chain-only choice"
    if setting.expect == R:
        return None if outcome.refused_at else f"not refused (errors: {outcome.errors})"
    if outcome.refused_at:
        return f"refused at {outcome.refused_at}, expected {setting.expect}"
    if "valid" not in outcome.reached:
        return f"positive control: no token at the valid server ({outcome.errors.get('valid')})"
    return None


@pytest.mark.parametrize("driver", PG + MY)
def test_catalogue_against_hostile_servers(driver: str, pki: Pki,
                                           servers: dict[str, dict[str, RecordingServer]]) -> None:
    rows = [_resolve(s, pki) for s in catalogue(str(pki.ca)) if s.driver == driver]
    family = DRIVERS[driver].family
    failures, counts = [], {"settings": 0, "refused": 0, "self-signed": 0, "wrong-host": 0,
                            "wrong-host unconsented": 0, "plain": 0, "valid": 0}
    for setting in rows:
        outcome = attempt(servers[family], driver, setting.query, setting.connect_args,
                          str(pki.ca), setting.how)
        counts["settings"] += 1
        counts["refused"] += bool(outcome.refused_at)
        for kind in outcome.reached:
            counts[kind] += 1
        if "wrong-host" in outcome.reached and setting.expect != C:
            counts["wrong-host unconsented"] += 1
        problem = check(setting, outcome)
        if problem:
            failures.append(f"{setting}: {problem}")
    RESULTS[driver] = counts
    print(f"\n{driver}: {counts}")
    assert not failures, "\n".join(failures)


def test_the_catalogue_covers_every_case(pki: Pki) -> None:
    rows = catalogue(str(pki.ca))
    assert len(rows) >= 80
    assert {s.driver for s in rows} == set(DRIVERS)
    assert {s.how for s in rows} == {"url", "attach"}
    assert sum(1 for s in rows if s.expect == R) >= 40


# -- hypothesis: any value for each TLS key ---------------------------------------------------

TLS_KEYS: dict[str, list[str]] = {
    "psycopg2": ["sslmode", "sslrootcert", "gssencmode", "sslnegotiation", "requiressl"],
    "psycopg": ["sslmode", "sslrootcert", "gssencmode"],
    "psycopg_async": ["sslmode", "sslrootcert"],
    "pg8000": ["ssl_context"],
    "asyncpg": ["ssl", "sslmode", "direct_tls"],
    "pymysql": ["ssl", "ssl_disabled", "ssl_verify_cert", "ssl_verify_identity", "ssl_ca"],
    "mysqldb": ["ssl_mode", "ssl"],
    "mysqlconnector": ["ssl_disabled", "ssl_verify_cert", "ssl_verify_identity", "ssl_ca"],
    "aiomysql": ["ssl"],
    "asyncmy": ["ssl"],
}
WORDS = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "true", "false",
         "0", "1", "yes", "no", "none", "required", "optional", "DISABLED", "PREFERRED",
         "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY", "direct", "postgres", "system", ""]


def _any_case(word: str) -> st.SearchStrategy[str]:
    def spell(flips: list[bool]) -> str:
        return "".join(c.upper() if f else c.lower() for c, f in zip(word, flips, strict=True))

    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(spell)


def values(ca: str) -> st.SearchStrategy[Any]:
    contexts = [NONE_CTX, EMPTY_CTX, *_contexts(ca).values()]
    scalars = st.one_of(
        st.booleans(), st.integers(-2, 3), st.none(), st.sampled_from(WORDS).flatmap(_any_case),
        st.text(max_size=8), st.just(ca), st.just("/nonexistent/ca.pem"),
        st.sampled_from(contexts),
    )
    return st.one_of(
        scalars, st.lists(scalars, max_size=2),
        st.dictionaries(st.sampled_from(["ca", "verify_mode", "check_hostname", "capath",
                                         "cert", "bogus"]), scalars, max_size=3),
    )


FUZZ = [(d, k) for d, keys in TLS_KEYS.items() for k in keys]


@pytest.mark.parametrize(("driver", "key"), FUZZ)
def test_any_value_of_a_tls_key_never_leaks(driver: str, key: str, pki: Pki,
                                            servers: dict[str, dict[str, RecordingServer]]) -> None:
    family = DRIVERS[driver].family
    ca = str(pki.ca)

    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(value=values(ca), in_url=st.booleans())
    def run(value: Any, in_url: bool) -> None:
        query, connect_args = "", {key: value}
        if in_url and isinstance(value, str) and value.isprintable() and "&" not in value \
                and "#" not in value and value.strip() == value:
            query, connect_args = f"{key}={value}", {}
        outcome = attempt(servers[family], driver, query, connect_args, ca)
        assert not outcome.reached & {"self-signed", "plain"}, (driver, key, value)
        if "wrong-host" in outcome.reached:
            consent = _chain_only(driver, key, value) or _chain_only_context(value)
            assert consent, (driver, key, value)

    run()


def _chain_only(driver: str, key: str, value: Any) -> bool:
    """The explicit chain-only spellings: libpq verify-ca, MySQL VERIFY_CA, no identity check."""
    if isinstance(value, str):
        return value in ("verify-ca", "VERIFY_CA")
    if isinstance(value, dict):
        return value.get("check_hostname") is False
    return key == "ssl_verify_identity" and value is False


def _chain_only_context(value: Any) -> bool:
    return isinstance(value, ssl.SSLContext) and not value.check_hostname


def test_harness_sees_a_leak(servers: dict[str, dict[str, RecordingServer]]) -> None:
    """Control: a bare driver with verification off sends its password to every server."""
    import pymysql

    for kind in ("self-signed", "plain"):
        server = servers["mysql"][kind]
        server.take()
        with contextlib.suppress(Exception):
            pymysql.connect(host="127.0.0.1", port=server.port, user="u",
                            password="Action=connect-PLAIN", connect_timeout=3,
                            ssl=NONE_CTX if kind == "self-signed" else None)
        assert server.got_token(), kind
    import psycopg2

    for kind in ("self-signed", "plain"):
        server = servers["postgresql"][kind]
        server.take()
        with contextlib.suppress(Exception):
            psycopg2.connect(host="127.0.0.1", port=server.port, user="u",
                             password="Action=connect-PLAIN", sslmode="prefer",
                             gssencmode="disable", connect_timeout=3)
        assert server.got_token(), kind


# -- listener order: what we checked is what the driver gets ---------------------------------


def test_a_later_listener_cannot_weaken_the_checked_arguments(
        pki: Pki, servers: dict[str, dict[str, RecordingServer]],
        caplog: pytest.LogCaptureFixture) -> None:
    """A do_connect listener added after ours never runs: ours made the connection."""
    from sqlalchemy import event

    calls = []

    def weaken(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        calls.append(1)
        cparams["sslmode"] = "prefer"

    for kind in ("plain", "valid"):
        server = servers["postgresql"][kind]
        server.take()
        engine = sa.create_engine(_url("psycopg2", server.port, "", str(pki.ca), "url"),
                                  poolclass=NullPool)
        event.listen(engine, "do_connect", weaken)
        with pytest.raises(sa.exc.OperationalError):
            engine.connect()
        assert server.got_token() is (kind == "valid")  # refused login; token only to valid
    assert calls == []
    assert "weaken was registered after the IAM listener" in caplog.text


def test_an_earlier_listener_is_checked_too(
        pki: Pki, servers: dict[str, dict[str, RecordingServer]]) -> None:
    """A listener registered before ours (here: before attach()) runs first; the check
    sees what it changed and refuses. (SQLAlchemy ignores insert=True for do_connect.)"""
    from sqlalchemy import event

    def weaken(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["sslmode"] = "prefer"

    server = servers["postgresql"]["plain"]
    server.take()
    before = server.connections
    engine = sa.create_engine(_url("psycopg2", server.port, "", str(pki.ca), "attach"),
                              poolclass=NullPool)
    event.listen(engine, "do_connect", weaken)
    sqlalchemy_rds_iam.attach(engine, aws_region="us-east-1", iam_ca_bundle=str(pki.ca))
    with pytest.raises(InsecureConnectionError, match="sslmode=prefer"):
        engine.connect()
    assert server.take() == b""
    assert server.connections == before  # not even a TCP connection
