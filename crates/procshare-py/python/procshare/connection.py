"""``multiprocessing.connection`` for procshare: ``Pipe`` and ``Connection`` are procshare's
(shared-memory rings), ``Listener`` and ``Client`` are procshare's sockets with CPython's wire
format and authkey handshake (either side may be CPython's), and ``wait`` waits on procshare
Connections and anything CPython's ``wait`` accepts (sockets, its Connections,
``Process.sentinel``, objects with ``fileno()``). Every other name is CPython's.

``Listener``/``Client`` take CPython's arguments and infer the family as CPython does
(``address_type``, ``arbitrary_address``). What differs: ``backlog`` is the system's default;
``last_accepted`` is None (the peer's address is not kept); ``AF_INET`` host names are
resolved once, at the call; a Linux abstract socket name is not supported.
"""

import socket
import time
from multiprocessing import connection as _mp_connection

from . import _procshare
from ._procshare import Connection, Pipe, _wait

__all__ = ["Client", "Listener", "Pipe", "wait", "Connection"]

# With both kinds in one wait, each kind is looked at in turn for this long.
_MIXED_SLICE = 0.02


def wait(object_list, timeout=None):
    """Wait until one or more of the objects in object_list is ready to read.

    Returns the list of those that are ready (a message, or end-of-file), waiting up to
    timeout seconds (None: until one is); an empty list when the timeout ran out. Ctrl-C
    interrupts the wait.
    """
    objects = list(object_list)
    ours = [o for o in objects if isinstance(o, Connection)]
    others = [o for o in objects if not isinstance(o, Connection)]
    if not others:
        return _wait(ours, timeout)
    if not ours:
        return _mp_connection.wait(others, timeout)
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    while True:
        ready = _wait(ours, 0)
        left = None if deadline is None else deadline - time.monotonic()
        step = _MIXED_SLICE if left is None else max(min(_MIXED_SLICE, left), 0)
        ready += _mp_connection.wait(others, 0 if ready else step)
        if ready or (deadline is not None and time.monotonic() >= deadline):
            return [o for o in objects if o in ready]


def _address(address, family):
    """``(kind, text)`` for the extension, and the family, checked as CPython checks it."""
    family = family or (address and _mp_connection.address_type(address)) \
        or _mp_connection.default_family
    address = address or _mp_connection.arbitrary_address(family)
    _mp_connection._validate_family(family)
    if family == "AF_INET":
        host, port = address
        ip, port = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        return ("tcp", f"{ip}:{port}"), family
    if family == "AF_UNIX":
        return ("unix", address), family
    raise ValueError("Family %s is not recognized." % family)


def _check_authkey(authkey):
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")


class Listener:
    """A bound socket listening for connections (``multiprocessing.connection.Listener``).

    Listener(address=None, family=None, backlog=1, authkey=None): ``accept()`` returns a
    procshare ``Connection`` once the peer passed the authkey handshake (AuthenticationError
    if it had the wrong key); Ctrl-C interrupts the wait.
    """

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        (kind, text), self._family = _address(address, family)
        _check_authkey(authkey)
        self._listener = _procshare._Listener(kind, text, authkey)

    def accept(self):
        """Accept a connection on the bound socket; returns a ``Connection``."""
        listener = self._listener
        if listener is None:
            raise OSError("listener is closed")
        return listener.accept()

    def close(self):
        """Close the bound socket (a Unix socket's file is removed)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    @property
    def address(self):
        if self._listener is None:
            raise OSError("listener is closed")
        kind, text = self._listener.address()
        if kind == "tcp":
            host, port = text.rsplit(":", 1)
            return (host, int(port))
        return text

    @property
    def last_accepted(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address, family=None, authkey=None):
    """A ``Connection`` to the listener at ``address`` (``multiprocessing.connection.Client``),
    after the authkey handshake when ``authkey`` is given."""
    (kind, text), _ = _address(address, family)
    _check_authkey(authkey)
    return _procshare._connect(kind, text, authkey)


def __getattr__(name):
    return getattr(_mp_connection, name)
