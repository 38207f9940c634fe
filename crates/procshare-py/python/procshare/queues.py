"""``multiprocessing.queues`` on procshare: Queue, JoinableQueue, SimpleQueue.

``Queue`` and ``JoinableQueue`` are the extension's (``procshare._procshare``). ``SimpleQueue``
is the extension's queue plus what the stdlib's pools reach into: ``multiprocessing.pool.Pool``
and ``concurrent.futures.ProcessPoolExecutor`` take a context's ``SimpleQueue`` and use

* ``_reader.recv`` / ``_writer.send`` as get and put (``Pool._quick_get``/``_quick_put``, the
  executor's result reader);
* ``_reader`` in ``multiprocessing.connection.wait`` (``Pool._wait_for_updates``, the
  executor's manager thread): it must be a descriptor a selector sees readable while an item
  waits;
* ``_reader.poll()`` and ``_rlock`` (``Pool._help_stuff_finish``), ``_reader.close()`` and
  ``_writer.close()`` in each worker (``multiprocessing.pool.worker``).

The readiness descriptor is an eventfd in semaphore mode that counts the items, and every
get and put goes through it: ``put`` adds one after the item is in the ring, ``get`` takes one
(waiting for it in ``poll``) before it takes an item. So the count never exceeds the items: a
selector that sees it readable finds an item, and ``empty()``/``poll()`` agree with ``get``.

Crash table (a SIGKILL of the process doing the step):
| killed between ...                        | leaves                              | repaired by |
|-------------------------------------------|-------------------------------------|-------------|
| ``put``: the item in the ring, and +1     | an item not counted                 | nobody: ``get`` runs one item behind the ring from then on (the newest item waits for the next put) |
| ``get``: -1, and taking the item          | an item not counted                 | as above    |
| anywhere in the ring's own steps          | see ``procshare.Queue``             | the ring    |
"""

import os
import select
import types
from queue import Empty, Full

from multiprocessing import context as _mp_context
from multiprocessing import reduction as _reduction

from . import _procshare
from ._procshare import JoinableQueue, Queue

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]

# After shutdown() nothing is put any more: the count jumps so that every waiter wakes and
# meets the ring's ShutDown.
_SHUTDOWN_COUNT = 1 << 40


class _End:
    """One end of a SimpleQueue as the stdlib sees it (``_reader`` or ``_writer``): a
    connection-like view on the queue. ``close()`` closes this view in this process only."""

    def __init__(self, queue, readable):
        self._queue = queue
        self._readable = readable
        self._closed = False

    @property
    def readable(self):
        return self._readable

    @property
    def writable(self):
        return not self._readable

    @property
    def closed(self):
        return self._closed

    def _check(self):
        if self._closed:
            raise OSError("handle is closed")

    def fileno(self):
        """The readiness descriptor: readable while an item waits."""
        self._check()
        return self._queue._efd

    def poll(self, timeout=0.0):
        """Whether an item waits (``timeout``: seconds to wait for one; None: forever)."""
        self._check()
        return self._queue._poll(timeout)

    def recv(self):
        self._check()
        return self._queue._take()

    def send(self, obj):
        self._check()
        self._queue._give(obj)

    def close(self):
        if not self._closed:
            self._closed = True
            self._queue._end_closed()

    def __repr__(self):
        kind = "reader" if self._readable else "writer"
        return f"<procshare SimpleQueue {kind}{' (closed)' if self._closed else ''}>"


class SimpleQueue:
    """A small unbounded queue shared by processes (``multiprocessing.SimpleQueue``): put, get,
    empty, close, on procshare's shared-memory ring, with a readiness descriptor the stdlib's
    pools can wait on (see the module docs).

    SimpleQueue(*, ctx=None): ``ctx`` is accepted (``multiprocessing.queues``' keyword) and
    unused. After close(), put and get raise OSError ("handle is closed").
    """

    def __init__(self, *, ctx=None):
        self._setup(_procshare.SimpleQueue(), None)

    def _setup(self, q, efd):
        self._q = q
        if efd is None:
            efd = os.eventfd(0, os.EFD_SEMAPHORE | os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._efd = efd
        self._reader = _End(self, True)
        self._writer = _End(self, False)
        self._rlock_ = None

    # -- the count --------------------------------------------------------------------------

    def _poll(self, timeout=0.0):
        if self._efd < 0:
            raise OSError("handle is closed")
        if timeout is not None and timeout < 0:
            timeout = 0
        r, _, _ = select.select([self._efd], [], [], timeout)
        return bool(r)

    def _take(self):
        while True:
            try:
                os.read(self._efd, 8)
                break
            except BlockingIOError:
                select.select([self._efd], [], [])  # releases the GIL; Ctrl-C interrupts it
        return self._q.get()

    def _give(self, obj):
        self._q.put(obj)
        os.eventfd_write(self._efd, 1)

    def _end_closed(self):
        if self._reader.closed and self._writer.closed:
            self._q.close()
            efd, self._efd = self._efd, -1
            if efd >= 0:
                os.close(efd)

    # -- multiprocessing.SimpleQueue's API ----------------------------------------------------

    def put(self, obj):
        """Pickles obj (pickling errors are raised here) and puts it; never blocks."""
        self._writer._check()
        self._give(obj)

    def get(self):
        """Removes and returns the oldest item, waiting for one (Ctrl-C interrupts the wait)."""
        self._reader._check()
        return self._take()

    def empty(self):
        """Whether no item waits."""
        return not self._poll(0)

    def close(self):
        """This handle can no longer put or get; other handles are unaffected."""
        self._reader.close()
        self._writer.close()

    def shutdown(self, immediate=False):
        """As Queue.shutdown: put raises ShutDown, get drains what is left then raises it."""
        self._q.shutdown(immediate)
        if self._efd >= 0:
            os.eventfd_write(self._efd, _SHUTDOWN_COUNT)

    @property
    def _rlock(self):
        # Only for Pool._help_stuff_finish, which takes it (and never gives it back) while it
        # drains the task queue at terminate(); the ring needs no reader lock, so get() does
        # not take it. Made on first use, in this process only.
        if self._rlock_ is None:
            self._rlock_ = _procshare.Lock()
        return self._rlock_

    def __reduce__(self):
        _mp_context.assert_spawning(self)
        return _rebuild_simple_queue, (self._q, _reduction.DupFd(self._efd))

    def __del__(self):
        efd = getattr(self, "_efd", -1)
        if efd >= 0:
            self._efd = -1
            os.close(efd)

    def __repr__(self):
        return f"<procshare.SimpleQueue at {id(self):#x}>"

    __class_getitem__ = classmethod(types.GenericAlias)


def _rebuild_simple_queue(q, dupfd):
    sq = SimpleQueue.__new__(SimpleQueue)
    sq._setup(q, dupfd.detach())
    return sq
