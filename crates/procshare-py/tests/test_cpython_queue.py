"""CPython's own multiprocessing tests for the queues and connections (`_TestQueue` and the
`_TestConnection` cases that apply, from Lib/test/_test_multiprocessing.py), run against
procshare's classes by a mixin that substitutes Queue, JoinableQueue and Pipe, under each
start method (fork, spawn, forkserver).

Tests that do not apply, and why (each is skipped by name below with its reason):
  * _TestQueue.test_queue_feeder_donot_stop_onexc, test_queue_feeder_on_queue_feeder_error:
    they test the feeder thread's handling of pickling errors (`_on_queue_feeder_error`,
    a subclass of multiprocessing.queues.Queue); procshare has no feeder thread: `put`
    pickles in the caller and raises the error itself (tested in test_queue.py).
  * _TestQueue.test_no_import_lock_contention: it imports a module that puts on a Queue
    while the import lock is held, to check the feeder thread does not need it; there is no
    feeder thread (and it writes a file into the test's current directory).
  * _TestConnection.test_spawn_close: it passes a connection to a child through
    multiprocessing's own Process arguments with its `send_handle`/fd juggling on the
    closed end; procshare connections are passed by DupFd (tested in test_connection.py).
  * _TestConnection.test_sendbytes: it checks `send_bytes(arr, offset, size)` counts offset
    and size in items of an array.array('i') for 3.11's fast path; procshare counts bytes,
    as 3.11's documented behaviour for buffers of items larger than a byte.
  * _TestConnection.test_fd_transfer, test_large_fd_transfer, test_missing_fd_transfer:
    they use multiprocessing.reduction.send_handle/recv_handle on `conn.fileno()` (fd passing
    over a Unix socket Connection); procshare's fileno() is a descriptor for polling, not a
    socket to send descriptors over.
Both classes run under every start method. (_TestConnection used to hang under spawn and
forkserver: a Connection exported for a spawned child kept its descriptor duplicates for the
object's lifetime, so after `child_conn.close()` the parent itself still held the child's end
and `conn.recv()` waited for an end-of-file that could never come. close() now closes them.)

Run: python -m unittest discover -s crates/procshare-py/tests -p 'test_cpython_queue.py'
Set PROCSHARE_START_METHODS=fork (comma-separated) to run fewer start methods.
"""

import multiprocessing
import os
import sys
import unittest

import procshare

try:
    import test._test_multiprocessing as cpython
except ImportError:  # a Python built without its test package
    cpython = None

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]
CLASSES = ("_TestQueue", "_TestConnection")

SKIPS = {
    "test_queue_feeder_donot_stop_onexc": "tests the feeder thread; procshare has none (put pickles in the caller)",
    "test_queue_feeder_on_queue_feeder_error": "tests the feeder thread's error hook; procshare has none",
    "test_no_import_lock_contention": "tests the feeder thread and the import lock; procshare has no feeder thread",
    "test_spawn_close": "relies on multiprocessing's own connection handle passing on a closed end",
    "test_sendbytes": "counts offset/size in array items; procshare counts bytes",
    "test_fd_transfer": "sends descriptors over conn.fileno() with reduction.send_handle",
    "test_large_fd_transfer": "sends descriptors over conn.fileno() with reduction.send_handle",
    "test_missing_fd_transfer": "sends descriptors over conn.fileno() with reduction.send_handle",
}


def _pipe(duplex=True):
    return procshare.Pipe(duplex)


def _mixin(method):
    class ProcshareMixin(cpython.ProcessesMixin):
        """multiprocessing's ProcessesMixin with procshare's queues and pipes; the class's
        start method is the global one while it runs."""

        TYPE = "processes"
        Queue = staticmethod(procshare.Queue)
        JoinableQueue = staticmethod(procshare.JoinableQueue)
        Pipe = staticmethod(_pipe)

        @classmethod
        def setUpClass(cls):
            cls._old_method = multiprocessing.get_start_method(allow_none=True)
            multiprocessing.set_start_method(method, force=True)
            super().setUpClass()

        @classmethod
        def tearDownClass(cls):
            super().tearDownClass()
            multiprocessing.set_start_method(cls._old_method, force=True)

    return ProcshareMixin


if cpython is not None:
    _module = sys.modules[__name__]
    for _method in METHODS:
        _Mixin = _mixin(_method)
        for _name in CLASSES:
            _base = getattr(cpython, _name)
            _new = "WithProcshare" + _method.capitalize() + _name[len("_Test"):]
            _attrs = {"__module__": __name__}
            for _test, _why in SKIPS.items():
                if hasattr(_base, _test):
                    _attrs[_test] = unittest.skip(_why)(getattr(_base, _test))
            _cls = type(_new, (_base, _Mixin, unittest.TestCase), _attrs)
            _cls.__qualname__ = _new
            setattr(_module, _new, _cls)
    del _module, _method, _Mixin, _name, _base, _new, _cls, _attrs, _test, _why


def setUpModule():
    if cpython is None:
        raise unittest.SkipTest("CPython's test package (test._test_multiprocessing) is missing")


if __name__ == "__main__":
    unittest.main()
