"""`import procshare as multiprocessing`: the namespace, the contexts, the stdlib's pools on a
procshare context, and Value/Array/RawValue/RawArray, under fork, spawn and forkserver.

Run: python -m unittest test_namespace (from crates/procshare-py/tests)
"""

import concurrent.futures
import ctypes
import importlib
import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import os
import selectors
import sys
import unittest

import procshare
import procshare.sharedctypes
from _support import LONG, join

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]

# The multiprocessing submodules a program imports (`from multiprocessing import X`).
SUBMODULES = ("connection", "context", "dummy", "heap", "managers", "pool", "process", "queues",
              "reduction", "resource_sharer", "resource_tracker", "shared_memory",
              "sharedctypes", "spawn", "synchronize", "util")
OURS = {"connection", "context", "managers", "pool", "queues", "shared_memory", "sharedctypes",
        "synchronize"}


def _square(x):
    return x * x


def _add_to(value, array, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    with array.get_lock():
        for i in range(len(array)):
            array[i] += i


def _raw_set(raw_value, raw_array, text):
    raw_value.value = 2.5
    raw_array[:] = [7] * len(raw_array)
    text.value = b"child"


def _blocked(what, ready):
    """Blocks in a SimpleQueue get or a Listener accept; exits 42 on KeyboardInterrupt."""
    import procshare.connection
    if what == "get":
        obj = procshare.SimpleQueue()
        call = obj.get
    else:
        obj = procshare.connection.Listener(("localhost", 0))
        call = obj.accept
    ready.put("ready")
    try:
        call()
    except KeyboardInterrupt:
        os._exit(42)
    os._exit(1)


class _Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]


def _move(point):
    with point.get_lock():
        point.x += 1
        point.y *= 2


class TestNames(unittest.TestCase):
    def test_every_multiprocessing_name_imports(self):
        for name in multiprocessing.__all__:
            with self.subTest(name=name):
                ns = {}
                exec(f"from procshare import {name}", ns)
                self.assertIn(name, ns)

    def test_every_submodule_imports(self):
        for name in SUBMODULES:
            with self.subTest(name=name):
                ns = {}
                exec(f"from procshare import {name}", ns)
                mod = ns[name]
                if name in OURS:
                    self.assertEqual(mod.__name__, "procshare." + name)
                    self.assertIs(importlib.import_module("procshare." + name), mod)
                else:
                    self.assertIs(mod, importlib.import_module("multiprocessing." + name))

    def test_submodule_names(self):
        import procshare.connection, procshare.managers, procshare.pool, procshare.queues
        import procshare.shared_memory, procshare.synchronize
        for mod in (procshare.connection, procshare.pool, procshare.queues, procshare.synchronize,
                    procshare.shared_memory, procshare.sharedctypes, procshare.managers):
            for name in mod.__all__:
                self.assertTrue(hasattr(mod, name), f"{mod.__name__}.{name}")
        self.assertIs(procshare.pool.ThreadPool, multiprocessing.pool.ThreadPool)
        self.assertIsInstance(procshare.connection.Pipe()[0], procshare.connection.Connection)
        self.assertTrue(issubclass(procshare.managers.SharedMemoryManager,
                                   multiprocessing.managers.SharedMemoryManager))

    def test_import_fixes_no_start_method(self):
        import subprocess
        out = subprocess.run(
            [sys.executable, "-c", "import procshare, multiprocessing; "
             "print(multiprocessing.get_start_method(allow_none=True))"],
            capture_output=True, text=True, timeout=LONG)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "None\n", ""))

    def test_procshare_objects_and_cpython_passthrough(self):
        self.assertIs(procshare.Process, multiprocessing.Process)
        self.assertIs(procshare.current_process, multiprocessing.current_process)
        self.assertIs(procshare.ProcessError, multiprocessing.ProcessError)
        self.assertIs(procshare.TimeoutError, multiprocessing.TimeoutError)
        self.assertIs(procshare.BufferTooShort, multiprocessing.BufferTooShort)
        self.assertIs(procshare.reducer, multiprocessing.reducer)
        self.assertEqual(procshare.cpu_count(), multiprocessing.cpu_count())
        self.assertIsInstance(procshare.Queue(), procshare.queues.Queue)
        self.assertIsInstance(procshare.SimpleQueue(), procshare.queues.SimpleQueue)
        self.assertIsInstance(procshare.Lock(), procshare.synchronize.Lock)
        self.assertIsInstance(procshare.Pipe()[0], procshare.Connection)
        self.assertIsInstance(procshare.Value("i", 1).get_lock(), procshare.RLock)
        self.assertTrue(hasattr(procshare.Queue, "open"))  # the factory is the class


class TestContexts(unittest.TestCase):
    def setUp(self):
        self._old = multiprocessing.get_start_method(allow_none=True)
        self.addCleanup(multiprocessing.set_start_method, self._old, force=True)

    def test_contexts_are_cpythons(self):
        base = multiprocessing.context.BaseContext
        self.assertIsInstance(procshare.context._default_context, multiprocessing.context.DefaultContext)
        for method, cls in (("fork", multiprocessing.context.ForkContext),
                            ("spawn", multiprocessing.context.SpawnContext),
                            ("forkserver", multiprocessing.context.ForkServerContext)):
            ctx = procshare.get_context(method)
            self.assertIsInstance(ctx, base)
            self.assertIsInstance(ctx, cls)
            self.assertIsInstance(ctx, procshare.context.BaseContext)
            self.assertEqual(ctx.get_start_method(), method)
            self.assertIs(ctx.Process, multiprocessing.get_context(method).Process)
            self.assertIs(ctx.get_context(), ctx)
            self.assertIs(procshare.get_context(method), ctx)
            self.assertIsInstance(ctx.Queue(), procshare.queues.Queue)
            self.assertIsInstance(ctx.Lock(), procshare.synchronize.Lock)
        with self.assertRaises(ValueError):
            procshare.get_context("nosuchmethod")

    def test_one_start_method_setting(self):
        procshare.set_start_method("spawn", force=True)
        self.assertEqual(multiprocessing.get_start_method(), "spawn")
        self.assertIs(procshare.get_context(), procshare.get_context("spawn"))
        multiprocessing.set_start_method("forkserver", force=True)
        self.assertEqual(procshare.get_start_method(), "forkserver")
        self.assertIs(procshare.get_context(), procshare.get_context("forkserver"))
        with self.assertRaises(RuntimeError):
            procshare.set_start_method("fork")  # already set, as CPython's
        procshare.set_start_method(None, force=True)
        self.assertIsNone(multiprocessing.get_start_method(allow_none=True))
        self.assertEqual(procshare.get_all_start_methods(), multiprocessing.get_all_start_methods())


class TestStdlibTakesOurContext(unittest.TestCase):
    def test_process_pool_executor(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
                    self.assertEqual(list(ex.map(_square, range(20), chunksize=3)),
                                     [x * x for x in range(20)])
                    self.assertEqual(ex.submit(_square, 12).result(LONG), 144)
                    self.assertIsInstance(ex._result_queue, procshare.queues.SimpleQueue)

    def test_multiprocessing_pool_with_our_context(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                with multiprocessing.pool.Pool(2, context=ctx, maxtasksperchild=5) as pool:
                    self.assertIsInstance(pool._inqueue, procshare.queues.SimpleQueue)
                    self.assertEqual(pool.map(_square, range(50)), [x * x for x in range(50)])
                    self.assertEqual(sorted(pool.imap_unordered(_square, range(30))),
                                     [x * x for x in range(30)])
                    self.assertEqual(pool.apply_async(_square, (9,)).get(LONG), 81)
                pool.join()

    def test_procshare_pool_terminate_and_join(self):
        for method in METHODS:
            with self.subTest(method=method):
                pool = procshare.get_context(method).Pool(2)
                self.assertIsInstance(pool, multiprocessing.pool.Pool)
                self.assertEqual(pool.starmap(pow, [(2, 3), (3, 2)]), [8, 9])
                pool.terminate()
                pool.join()


class TestSimpleQueueReadiness(unittest.TestCase):
    def test_selector_sees_items(self):
        q = procshare.SimpleQueue()
        with selectors.DefaultSelector() as sel:
            sel.register(q._reader, selectors.EVENT_READ)
            self.assertEqual(sel.select(0), [])
            q.put(1)
            q._writer.send(2)
            self.assertEqual(len(sel.select(LONG)), 1)
            self.assertFalse(q.empty())
            self.assertEqual(q._reader.recv(), 1)
            self.assertTrue(q._reader.poll())
            self.assertEqual(q.get(), 2)
            self.assertEqual(sel.select(0), [])
            self.assertTrue(q.empty())

    def test_multiprocessing_wait_and_closed_ends(self):
        q = procshare.SimpleQueue()
        self.assertEqual(multiprocessing.connection.wait([q._reader], 0), [])
        q.put("x")
        self.assertEqual(multiprocessing.connection.wait([q._reader], LONG), [q._reader])
        q._writer.close()  # this view only, as a Pool worker does
        with self.assertRaises(OSError):
            q.put("y")
        self.assertEqual(q.get(), "x")
        q.close()
        with self.assertRaises(OSError):
            q.get()


class TestCtrlC(unittest.TestCase):
    def test_interrupts_simple_queue_get_and_accept(self):
        import signal
        import time
        ctx = procshare.get_context("fork")
        for what in ("get", "accept"):
            with self.subTest(what=what):
                ready = procshare.Queue()
                p = ctx.Process(target=_blocked, args=(what, ready))
                p.start()
                self.assertEqual(ready.get(timeout=LONG), "ready")
                time.sleep(0.2)  # into the wait (a SIGINT before it is a KeyboardInterrupt too)
                os.kill(p.pid, signal.SIGINT)
                self.assertEqual(join(p), 42)


class TestSharedCtypes(unittest.TestCase):
    def test_value_array_across_start_methods(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                v, a = ctx.Value("q", 0), ctx.Array("i", 4)
                kids = [ctx.Process(target=_add_to, args=(v, a, 200)) for _ in range(3)]
                for k in kids:
                    k.start()
                self.assertEqual([join(k) for k in kids], [0, 0, 0])
                self.assertEqual(v.value, 600)
                self.assertEqual(a[:], [0, 3, 6, 9])

    def test_raw_and_strings_across_start_methods(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                rv, ra = ctx.RawValue("d", 1.0), ctx.RawArray(ctypes.c_short, [1, 2, 3])
                text = ctx.Array("c", b"parent!")
                k = ctx.Process(target=_raw_set, args=(rv, ra, text))
                k.start()
                self.assertEqual(join(k), 0)
                self.assertEqual((rv.value, ra[:], text.value), (2.5, [7, 7, 7], b"child"))
                self.assertEqual(text.raw, b"child\x00!")

    def test_structure(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                p = ctx.Value(_Point, 1, 1.5)
                k = ctx.Process(target=_move, args=(p,))
                k.start()
                self.assertEqual(join(k), 0)
                self.assertEqual((p.x, p.y), (2, 3.0))

    def test_locks(self):
        v = procshare.Value("i", 5)
        self.assertIsInstance(v.get_lock(), procshare.RLock)
        with v:  # the RLock, re-entrant
            with v.get_lock():
                v.value += 1
        self.assertEqual(v.get_obj().value, 6)
        lock = procshare.Lock()
        self.assertIs(procshare.Array("d", 3, lock=lock).get_lock(), lock)
        raw = procshare.Value("i", 5, lock=False)
        self.assertIsInstance(raw, ctypes.c_int)
        with self.assertRaises(AttributeError):
            procshare.Value("i", 5, lock="notalock")

    def test_slices_and_copy(self):
        a = procshare.Array("i", range(10))
        self.assertEqual(a[2:5], [2, 3, 4])
        a[::2] = [0] * 5
        self.assertEqual(list(a), [0, 1, 0, 3, 0, 5, 0, 7, 0, 9])
        self.assertEqual(len(a), 10)
        c = procshare.sharedctypes.copy(a.get_obj())
        c[1] = 100
        self.assertEqual((a[1], c[1]), (1, 100))

    def test_pickling_outside_spawning_is_refused(self):
        import pickle
        with self.assertRaises(RuntimeError):  # CPython's SynchronizedBase.__reduce__
            pickle.dumps(procshare.Value("i", 1))
        with self.assertRaises(TypeError):  # as CPython's RawValue: only multiprocessing's pickler
            pickle.dumps(procshare.RawValue("i", 1))

    def test_many_values_share_arenas(self):
        # CPython's heap carves them from a few arenas: not a mapping (or descriptor) each.
        values = [procshare.RawValue("i", i) for i in range(2000)]
        arenas = {id(v._wrapper._state[0][0]) for v in values}
        self.assertLess(len(arenas), 10)
        self.assertEqual(sum(v.value for v in values), sum(range(2000)))
        del values
        again = procshare.RawArray("q", 64)  # a freed block comes back zeroed
        self.assertEqual(list(again), [0] * 64)


if __name__ == "__main__":
    unittest.main()
