"""CPython's own multiprocessing tests for the synchronisation primitives (`_TestLock`,
`_TestSemaphore`, `_TestCondition`, `_TestEvent`, `_TestBarrier` from
Lib/test/_test_multiprocessing.py), run against procshare's classes by a mixin that
substitutes them, under each start method (fork, spawn, forkserver).

Everything else the tests use (Process, Queue, Pipe, Value, the DummyList helper) stays
multiprocessing's, started with the class's start method.

Tests that do not apply, and why (each is skipped by name below with its reason):
  * _TestCondition.check_invariant is not a test but a helper that reads multiprocessing's
    private semaphores (`_sleeping_count`, `_woken_count`, `_wait_semaphore`); it is replaced
    by the same invariant on procshare's waiter table ("nobody is left waiting").
No test is skipped outright: every _TestLock, _TestSemaphore, _TestCondition, _TestEvent and
_TestBarrier test runs.

Run: python -m unittest discover -s crates/procshare-py/tests -p 'test_cpython_sync.py'
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
CLASSES = ("_TestLock", "_TestSemaphore", "_TestCondition", "_TestEvent", "_TestBarrier")


def _mixin(method):
    class ProcshareMixin(cpython.ProcessesMixin):
        """multiprocessing's ProcessesMixin with procshare's synchronisation classes; the
        class's start method is the global one while it runs (CPython's helpers, such as
        DummyList, make multiprocessing objects in the default context)."""

        TYPE = "processes"
        Lock = staticmethod(procshare.Lock)
        RLock = staticmethod(procshare.RLock)
        Semaphore = staticmethod(procshare.Semaphore)
        BoundedSemaphore = staticmethod(procshare.BoundedSemaphore)
        Condition = staticmethod(procshare.Condition)
        Event = staticmethod(procshare.Event)
        Barrier = staticmethod(procshare.Barrier)

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


def _check_invariant(self, cond):
    # CPython's reads multiprocessing's private semaphores; the same invariant here: no waiter
    # is left in the table once every waiter returned.
    self.assertEqual(cond._waiting(), 0)


if cpython is not None:
    _module = sys.modules[__name__]
    for _method in METHODS:
        _Mixin = _mixin(_method)
        for _name in CLASSES:
            _base = getattr(cpython, _name)
            _new = "WithProcshare" + _method.capitalize() + _name[len("_Test"):]
            # Module-level names (and qualnames) so spawn children can unpickle the
            # classmethod targets (`cls.f`) by reference.
            _cls = type(_new, (_base, _Mixin, unittest.TestCase), {"__module__": __name__})
            if _name == "_TestCondition":
                # Defined on the test class itself: the mixin comes after it in the MRO.
                _cls.check_invariant = _check_invariant
            _cls.__qualname__ = _new
            setattr(_module, _new, _cls)
    del _module, _method, _Mixin, _name, _base, _new, _cls


def setUpModule():
    if cpython is None:
        raise unittest.SkipTest("CPython's test package (test._test_multiprocessing) is missing")


if __name__ == "__main__":
    unittest.main()
