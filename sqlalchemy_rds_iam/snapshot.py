"""Process snapshots (Lambda SnapStart, Firecracker, CRaC-style): what must not survive one.

A snapshot freezes the whole process after its init; every restore, possibly days later
and in many copies at once, wakes up with the same memory. Tokens (15 minutes) and
temporary credentials resolved before it are stale after it, and the connections it
held are dead: their sockets were never carried over. So, for every engine the plugin
serves:

* :func:`before_snapshot`: forget every cached token and every credential resolved
  (nothing secret that will be stale goes into the snapshot), and mark the pooled
  connections as invalid;
* :func:`after_restore`: the same again (a restore may come from a snapshot taken without
  the hook), so the first checkout closes the dead connection and dials afresh, with a
  token signed from credentials fetched now, without ``pool_pre_ping``. No I/O: Lambda
  gives after-restore hooks 10 seconds in all.

During a SnapStart init (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``: the only init
Lambda snapshots) the plugin loads this module at the first engine, which registers both
with AWS's ``snapshot_restore_py`` module (Lambda's Python 3.12+ runtimes; once per process,
when it is importable), and each new engine does the one-time work of a first connect at
creation (imports, the credential source's set-up), so that it is in the snapshot rather
than on every restore's critical path. Anyone else who snapshots a process calls
``sqlalchemy_rds_iam.before_snapshot()`` / ``after_restore()``, which put every engine made
until then under these first. Any other process never loads this module.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from . import tokens
from .errors import RdsIamError

__all__ = ["after_restore", "before_snapshot", "hooks_registered", "serve", "track"]

#: Lambda's variable during init, and its value when a snapshot follows the init.
INIT_TYPE_VARIABLE, SNAP_START = "AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start"


if TYPE_CHECKING:  # a Protocol class costs a cold start ~0.1 ms to build; only the type
    # checker reads it
    class Served(Protocol):
        """What the hooks need of an engine's IAM listener (``plugin.IamConnector``)."""

        source: Any
        target: Any

        def forget(self) -> None: ...

        def key(self) -> Any: ...


#: Engine (a SQLAlchemy ``Engine``) -> its IAM listener; weak, so engines still die.
_SERVED: weakref.WeakKeyDictionary[Any, Served] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_hooks: bool | None = None
"""Registered with ``snapshot_restore_py`` (True), module absent (False), not tried (None)."""


def serve(engine: Any, connector: Served) -> None:
    """Put ``engine`` under the hooks, registering them with the runtime (the plugin calls
    this for each engine it serves while a snapshot may follow: ``plugin._serve_snapshots``)."""
    track(engine, connector)
    _register_runtime_hooks()
    if os.environ.get(INIT_TYPE_VARIABLE) == SNAP_START:
        warm(connector)


def track(engine: Any, connector: Served) -> None:
    """Put ``engine`` under :func:`before_snapshot` and :func:`after_restore` (held weakly)."""
    _SERVED[engine] = connector


def hooks_registered() -> bool:
    """Whether this process registered the hooks with ``snapshot_restore_py``."""
    return bool(_hooks)


def _register_runtime_hooks() -> None:
    """Once per process: hand both hooks to AWS's runtime module when it is importable.

    Tried at the first engine rather than at package import, so a process without the
    module pays one failed import, once, and only if it creates an engine.
    """
    global _hooks
    if _hooks is not None:
        return
    with _lock:
        if _hooks is not None:
            return
        try:
            runtime = importlib.import_module("snapshot_restore_py")
        except ImportError:
            _hooks = False
            return
        runtime.register_before_snapshot(before_snapshot)
        runtime.register_after_restore(after_restore)
        _hooks = True


def _forget_everything() -> list[Any]:
    """Forget every token and credential; returns the engines served."""
    engines = list(_SERVED.keys())
    for engine in engines:
        connector = _SERVED.get(engine)
        if connector is not None:
            connector.forget()
    tokens.clear_all()  # caches the user made and passed in too
    return engines


def _invalidate_pool(engine: Any) -> None:
    """Every connection the pool holds now is closed and replaced at its next checkout.

    What ``Pool._invalidate`` does for a connection that failed: move the pool's
    invalidation time to now, which the checkout compares with each connection's start.
    It closes nothing now (no I/O, no event loop needed for async drivers). A SQLAlchemy
    without that attribute gets a new pool instead, the old connections left unclosed.
    """
    pool = engine.pool
    if hasattr(pool, "_invalidate_time"):
        pool._invalidate_time = time.time()
    else:  # pragma: no cover - every SQLAlchemy 2.x has it (tests/unit/test_snapshot.py)
        engine.dispose(close=False)


def before_snapshot() -> None:
    """Before a snapshot: keep no token or credential in memory, mark pooled connections invalid.

    Safe to call at any time (a connect after it signs afresh); for other snapshotters,
    called by Lambda through ``snapshot_restore_py`` when that module is present.
    """
    for engine in _forget_everything():
        _invalidate_pool(engine)


def after_restore() -> None:
    """After a restore: forget tokens and credentials, and make every served engine's pool
    replace the connections it holds at their next checkout. No I/O: the first connect
    after it fetches credentials, signs and dials.

    The same work as :func:`before_snapshot`, done again: a restored process may come from
    a snapshot taken without that hook, and time has passed since in any case.
    """
    for engine in _forget_everything():
        _invalidate_pool(engine)


def warm(connector: Served) -> None:
    """A first connect's one-time work, without connecting (SnapStart init).

    Imports the standard-library signer and the container endpoint's HTTP client (where
    a restored function's credentials come from), has the credential source set itself up
    (``warm()``: the container endpoint's HTTP client, or botocore's session and chain),
    and resolves the region. Loads no credential and signs nothing: those would be stale
    after the restore anyway. A configuration problem is left for the connect to report.
    """
    from . import sigv4  # noqa: F401  -- the signer of every botocore-free source
    from .credentials import container

    container.warm()  # a SnapStart restore gets its credentials from the container endpoint
    if getattr(connector.target.spec, "is_async", False):
        from sqlalchemy.util.concurrency import in_greenlet

        in_greenlet()  # imports greenlet: the async path checks it on every cache miss
    source_warm = getattr(connector.source, "warm", None)
    try:
        if source_warm is not None:
            source_warm()
        connector.key()
    except RdsIamError:
        pass
