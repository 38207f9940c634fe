"""CPython's own multiprocessing tests for processes, shared values, pools and shared memory
(`_TestProcess`, `_TestValue`, `_TestArray`, `_TestPool`, `_TestSharedMemory` from
Lib/test/_test_multiprocessing.py), run with every multiprocessing name of the test mixin
replaced by procshare's (`procshare.Process`, `procshare.Value`, `procshare.Pool`, the
queues, locks, pipes, ...) under each start method (fork, spawn, forkserver). For
`_TestSharedMemory`, the test module's `shared_memory` is `procshare.shared_memory` and its
`multiprocessing.managers` is `procshare.managers` (in the children too), so
`SharedMemory`, `ShareableList` and `SharedMemoryManager` are procshare's.

`procshare.Pool` is, for now, CPython's `multiprocessing.pool.Pool` on a procshare context
(procshare's SimpleQueues and locks; see procshare/pool.py).

Tests that do not apply, and why (each is skipped by name below with its reason):
  * _TestSharedMemory.test_shared_memory_cleaned_after_process_termination: a script with
    `from multiprocessing import shared_memory` (CPython's class, not ours) checks that
    Python's resource_tracker warns "leaked shared_memory" after a SIGTERM; procshare's tracker
    emits no such warning. The same scenario with procshare's class (SIGKILL, no warning,
    the segment gone) is in test_shared_memory.py.
  * _TestSharedMemory.test_shared_memory_SharedMemoryManager_reuses_resource_tracker: a script
    runs CPython's own SharedMemoryManager to check it shares the parent's resource_tracker;
    procshare's does not use resource_tracker at all (test_shared_memory.py checks there is
    no warning).

Run: python -m unittest test_cpython_namespace (from crates/procshare-py/tests)
Set PROCSHARE_START_METHODS=fork (comma-separated) to run fewer start methods.
"""

import multiprocessing
import os
import sys
import types
import unittest

import procshare
import procshare.managers
import procshare.shared_memory

try:
    import test._test_multiprocessing as cpython
except ImportError:  # a Python built without its test package
    cpython = None

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]
CLASSES = ("_TestProcess", "_TestValue", "_TestArray", "_TestPool", "_TestSharedMemory")

SKIPS = {
    "test_shared_memory_cleaned_after_process_termination":
        "checks Python's resource_tracker warning for CPython's own SharedMemory in a script; "
        "procshare's tracker gives none (its SIGKILL case is in test_shared_memory.py)",
    "test_shared_memory_SharedMemoryManager_reuses_resource_tracker":
        "checks CPython's own SharedMemoryManager shares the parent's resource_tracker; "
        "procshare's uses none",
}

# The names of ProcessesMixin that procshare provides (everything but `connection`).
NAMES = ("Process", "current_process", "parent_process", "active_children", "set_executable",
         "Pool", "Pipe", "Queue", "JoinableQueue", "Lock", "RLock", "Semaphore",
         "BoundedSemaphore", "Condition", "Event", "Barrier", "Value", "Array", "RawValue",
         "RawArray")


class _Multiprocessing(types.ModuleType):
    """The test module's `multiprocessing` for _TestSharedMemory: the real package, but with
    procshare's `managers` (its SharedMemoryManager)."""

    managers = procshare.managers

    def __getattr__(self, name):
        return getattr(multiprocessing, name)


_SAVED = {}


def _substitute():
    """Makes the CPython test module use procshare's shared_memory and SharedMemoryManager."""
    if not _SAVED:
        _SAVED.update(shared_memory=cpython.shared_memory, multiprocessing=cpython.multiprocessing)
    cpython.shared_memory = procshare.shared_memory
    cpython.multiprocessing = _Multiprocessing("multiprocessing")


def _restore():
    for name, value in _SAVED.items():
        setattr(cpython, name, value)


class SubstitutingProcess(multiprocessing.Process):
    """`Process` for _TestSharedMemory: the child substitutes too before running its target
    (a spawned child imports the CPython test module afresh)."""

    def run(self):
        _substitute()
        super().run()


def _mixin(method, shared_memory):
    attrs = {name: staticmethod(getattr(procshare, name)) for name in NAMES}
    if shared_memory:
        attrs["Process"] = SubstitutingProcess

    @classmethod
    def setUpClass(cls):
        cls._old_method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(method, force=True)
        if shared_memory:
            _substitute()
        cpython.ProcessesMixin.setUpClass.__func__(cls)

    @classmethod
    def tearDownClass(cls):
        cpython.ProcessesMixin.tearDownClass.__func__(cls)
        if shared_memory:
            _restore()
        multiprocessing.set_start_method(cls._old_method, force=True)

    attrs.update(TYPE="processes", setUpClass=setUpClass, tearDownClass=tearDownClass)
    return type("ProcshareMixin", (cpython.ProcessesMixin,), attrs)


if cpython is not None:
    _module = sys.modules[__name__]
    for _method in METHODS:
        for _name in CLASSES:
            _base = getattr(cpython, _name)
            _Mixin = _mixin(_method, _name == "_TestSharedMemory")
            _new = "WithProcshare" + _method.capitalize() + _name[len("_Test"):]
            _attrs = {"__module__": __name__}
            for _test, _why in SKIPS.items():
                if hasattr(_base, _test):
                    _attrs[_test] = unittest.skip(_why)(getattr(_base, _test))
            # Module-level names (and qualnames) so spawn children can unpickle the
            # classmethod targets (`cls.f`) by reference.
            _cls = type(_new, (_base, _Mixin, unittest.TestCase), _attrs)
            _cls.__qualname__ = _new
            setattr(_module, _new, _cls)
    del _module, _method, _Mixin, _name, _base, _new, _cls, _attrs, _test, _why


def setUpModule():
    if cpython is None:
        raise unittest.SkipTest("CPython's test package (test._test_multiprocessing) is missing")


if __name__ == "__main__":
    unittest.main()
