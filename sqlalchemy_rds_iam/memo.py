"""Memoized classification of a driver's final arguments, for the per-connection hot path.

A row's ``classify`` (``drivers/``) stats the CA bundle, may read an option file and
checks every TLS argument: about 10 us, paid on every new connection although the
arguments almost never change. :class:`MemoizedClassify` runs it once per distinct
*snapshot* of exactly the arguments it read, and reuses the :class:`Transport` it returned:

- Which arguments: the ones the classification itself looked at (every ``get``, ``[]`` and
  ``in`` on ``cparams`` is recorded), so no list is kept by hand that a later edit could
  leave incomplete; plus the set of keys present, which the keyword allow-list walks (a
  keyword added or removed is classified again).
- Snapshot: each value with its exact type (``True`` and ``1`` hash alike but are read
  differently), absent keys as a marker, dicts/lists/tuples frozen recursively. An
  ``SSLContext`` counts by identity plus the attributes the check reads (``verify_mode``,
  ``check_hostname``, ``keylog_filename``: a context mutated after the check is re-checked);
  a function by identity. Any other type (subclasses included) is not memoized: that
  connection takes the full classification.
- The file system: a bundle that disappears or changes, an edited option file. An entry
  is reused for at most :data:`RECHECK_SECONDS`, after which the full classification runs
  again (one ``stat``; the bundle is re-parsed when its inode, size or mtime changed,
  ``tls.bundle_problem``). So a removed or replaced bundle is refused at the latest one
  window later, and a connection pays the stat at most once per window per snapshot.
- Refusals are never memoized: every refused connection is classified in full.
"""

from __future__ import annotations

import operator
import ssl
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .transport import Classify, Transport

__all__ = ["RECHECK_SECONDS", "MemoizedClassify"]

#: How long a classification (and so the CA bundle's ``stat``) is trusted before re-running.
RECHECK_SECONDS = 1.0
#: Distinct snapshots kept per driver row; more is a misuse (arguments changing per connect).
MAX_ENTRIES = 64



class _Absent:
    """A key the arguments do not have (unlike one set to ``None``)."""

    __slots__ = ()


_ABSENT = _Absent()
_SCALARS = frozenset({str, int, bool, float, bytes, type(None)})
#: Types compared by value on the fast path: immutable, and read only by value.
_PLAIN = _SCALARS | {_Absent}
_IDENTITY = frozenset({types.FunctionType, types.BuiltinFunctionType})


class _Unknown(Exception):
    """A value whose snapshot could not be trusted: classify it in full."""


def _freeze(value: object) -> object:
    """A hashable stand-in that compares equal only where the check reads the same thing."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if kind is ssl.SSLContext:
        context: ssl.SSLContext = value  # type: ignore[assignment]
        return (kind, _Identity(context), *_context_state(context))
    if kind in _IDENTITY:
        return (kind, _Identity(value))
    if kind is dict:
        items: Mapping[Any, Any] = value  # type: ignore[assignment]
        return (kind, frozenset((_freeze(k), _freeze(v)) for k, v in items.items()))
    if kind is list or kind is tuple:
        seq: Sequence[Any] = value  # type: ignore[assignment]
        return (kind, tuple(_freeze(v) for v in seq))
    raise _Unknown


def _context_state(context: ssl.SSLContext) -> tuple[object, ...]:
    """The attributes of an ``SSLContext`` that ``tls.context_problem`` reads."""
    return (context.verify_mode, context.check_hostname, context.keylog_filename)


class _Identity:
    """Hashes and compares by identity, and keeps the object alive while it is a key."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


class _Recorder(Mapping[str, Any]):
    """``cparams`` as the classification sees it, noting every key it looks at."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.read: set[str] = set()
        self.sized = False

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(key)  # type: ignore[arg-type]
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)  # the key set is part of every snapshot

    def __len__(self) -> int:
        self.sized = True
        return len(self.data)


class _State:
    """The keys classifications read so far and what was memoized over exactly those keys.

    Replaced as a whole (never mutated once published), so a reader never pairs one key set
    with another's entries; keys only grow, so an older snapshot (a shorter tuple) can never
    equal a newer one.
    """

    __slots__ = ("absent", "entries", "keys", "last")

    def __init__(self, keys: tuple[str, ...], entries: dict[object, _Verdict],
                 last: _Verdict | None) -> None:
        self.keys = keys
        self.absent = (_ABSENT,) * len(keys)
        self.entries = entries
        self.last = last


class _Verdict:
    """One memoized classification: its raw values (for the identity fast path), the key set,
    the ``SSLContext`` attributes it depended on, the result and until when it may be reused."""

    __slots__ = ("contexts", "keyset", "plain", "transport", "until", "values")

    def __init__(self, values: tuple[object, ...], keyset: frozenset[str], transport: Transport,
                 until: float) -> None:
        self.values = values
        self.keyset = keyset
        self.transport = transport
        self.until = until
        self.contexts = tuple((value, _context_state(value))
                              for value in values if type(value) is ssl.SSLContext)
        # Identity of every value proves equal content only for immutable values.
        self.plain = all(type(value) in _PLAIN or type(value) in _IDENTITY
                         or type(value) is ssl.SSLContext for value in values)

    def holds_for(self, values: tuple[object, ...], keys: Any, now: float) -> bool:
        """The same objects and keys as when classified, contexts unchanged, window not over."""
        if not (now < self.until and self.plain and all(map(operator.is_, values, self.values))
                and self.keyset == keys):
            return False
        return not self.contexts or all(
            _context_state(context) == state for context, state in self.contexts
        )


class MemoizedClassify:
    """``classify(cargs, cparams)`` with its results reused per snapshot (module docstring)."""

    def __init__(self, classify: Classify, *, clock: Callable[[], float] = time.monotonic,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.classify = classify
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self._state = _State((), {}, None)
        self._lock = threading.Lock()

    def __call__(self, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
        state = self._state
        if cargs or not state.keys:
            return self._classify(cargs, cparams)
        values = tuple(map(cparams.get, state.keys, state.absent))
        keys = cparams.keys()
        now = self.clock()
        last = state.last
        # SQLAlchemy hands every connect the same dict, holding the same objects: the hot
        # path, inlined (holds_for without the contexts, which only some drivers have).
        if (last is not None and now < last.until and last.plain and not last.contexts
                and all(map(operator.is_, values, last.values)) and last.keyset == keys):
            return last.transport
        if last is not None and last.holds_for(values, keys, now):
            return last.transport
        snapshot = _hashable_values(values, frozenset(keys))
        hit = state.entries.get(snapshot) if snapshot is not None else None
        if hit is not None and now < hit.until:
            with self._lock:
                if self._state is state:
                    self._state = _State(state.keys, state.entries, hit)
            return hit.transport
        return self._classify(cargs, cparams)

    def clear(self) -> None:
        """Forget every memoized result (tests; a changed trust store)."""
        with self._lock:
            self._state = _State(self._state.keys, {}, None)

    def _classify(self, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
        recorder = _Recorder(cparams)
        transport = self.classify(cargs, recorder)  # raises for a refusal: never memoized
        if cargs or recorder.sized:
            return transport
        with self._lock:
            state = self._state
            keys, entries = state.keys, dict(state.entries)
            if not recorder.read <= set(keys):
                keys, entries = tuple(sorted(set(keys) | recorder.read)), {}
            values = tuple(cparams.get(key, _ABSENT) for key in keys)
            keyset = frozenset(cparams)
            snapshot = _hashable_values(values, keyset)
            if snapshot is None:
                self._state = _State(keys, entries, None)
                return transport
            if len(entries) >= MAX_ENTRIES:
                entries = {}
            entry = _Verdict(values, keyset, transport, self.clock() + self.recheck_seconds)
            entries[snapshot] = entry
            self._state = _State(keys, entries, entry)
        return transport


def _hashable_values(values: tuple[object, ...],
                     keyset: frozenset[str]) -> tuple[object, ...] | None:
    """``values`` frozen with their exact types, and the key set; ``None`` if a value cannot
    be trusted."""
    kinds = tuple(map(type, values))
    if _PLAIN.issuperset(kinds):
        return (values, kinds, keyset)
    try:
        return (tuple(map(_freeze, values)), kinds, keyset)
    except _Unknown:
        return None
