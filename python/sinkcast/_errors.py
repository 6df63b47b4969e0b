"""The exceptions sinkcast raises.

The native module raises these classes (it imports this module), so they can
inherit from the built-in exceptions a caller expects: an unknown id is a
``KeyError``, bad input a ``ValueError``, a call on a closed engine a
``RuntimeError``.
"""

from __future__ import annotations


class SinkcastError(Exception):
    """Base class of every sinkcast error."""


class _MessageKeyError(KeyError):
    # KeyError's str() is the repr of its argument ("'unknown sink'"); show the message itself.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownSinkError(SinkcastError, _MessageKeyError):
    """No sink has this id."""


class UnknownSourceError(SinkcastError, _MessageKeyError):
    """No source has this id."""


class DuplicateIdError(SinkcastError, ValueError):
    """A sink or source with this id already exists."""


class RouteError(SinkcastError, ValueError):
    """The route is already connected, or is not connected."""


class SignalingError(SinkcastError, ValueError):
    """A WebRTC signaling message was malformed, unsupported, too large or out of state."""


class LocalResourceError(SignalingError):
    """A listener could not be opened for a reason on this side, not the peer's:
    the process is out of file descriptors, no port of the range is free, or
    the bind address is no longer this host's. The same message may succeed
    later (a server answers 503, not 400)."""


class NetworkInputError(SinkcastError, OSError, RuntimeError):
    """A network input could not open its socket: the port is in use, the
    address is not this host's, or the multicast group could not be joined.
    An OSError, as socket errors are; also a RuntimeError, which it was before
    it had a class of its own."""


class ClockModeError(SinkcastError, RuntimeError):
    """The call needs the other clock (for example render() on a real-time engine)."""


class EngineClosedError(SinkcastError, RuntimeError):
    """The AudioManager has been shut down."""


__all__ = [
    "SinkcastError",
    "UnknownSinkError",
    "UnknownSourceError",
    "DuplicateIdError",
    "RouteError",
    "SignalingError",
    "LocalResourceError",
    "NetworkInputError",
    "ClockModeError",
    "EngineClosedError",
]
