"""One contender of ``bench/field.py``, run in a fresh process inside that contender's venv.

    python bench/peer.py NAME MODE

MODE ``token``: imports and module-level setup (a Lambda's init), then the first token;
``query``: the same, then the first ``SELECT 1`` over verified TLS, and the resident memory;
``warm``: after a first query, the per-connection overhead of the contender's token step;
``login``: IAM against password logins on the same server (``ours`` only).
Prints one JSON line. Times are from ``BENCH_T0`` (the parent's clock when it spawned us), so
they include the interpreter's start. Standard library at module level: every venv runs it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

HOST, PORT = os.environ["BENCH_HOST"], int(os.environ["BENCH_PORT"])
DB, USER, CA = os.environ["BENCH_DB"], os.environ["BENCH_USER"], os.environ["BENCH_CA"]
REGION = os.environ["AWS_REGION"]
TLS = {"sslmode": "verify-full", "sslrootcert": CA}
SQL = "SELECT 1"

Steps = dict[str, Callable[[], Any]]


def _fire(engine: Any, cparams: dict[str, Any]) -> None:
    """Run an engine's do_connect listeners the way SQLAlchemy does before a connect."""
    for listener in engine.dialect.dispatch.do_connect:
        listener(engine.dialect, None, [], cparams)


def _sa_query(engine: Any) -> Callable[[], Any]:
    import sqlalchemy as sa

    def query() -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.text(SQL)).scalar()

    return query


def _sa_steps(engine: Any) -> Steps:
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    return {"token": lambda: _fire(engine, cparams), "query": _sa_query(engine),
            "listener": lambda: _fire(engine, cparams)}


def ours(driver: str) -> Steps:
    import sqlalchemy as sa

    import sqlalchemy_rds_iam

    engine = sa.create_engine(
        f"postgresql+{driver}://{USER}@{HOST}:{PORT}/{DB}"
        f"?plugin=rds_iam&aws_region={REGION}&iam_ca_bundle={CA}"
    )
    connector = sqlalchemy_rds_iam.connector(engine)
    return {**_sa_steps(engine), "token": connector.token}


def guide() -> Steps:
    """AWS's guide as published: boto3 client and token per invocation, pg8000, no SQLAlchemy."""
    import ssl

    import boto3
    import pg8000

    state: dict[str, str] = {}

    def token() -> str:
        client = boto3.client("rds")
        state["token"] = client.generate_db_auth_token(
            DBHostname=HOST, Port=PORT, DBUsername=USER, Region=REGION)
        return state["token"]

    def query() -> Any:
        conn = pg8000.connect(host=HOST, port=PORT, user=USER, password=token(), database=DB,
                              ssl_context=ssl.create_default_context(cafile=CA))
        try:
            cur = conn.cursor()
            cur.execute(SQL)
            return cur.fetchone()
        finally:
            conn.close()

    return {"token": token, "query": query, "listener": token}


def guide_orm() -> Steps:
    """The guide in a SQLAlchemy app: a boto3 client and a token in do_connect, per connection."""
    import boto3
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}", connect_args=TLS)

    @sa.event.listens_for(engine, "do_connect")
    def _token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        client = boto3.client("rds")
        cparams["password"] = client.generate_db_auth_token(HOST, PORT, USER, Region=REGION)

    return _sa_steps(engine)


def recipe() -> Steps:
    """SQLAlchemy's documented do_connect recipe, with one boto3 client reused."""
    import boto3
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}", connect_args=TLS)
    client: list[Any] = []

    @sa.event.listens_for(engine, "do_connect")
    def provide_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        if not client:
            client.append(boto3.client("rds", region_name=REGION))
        cparams["password"] = client[0].generate_db_auth_token(HOST, PORT, USER)

    return _sa_steps(engine)


def cisco() -> Steps:
    """cisco's sqlalchemy-rdsiam: its own dialect signs in connect() (boto3 client cached)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2rdsiam://{USER}@{HOST}:{PORT}/{DB}",
                              connect_args=TLS)
    from sqlalchemy_rdsiam.build import build_connect_kwargs

    cparams = {**engine.dialect.create_connect_args(engine.url)[1], **TLS}
    step = lambda: build_connect_kwargs(dict(cparams))  # noqa: E731 - what its connect() runs
    return {"token": step, "query": _sa_query(engine), "listener": step}


def auth_plugin() -> Steps:
    """sqlalchemy-rds-iam-auth-plugin: a CreateEnginePlugin named rds_iam (token cached 10 min)."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}"
        f"?plugin=rds_iam&use_iam_auth=true&aws_region={REGION}", connect_args=TLS)
    return _sa_steps(engine)


def aws_wrapper() -> Steps:
    """aws-advanced-python-wrapper's SQLAlchemy dialect with its iam plugin (psycopg 3).

    Its iam plugin signs only for RDS-looking hostnames; the emulator is ``localhost``, so
    that one check (a hostname pattern match) is switched off. Everything else is as shipped.
    """
    import sqlalchemy as sa
    from aws_advanced_python_wrapper.utils.iam_utils import IamAuthUtils

    IamAuthUtils.validate_iam_host = staticmethod(lambda host: None)  # type: ignore[method-assign]

    engine = sa.create_engine(
        f"postgresql+aws_wrapper_psycopg://{USER}@{HOST}:{PORT}/{DB}"
        f"?wrapper_plugins=iam&iam_region={REGION}&wrapper_dialect=pg"
        f"&sslmode=verify-full&sslrootcert={CA}", poolclass=sa.pool.NullPool)
    return {"query": _sa_query(engine), "connect": lambda: engine.raw_connection().close()}


PEERS: dict[str, Callable[[], Steps]] = {
    "ours": lambda: ours("psycopg2"),
    "ours-psycopg": lambda: ours("psycopg"),
    "guide": guide,
    "guide-orm": guide_orm,
    "recipe": recipe,
    "cisco": cisco,
    "auth-plugin": auth_plugin,
    "aws-wrapper": aws_wrapper,
}


def _since_spawn() -> float:
    return (time.time() - float(os.environ["BENCH_T0"])) * 1000


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _per_call_us(step: Callable[[], Any]) -> float:
    """Best of 25 short batches (~20 ms each): the machine's other work is left out."""
    timer = timeit.Timer(step)
    number, _ = timer.autorange()  # at least 0.2 s
    number = max(1, number // 10)
    return min(timer.repeat(repeat=25, number=number)) / number * 1e6


def _raw_psycopg_connect() -> Callable[[], None]:
    import boto3
    import psycopg

    token = boto3.client("rds").generate_db_auth_token(HOST, PORT, USER, Region=REGION)
    return lambda: psycopg.connect(host=HOST, port=PORT, user=USER, password=token, dbname=DB,
                                   **TLS).close()


def _best_ms(step: Callable[[], Any], other: Callable[[], Any], rounds: int
             ) -> tuple[float, float]:
    """Best wall time of two steps, alternated: the machine's other work left out."""
    a, b = [], []
    for _ in range(rounds):
        for fn, out in ((step, a), (other, b)):
            began = time.perf_counter()
            fn()
            out.append((time.perf_counter() - began) * 1000)
    return min(a), min(b)


def main(name: str, mode: str) -> dict[str, Any]:
    steps = PEERS[name]()
    if mode == "token":
        if "token" not in steps:
            return {"token_ms": None}
        steps["token"]()
        return {"token_ms": _since_spawn()}
    steps["query"]()
    if mode == "query":
        return {"query_ms": _since_spawn(), "rss_mb": _rss_mb()}
    if mode == "warm":
        if "listener" in steps:
            return {"warm_us": _per_call_us(steps["listener"])}
        # The wrapper's token step cannot be called alone: time whole connects through it,
        # and plain psycopg connects with a token, on the same server.
        # Reported side by side, not subtracted: the two differ in more than the token step
        # (the wrapper's own host handling), so a difference would not isolate it.
        wrapped, raw = _best_ms(steps["connect"], _raw_psycopg_connect(), rounds=25)
        return {"warm_us": None, "warm_note": f"a whole connect through it: {wrapped:.1f} ms, "
                f"a plain psycopg connect with a token: {raw:.1f} ms (best of 25 each)"}
    if mode == "login":
        import sqlalchemy as sa

        password_url = os.environ.get("BENCH_PASSWORD_URL")
        if not password_url:
            return {"login_ms": None}
        iam = sa.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}"
                               f"?plugin=rds_iam&aws_region={REGION}&iam_ca_bundle={CA}",
                               poolclass=sa.pool.NullPool)
        password = sa.create_engine(password_url, poolclass=sa.pool.NullPool)
        with_iam, with_password = _best_ms(_sa_query(iam), _sa_query(password), rounds=25)
        return {"login_ms": with_iam - with_password, "iam_login_ms": with_iam,
                "password_login_ms": with_password}
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
