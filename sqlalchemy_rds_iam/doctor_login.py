"""The doctor's last step: log in once, and when the server refuses, a checklist to fix it.

Servers answer a failed IAM login with one opaque line ("PAM authentication failed",
"Access denied ... (using password: YES)"): :func:`login_checklist` turns it into the
things to check for that database family, led by what the server's words point to.
"""

from __future__ import annotations

import logging
from typing import Any

from .doctor_network import Failed, State

__all__ = ["MASTER_USER_NAMES", "login_checklist", "step_login"]


def _login(engine: Any) -> None:
    """Log in once and run ``SELECT 1``; driver errors propagate as SQLAlchemy's DBAPIError.

    The listener's refused-login WARNING is held back meanwhile: this step reports the
    refusal itself, with its checklist, and the same words twice would only be noise.
    """
    quiet = logging.Filter("nothing")  # passes only records of a logger named "nothing"
    library_logger = logging.getLogger("sqlalchemy_rds_iam")
    library_logger.addFilter(quiet)
    try:
        _login_once(engine)
    finally:
        library_logger.removeFilter(quiet)


def _login_once(engine: Any) -> None:
    if not hasattr(engine, "sync_engine"):
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
        return

    import asyncio

    async def login() -> None:
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        finally:
            await engine.dispose()

    asyncio.run(login())


#: Names RDS uses for master users, and the usual ones: never advise making them IAM users
#: (on RDS PostgreSQL, ``GRANT rds_iam`` turns off the user's password login).
MASTER_USER_NAMES = frozenset({"postgres", "admin", "root", "rdsadmin", "master"})

_CREATE_IAM_USER = {
    "postgresql": "CREATE USER {user}; GRANT rds_iam TO {user};",
    "mysql": "CREATE USER {user} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;",
}
_CREATE_SEPARATE_USER = {
    "postgresql": "CREATE USER iam_app; GRANT rds_iam TO iam_app;",
    "mysql": "CREATE USER iam_app IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;",
}


#: The server's words -> what they point to, and the checklist's order for it. PostgreSQL
#: tries a password for a user outside ``rds_iam`` ("password authentication failed"), and
#: runs the IAM check for a member ("PAM authentication failed"); MySQL's "Access denied"
#: says neither, so it keeps the default order.
_CAUSES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "password authentication failed",
        "the server tried a password, not IAM: the user is not an IAM user on this server",
        ("user", "enabled", "policy", "region", "clock", "address"),
    ),
    (
        "PAM authentication failed",
        "the server's IAM check refused the token (the user is an IAM user)",
        ("policy", "region", "clock", "address", "enabled", "user"),
    ),
)
_DEFAULT_ORDER = ("enabled", "user", "policy", "region", "clock", "address")


def login_checklist(
    family: str, user: str, host: str, port: int, region: str, partition: str, reason: str = ""
) -> str:
    """What to check when the server refused the token, led by what ``reason`` points to.

    ``reason`` is the server's message; its words pick the order (:data:`_CAUSES`).
    """
    if user.lower() in MASTER_USER_NAMES:
        user_item = (
            f"`{user}` looks like the master user: do not make it an IAM user (keep its "
            f"password as the way in); connect as a separate IAM user instead, e.g. "
            f"`{_CREATE_SEPARATE_USER[family]}`"
        )
    else:
        user_item = (
            f"The database user exists and is an IAM user (a separate user, not the master "
            f"user): `{_CREATE_IAM_USER[family].format(user=user)}`"
        )
    items = {
        "enabled": "IAM database authentication is enabled on the instance/cluster "
        "(modify-db-instance/-cluster --enable-iam-database-authentication).",
        "user": f"{user_item}.",
        "policy": "The caller's IAM policy allows rds-db:connect on "
        f"arn:{partition}:rds-db:{region}:<account>:dbuser:<DbiResourceId>/{user} (the "
        "cluster's or instance's resource id, db-/cluster-..., not its name; for RDS Proxy "
        "the proxy's prx- id).",
        "region": f"The token's region ({region}) is the database's region.",
        "clock": "This machine's clock is right (tokens are valid 15 minutes from signing) and "
        "the credentials (the access key shown above) are current, not expired or rotated.",
        "address": f"The host and port signed ({host}:{port}) are the ones the server expects: "
        "set iam_host/iam_port when connecting through a tunnel or a load balancer.",
    }
    lowered = reason.lower()
    cause, order = next(
        ((why, order) for words, why, order in _CAUSES if words.lower() in lowered),
        ("", _DEFAULT_ORDER),
    )
    lines = [f"the server refused the token{'; ' + cause if cause else ''}. Check, in this order:"]
    lines += [f"  {n}. {items[key]}" for n, key in enumerate(order, 1)]
    return "\n".join(lines)


def step_login(state: State) -> str:
    import sqlalchemy as sa

    target = state.target
    try:
        _login(state.engine)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise Failed(
            f"login refused: {reason}",
            login_checklist(
                target.spec.family,
                target.user,
                target.host,
                target.port,
                state.region,
                target.partition,
                reason,
            ),
        ) from None
    return f"logged in as {target.user} and ran SELECT 1"
