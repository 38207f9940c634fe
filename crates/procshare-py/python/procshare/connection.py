"""``multiprocessing.connection`` for procshare: ``Pipe`` and ``Connection`` are procshare's
(shared-memory rings), ``wait`` waits on procshare Connections and anything CPython's ``wait``
accepts (sockets, its Connections, ``Process.sentinel``, objects with ``fileno()``).

``Listener`` and ``Client`` are CPython's for now (their connections are CPython's
``Connection``\\ s, over a socket); the Rust crate's ``Listener``/``connect`` speak the same
wire format and handshake, and will take their place. Every other name is CPython's.
"""

import time
from multiprocessing import connection as _mp_connection
from multiprocessing.connection import Client, Listener

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


def __getattr__(name):
    return getattr(_mp_connection, name)
