"""CPython's own multiprocessing tests for processes, shared values, pools and shared memory
(`_TestProcess`, `_TestValue`, `_TestArray`, `_TestSharedCTypes`, `_TestPool`,
`_TestSharedMemory` and `TestSimpleQueue` from Lib/test/_test_multiprocessing.py), run with
every multiprocessing name of the test mixin replaced by procshare's (`procshare.Process`,
`procshare.Value`, `procshare.Pool`, the queues, locks, pipes, ...) under each start method
(fork, spawn, forkserver). Where a test reads a name of the CPython test module itself rather
than the mixin's, that name is substituted while the class runs: for `_TestSharedMemory` the
module's `shared_memory` is `procshare.shared_memory` and its `multiprocessing.managers` is
`procshare.managers` (in the children too), so `SharedMemory`, `ShareableList` and
`SharedMemoryManager` are procshare's; for `_TestSharedCTypes` its `Value` and `copy` are
procshare's; for `TestSimpleQueue` its `multiprocessing.SimpleQueue`, `Event` and `Process`.

`procshare.Pool` is procshare's own, on the Rust pool core (procshare/pool.py); `_TestPool`
runs against it whole, nothing skipped.

`_TestListener`, `_TestListenerClient` and `_TestPoll` run with the mixin's `connection` being
`procshare.connection` (procshare's Listener, Client, wait and Pipe).

Tests that do not apply, and why (each is skipped by name below with its reason):
  * _TestListener.test_abstract_socket: it listens on a Linux abstract socket name
    (one starting with a NUL byte); procshare's Listener binds filesystem paths and TCP addresses only.
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
import procshare.connection
import procshare.managers
import procshare.shared_memory
import procshare.sharedctypes

try:
    import test._test_multiprocessing as cpython
except ImportError:  # a Python built without its test package
    cpython = None

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]
CLASSES = ("_TestProcess", "_TestValue", "_TestArray", "_TestSharedCTypes", "_TestPool",
           "_TestSharedMemory", "_TestListener", "_TestListenerClient", "_TestPoll")
# unittest.TestCase classes of their own (no mixin): their module-level names are substituted.
PLAIN_CLASSES = ("TestSimpleQueue",)

SKIPS = {
    "test_abstract_socket":
        "a Linux abstract socket name (a leading NUL byte): procshare's Listener binds paths only",
    "test_shared_memory_cleaned_after_process_termination":
        "checks Python's resource_tracker warning for CPython's own SharedMemory in a script; "
        "procshare's tracker gives none (its SIGKILL case is in test_shared_memory.py)",
    "test_shared_memory_SharedMemoryManager_reuses_resource_tracker":
        "checks CPython's own SharedMemoryManager shares the parent's resource_tracker; "
        "procshare's uses none",
}

# The names of ProcessesMixin that procshare provides (and `connection`, procshare.connection).
NAMES = ("Process", "current_process", "parent_process", "active_children", "set_executable",
         "Pool", "Pipe", "Queue", "JoinableQueue", "Lock", "RLock", "Semaphore",
         "BoundedSemaphore", "Condition", "Event", "Barrier", "Value", "Array", "RawValue",
         "RawArray")


class _Multiprocessing(types.ModuleType):
    """A stand-in for the test module's `multiprocessing`: the real package, with some names
    procshare's."""

    def __init__(self, **names):
        super().__init__("multiprocessing")
        self.__dict__.update(names)

    def __getattr__(self, name):
        return getattr(multiprocessing, name)


def _substitutions(name):
    """The CPython test module's globals that `name`'s tests read directly (not through the
    mixin), and procshare's for them."""
    if name == "_TestSharedMemory":
        return {"shared_memory": procshare.shared_memory,
                "multiprocessing": _Multiprocessing(managers=procshare.managers)}
    if name == "_TestSharedCTypes":
        return {"Value": procshare.Value, "copy": procshare.sharedctypes.copy}
    if name == "TestSimpleQueue":
        return {"multiprocessing": _Multiprocessing(
            SimpleQueue=procshare.SimpleQueue, Event=procshare.Event, Process=procshare.Process)}
    return {}


_SAVED = {}


def _substitute(names):
    for key, value in names.items():
        _SAVED.setdefault(key, getattr(cpython, key))
        setattr(cpython, key, value)


def _restore():
    for key, value in _SAVED.items():
        setattr(cpython, key, value)
    _SAVED.clear()


class SharedMemoryProcess(multiprocessing.Process):
    """`Process` for _TestSharedMemory: the child substitutes too before running its target
    (a spawned child imports the CPython test module afresh, and its targets call
    `shared_memory.SharedMemory` themselves)."""

    def run(self):
        _substitute(_substitutions("_TestSharedMemory"))
        super().run()


def _mixin(method, name):
    attrs = {n: staticmethod(getattr(procshare, n)) for n in NAMES}
    attrs["connection"] = procshare.connection
    if name == "_TestSharedMemory":
        attrs["Process"] = SharedMemoryProcess
    return type("ProcshareMixin", (cpython.ProcessesMixin,), dict(attrs, TYPE="processes"))


def _start_method_and_globals(method, name, base):
    """setUpClass/tearDownClass: the class's start method is the global one while it runs, and
    the test module's globals are substituted."""

    @classmethod
    def setUpClass(cls):
        cls._old_method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(method, force=True)
        _substitute(_substitutions(name))
        super(cls, cls).setUpClass()

    @classmethod
    def tearDownClass(cls):
        super(cls, cls).tearDownClass()
        _restore()
        multiprocessing.set_start_method(cls._old_method, force=True)

    return {"setUpClass": setUpClass, "tearDownClass": tearDownClass}


if cpython is not None:
    _module = sys.modules[__name__]
    for _method in METHODS:
        for _name in CLASSES + PLAIN_CLASSES:
            _base = getattr(cpython, _name)
            _new = "WithProcshare" + _method.capitalize() + _name.lstrip("_")[len("Test"):]
            _attrs = {"__module__": __name__}
            _attrs.update(_start_method_and_globals(_method, _name, _base))
            for _test, _why in SKIPS.items():
                if hasattr(_base, _test):
                    _attrs[_test] = unittest.skip(_why)(getattr(_base, _test))
            _bases = (_base, unittest.TestCase) if _name in PLAIN_CLASSES else \
                (_base, _mixin(_method, _name), unittest.TestCase)
            # Module-level names (and qualnames) so spawn children can unpickle the
            # classmethod targets (`cls.f`) by reference.
            _cls = type(_new, _bases, _attrs)
            _cls.__qualname__ = _new
            setattr(_module, _new, _cls)
    del _module, _method, _name, _base, _new, _cls, _attrs, _test, _why, _bases


def setUpModule():
    if cpython is None:
        raise unittest.SkipTest("CPython's test package (test._test_multiprocessing) is missing")


if __name__ == "__main__":
    unittest.main()
