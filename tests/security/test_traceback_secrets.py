"""Nothing to steal in a traceback: a failed connect's exception holds no token or AWS secret.

Read the way an error tracker (Sentry with default settings) reads an event, only deeper:
for every exception of the chain (``__cause__``, ``__context__``, group members), every
frame of its traceback and the frames that called it (``f_back``, up to this test), the
``repr()`` of every local, walked through dicts/lists/tuples and one level of objects'
attributes; plus each exception's ``args``, ``__notes__`` and attributes (properties
included) one object deep. Searched for: the tokens signed for the attempt, the marker
every token has, the AWS secret access key and the session token.

Per driver, for a dead port (server down) and a login the emulator refuses (credentials it
does not know). The positive control runs the same attempt with the scrubbing switched off
(the listener's ``scrub_exception`` replaced by a no-op) and requires the scan to find the
token; the synthetic controls prove each place the scan reads. The driver's exception type,
message and SQLSTATE/errno are compared before and after the scrubbing.

The same attempts are then handed to the real Sentry SDK (default data settings, a
recording transport, no network): the event it would send holds no secret, and unscrubbed
it holds the token for 9 of 10 drivers on a dead port and all 10 on a refused login.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import secrets
import sys
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import scrub as scrub_module
from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.refusals import add_note, login_refused
from sqlalchemy_rds_iam.scrub import iter_chain, scrub_exception
from tests.fakes import ASYNC_DRIVERS, SlowSource, closed_port, signed_tokens

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

#: The tokens signed during the current attempt: a global, so no harness frame holds them.
_SIGNED: list[str] = []
#: (type, message, code) of each exception the listener scrubbed, taken before scrubbing.
_BEFORE: list[tuple[type[BaseException], str, object]] = []

_UNKNOWN_KEY = "AKIAUNKNOWNEXAMPLE01"
_SECRET_KEY = "sEcReT" + secrets.token_hex(16)
_SESSION_TOKEN = "SeSsIoN" + secrets.token_hex(24)
_MARKER = "X-Amz-Signature"
_HERE = os.path.abspath(__file__)
_LEAF = (str, bytes, bytearray, int, float, complex, bool, type(None), type, types.ModuleType)


# -- the scan ------------------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception:
        return ""


def _get(obj: object, name: str) -> object:
    """``getattr``; an attribute or property that raises reads as ``None``."""
    try:
        return getattr(obj, name)
    except Exception:
        return None


def _attributes(obj: object, *, properties: bool) -> list[tuple[str, object]]:
    """``obj``'s attributes: ``__dict__`` and slots, or every public non-method (properties)."""
    if properties:
        found = []
        for name in dir(obj):
            if name.startswith("__"):
                continue
            value = _get(obj, name)
            if not inspect.isroutine(value):
                found.append((name, value))
        return found
    items: list[tuple[str, object]] = list(getattr(obj, "__dict__", {}).items())
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()) if isinstance(
                getattr(cls, "__slots__", ()), (tuple, list)) else ():
            items.append((slot, _get(obj, slot)))
    return items


def _walk(value: object, secrets_: tuple[str, ...], path: str, *, depth: int = 6,
          objects: int = 1, properties: bool = False, seen: set[int] | None = None
          ) -> Iterator[str]:
    """Paths under ``value`` whose repr (or text) contains one of ``secrets_``."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    text = _text(value)
    for secret in secrets_:
        if secret in text:
            yield f"{path} ({secret[:16]}...)"
            return
    if depth <= 0 or isinstance(value, _LEAF):
        return
    if isinstance(value, dict):
        for key, item in list(value.items()):
            yield from _walk(key, secrets_, f"{path}[key]", depth=depth - 1, objects=objects,
                             properties=properties, seen=seen)
            yield from _walk(item, secrets_, f"{path}[{key!r}]", depth=depth - 1,
                             objects=objects, properties=properties, seen=seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(list(value)):
            yield from _walk(item, secrets_, f"{path}[{index}]", depth=depth - 1,
                             objects=objects, properties=properties, seen=seen)
    elif objects > 0 and not isinstance(value, types.FrameType):
        for name, item in _attributes(value, properties=properties):
            yield from _walk(item, secrets_, f"{path}.{name}", depth=depth - 1,
                             objects=objects - 1, properties=properties, seen=seen)


def _frames(exc: BaseException) -> Iterator[tuple[str, types.FrameType]]:
    """Every frame of every traceback in ``exc``'s chain, and their callers (``f_back``) up
    to the first frame of this test module, pytest or pluggy (the harness above them)."""
    seen: set[int] = set()

    def harness(frame: types.FrameType) -> bool:
        name = os.path.abspath(frame.f_code.co_filename)
        return name == _HERE or "_pytest" in name or "pluggy" in name

    for member in iter_chain(exc):
        tb = member.__traceback__
        while tb is not None:
            frame: types.FrameType | None = tb.tb_frame
            first = True
            while frame is not None and id(frame) not in seen and (first or not harness(frame)):
                seen.add(id(frame))
                first = False
                code = frame.f_code
                yield (f"{type(member).__name__}: {code.co_name} "
                       f"({code.co_filename}:{frame.f_lineno})"), frame
                frame = frame.f_back
            tb = tb.tb_next


def find_secrets(exc: BaseException, secrets_: tuple[str, ...]) -> list[str]:
    """Where in ``exc`` (frames, args, notes, attributes) any of ``secrets_`` is found."""
    found: list[str] = []
    for where, frame in _frames(exc):
        for name, value in list(frame.f_locals.items()):
            found += _walk(value, secrets_, f"{where} local {name}")
    for member in iter_chain(exc):
        label = type(member).__name__
        found += _walk(member.args, secrets_, f"{label}.args")
        found += _walk(getattr(member, "__notes__", []), secrets_, f"{label}.__notes__")
        found += _walk(_text(member), secrets_, f"{label} str")
        for name, value in _attributes(member, properties=True):
            if name in ("args", "__traceback__", "__cause__", "__context__"):
                continue
            found += _walk(value, secrets_, f"{label}.{name}", objects=1, properties=True)
    return found


def _secrets() -> tuple[str, ...]:
    signatures = tuple(t.rsplit(f"{_MARKER}=", 1)[1] for t in _SIGNED)
    return (_MARKER, _SECRET_KEY, _SESSION_TOKEN, *signatures)


# -- synthetic positive controls: each place the scan reads -------------------------------


class _Holder:
    def __init__(self, value: object) -> None:
        self.inner = {"nested": [("deep", value)]}


class _Property:
    @property
    def password(self) -> bytes:
        return (_SECRET_KEY + "").encode()


class _Carrying(Exception):
    pass


def _raise_with_local(value: object) -> None:
    hidden = _Holder(value)  # noqa: F841  (the local an error tracker would record)
    raise ValueError("boom")


def _raised(fn: Callable[[], None]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def test_the_scan_sees_a_token_in_a_frame_local_an_attribute_and_the_chain() -> None:
    secret = ("tok" + secrets.token_hex(20),)
    exc = _raised(lambda: _raise_with_local(secret[0]))
    assert any("local hidden" in f for f in find_secrets(exc, secret))
    # ...after the frame is cleared, it is gone (what scrub_exception does)
    scrub_exception(exc)
    assert find_secrets(exc, secret) == []

    def chained() -> None:
        try:
            _raise_with_local(secret[0])
        except ValueError as inner:
            raise RuntimeError("outer") from inner

    assert any("ValueError" in f for f in find_secrets(_raised(chained), secret))

    def context() -> None:
        try:
            _raise_with_local(secret[0])
        except ValueError:
            raise RuntimeError("outer")  # noqa: B904  (__context__, not __cause__)

    assert find_secrets(_raised(context), secret)
    carrying = _Carrying("x")
    carrying.conn = _Property()  # type: ignore[attr-defined]
    assert any(".conn.password" in f for f in find_secrets(carrying, (_SECRET_KEY,)))
    assert find_secrets(_Carrying(f"token {secret[0]}"), secret)
    noted = _Carrying("x")
    add_note(noted, secret[0])
    assert any("__notes__" in f for f in find_secrets(noted, secret))
    if sys.version_info >= (3, 11):
        group = ExceptionGroup("g", [_Carrying(secret[0])])  # noqa: F821
        assert find_secrets(group, secret)


# -- the attempts --------------------------------------------------------------------------


def _code(exc: BaseException) -> object:
    """The SQLSTATE or error number a caller would read off the driver's exception."""
    for name in ("sqlstate", "pgcode", "errno"):
        value = getattr(exc, name, None)
        if value:
            return value
    first = exc.args[0] if exc.args else None
    if isinstance(first, dict):
        return first.get("C")
    return first if isinstance(first, int) else None


def _recording_scrub(real: bool) -> Callable[[BaseException], None]:
    def scrub(exc: BaseException) -> None:
        for member in iter_chain(exc):
            _BEFORE.append((type(member), str(member), _code(member)))
        if real:
            scrub_exception(exc)

    return scrub


def _attempt(url: str, source: Any = None) -> BaseException:
    """Connect once through the plugin; the exception that reached the caller."""
    _SIGNED.clear()
    _BEFORE.clear()
    driver = sa.make_url(url).get_driver_name()
    if driver in ASYNC_DRIVERS:
        async def run() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            connector = sqlalchemy_rds_iam.connector(engine)
            if source is not None:
                connector.source = source
            signed_tokens(connector, _SIGNED)
            try:
                async with engine.connect():
                    pass
            finally:
                await engine.dispose()

        return _raised(lambda: asyncio.run(run()))
    engine = sa.create_engine(url, poolclass=NullPool)
    connector = sqlalchemy_rds_iam.connector(engine)
    if source is not None:
        connector.source = source
    signed_tokens(connector, _SIGNED)
    try:
        return _raised(lambda: engine.connect().close())
    finally:
        engine.dispose()


def _driver_exception(exc: BaseException, driver: str) -> BaseException:
    """The driver's own exception in the chain (SQLAlchemy's ``orig``, or the exception)."""
    orig = getattr(exc, "orig", None) or exc
    inner = getattr(orig, "__cause__", None)
    # SQLAlchemy's async adapters wrap the driver's exception in their own class
    if type(orig).__module__.startswith("sqlalchemy") and inner is not None:
        return inner
    return orig


def _dead_port_url(driver: str) -> str:
    family = DRIVERS[driver].family
    return (f"{family}+{driver}://iamuser@127.0.0.1:{closed_port()}/db"
            "?plugin=rds_iam&aws_region=us-east-1")


def _refused_url(info: EmulatorInfo, driver: str) -> str:
    server = info.postgresql if DRIVERS[driver].family == "postgresql" else info.mysql
    url = server.url(driver=driver)
    if driver == "mysqldb":  # libmysqlclient's "localhost" is the Unix socket
        url = url.replace("@localhost:", "@127.0.0.1:", 1) + "&iam_host=localhost"
    return url


def _unknown_source(region: str) -> SlowSource:
    return SlowSource(credentials=FrozenCredentials(_UNKNOWN_KEY, _SECRET_KEY, _SESSION_TOKEN,
                                                    None), region=region, name="unknown keys")


def _check(exc: BaseException, driver: str, *, scrubbed: bool) -> BaseException:
    assert _SIGNED, "a token was signed for the attempt"
    found = find_secrets(exc, _secrets())
    if scrubbed:
        assert found == [], "\n".join(found)
    else:
        assert found, "the scan must see the token of an unscrubbed exception"
    # the driver's type, message and SQLSTATE/errno are as they were before the scrubbing
    assert _BEFORE, "the listener's scrub ran"
    after = [(type(m), str(m), _code(m)) for m in iter_chain(exc)]
    for before in _BEFORE:
        assert before in after, (before, after)
    return _driver_exception(exc, driver)


#: The driver's own exception for a refused TCP connect: its top module and SQLSTATE/errno
#: (libpq and pg8000 give none for a connect failure; asyncpg's is the OSError itself).
_DEAD_PORT = {
    "aiomysql": ("pymysql", 2003), "asyncmy": ("asyncmy", 2003),
    "asyncpg": ("builtins", errno.ECONNREFUSED), "mysqlconnector": ("mysql", 2003),
    "mysqldb": ("MySQLdb", 2002), "pg8000": ("pg8000", None), "psycopg": ("psycopg", None),
    "psycopg2": ("psycopg2", None), "psycopg_async": ("psycopg", None), "pymysql": ("pymysql", 2003),
}


@pytest.fixture
def session_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", _UNKNOWN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", _SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", _SESSION_TOKEN)


@pytest.mark.parametrize("scrubbed", [True, False], ids=["scrubbed", "control"])
@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.usefixtures("session_credentials")
def test_dead_port(driver: str, scrubbed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub_module, "scrub_exception", _recording_scrub(scrubbed))
    exc = _attempt(_dead_port_url(driver))
    orig = _check(exc, driver, scrubbed=scrubbed)
    assert isinstance(exc, (sa.exc.DBAPIError, OSError)), type(exc)
    module, code = _DEAD_PORT[driver]
    assert (type(orig).__module__.split(".")[0], _code(orig)) == (module, code), repr(orig)


@pytest.mark.integration
@pytest.mark.parametrize("scrubbed", [True, False], ids=["scrubbed", "control"])
@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_refused_login(rds_iam_emulator: EmulatorInfo, driver: str, scrubbed: bool,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub_module, "scrub_exception", _recording_scrub(scrubbed))
    exc = _attempt(_refused_url(rds_iam_emulator, driver),
                   _unknown_source(rds_iam_emulator.region))
    orig = _check(exc, driver, scrubbed=scrubbed)
    # SQLAlchemy 2.0's asyncpg adapter lets asyncpg's own refusal through unwrapped (2.1 wraps it)
    unwrapped = driver == "asyncpg" and sa.__version__.startswith("2.0.")
    assert isinstance(exc, sa.exc.DBAPIError) or unwrapped, type(exc)
    assert login_refused(orig, DRIVERS[driver].family), (type(orig), orig)
    # libpq reports a failed connection without a SQLSTATE (psycopg2, psycopg): text only
    codes = {getattr(orig, name, None) for name in ("sqlstate", "pgcode", "errno")}
    first = orig.args[0] if orig.args else None
    codes.add(first.get("C") if isinstance(first, dict) else first)
    expected = {"postgresql": {"28000", "28P01"}, "mysql": {1045}}[DRIVERS[driver].family]
    if driver.startswith("psycopg"):
        assert codes <= {None, orig.args[0]}, codes
    else:
        assert codes & expected, (codes, repr(orig))



# -- the same attempts, read by a real error tracker ---------------------------------------


def _sentry_event(exc: BaseException) -> bytes:
    """What the Sentry SDK (default data settings, no network) would send for ``exc``."""
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class Recording(Transport):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[bytes] = []

        def capture_envelope(self, envelope: Any) -> None:
            self.sent.append(envelope.serialize())

    transport = Recording()
    # default_integrations=False: no process-wide patches (logging, subprocess) left behind;
    # frame locals and the data scrubber are the SDK core's defaults either way.
    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=transport,
                    default_integrations=False, auto_enabling_integrations=False)
    try:
        sentry_sdk.capture_exception(exc)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert transport.sent, "the SDK sent an event"
    return b"".join(transport.sent)


def _in_event(event: bytes) -> list[str]:
    return [s[:16] for s in _secrets() if s.encode() in event]


@pytest.mark.parametrize("scrubbed", [True, False], ids=["scrubbed", "control"])
@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.usefixtures("session_credentials")
def test_dead_port_sentry_event(driver: str, scrubbed: bool,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub_module, "scrub_exception", _recording_scrub(scrubbed))
    event = _sentry_event(_attempt(_dead_port_url(driver)))
    assert b'"vars"' in event, "the event carries frame locals"
    # Unscrubbed, the token reaches the event for 9 of 10 drivers (mysql-connector's only
    # sits under keys Sentry's own scrubber masks: password, self._password)
    leaks = not scrubbed and driver != "mysqlconnector"
    assert bool(_in_event(event)) is leaks, _in_event(event)


@pytest.mark.integration
@pytest.mark.parametrize("scrubbed", [True, False], ids=["scrubbed", "control"])
@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_refused_login_sentry_event(rds_iam_emulator: EmulatorInfo, driver: str, scrubbed: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub_module, "scrub_exception", _recording_scrub(scrubbed))
    exc = _attempt(_refused_url(rds_iam_emulator, driver), _unknown_source(rds_iam_emulator.region))
    event = _sentry_event(exc)
    assert bool(_in_event(event)) is not scrubbed, _in_event(event)  # unscrubbed: all 10 leak
