"""What a driver's final arguments mean for the token: :class:`Transport`, and the refusal.

Its own module so that ``memo`` (which caches a row's verdict) and the driver rows import
it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from .errors import InsecureConnectionError

__all__ = ["Classify", "Transport", "refuse"]

Classify = Callable[[Sequence[Any], Mapping[str, Any]], "Transport"]
"""A row's check of the final ``(cargs, cparams)``: their :class:`Transport`, or it raises."""


class Transport(tuple[bool, "str | None", bool, bool, "str | None"]):
    """What a driver's final arguments mean for where the token can go.

    The token is sent only when ``encrypted`` and ``tcp``, ``roots`` names what verifies
    the chain, and either ``hostname_checked`` or ``chain_only_by`` names the explicit
    setting that chose chain-only verification (``iam_tls=verify-ca`` and its equivalents).
    An immutable tuple written out by hand: a ``NamedTuple`` or a frozen dataclass costs
    every cold start 0.2 to 0.5 ms to build (issue 16).
    """

    __slots__ = ()

    def __new__(cls, encrypted: bool, roots: str | None, hostname_checked: bool, tcp: bool,
                chain_only_by: str | None = None) -> Transport:
        return tuple.__new__(cls, (encrypted, roots, hostname_checked, tcp, chain_only_by))

    @property
    def encrypted(self) -> bool:
        return self[0]

    @property
    def roots(self) -> str | None:
        return self[1]

    @property
    def hostname_checked(self) -> bool:
        return self[2]

    @property
    def tcp(self) -> bool:
        return self[3]

    @property
    def chain_only_by(self) -> str | None:
        return self[4]

    def __repr__(self) -> str:
        return ("Transport(encrypted={!r}, roots={!r}, hostname_checked={!r}, tcp={!r}, "
                "chain_only_by={!r})".format(*self))

    def require_verified(self) -> Transport:
        """``self`` if the token may be sent this way; else raise, saying what is missing."""
        if not self.tcp:
            refuse("the connection", "does not go over TCP", "connect to the RDS endpoint")
        if not self.encrypted or not self.roots:
            refuse("the connection", "is not verified TLS", "remove the TLS setting")
        if not self.hostname_checked and not self.chain_only_by:
            refuse("the connection", "does not check the server's name",
                   "use iam_tls=verify-ca to choose chain-only verification explicitly")
        return self


def refuse(setting: str, why: str, fix: str) -> NoReturn:
    """Raise the refusal every driver check uses: which setting, why, and what to write."""
    raise InsecureConnectionError(
        f"refusing to send an IAM token without verified TLS: {setting} {why}; {fix}"
    )
