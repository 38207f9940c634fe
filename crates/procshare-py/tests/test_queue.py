"""procshare's Queue, JoinableQueue, SimpleQueue from Python: multiprocessing's semantics,
the pickling done by the caller, start methods, Ctrl-C and a killed worker."""

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import time
import unittest

import procshare


class Unpicklable:
    def __reduce__(self):
        raise TypeError("refuses to be pickled")


def _put_back(q, jq, sq, conn):
    q.put(("q", os.getpid()))
    jq.put("jq")
    sq.put("sq")
    conn.send("conn")


def _blocked_get(q, ready):
    ready.put("ready")
    try:
        q.get()
    except KeyboardInterrupt:
        os._exit(42)
    os._exit(1)


def _putter(q, blob):
    while True:
        q.put(blob)


class TestQueue(unittest.TestCase):
    def test_put_get_and_exceptions_are_pythons(self):
        q = procshare.Queue(maxsize=2)
        q.put((1, 2, 3))
        q.put_nowait({"a": [None, 1.5]})
        self.assertTrue(q.full())
        self.assertEqual(q.qsize(), 2)
        with self.assertRaises(queue.Full):
            q.put_nowait(3)
        with self.assertRaises(queue.Full):
            q.put(3, timeout=0.05)
        self.assertEqual(q.get(), (1, 2, 3))
        self.assertEqual(q.get_nowait(), {"a": [None, 1.5]})
        with self.assertRaises(queue.Empty):
            q.get_nowait()
        with self.assertRaises(queue.Empty):
            q.get(timeout=0.05)

    def test_put_raises_pickling_errors_and_puts_nothing(self):
        q = procshare.Queue()
        with self.assertRaises(TypeError):
            q.put(Unpicklable())
        with self.assertRaises(TypeError):
            q.put_many([1, Unpicklable()])
        self.assertEqual(q.qsize(), 0)

    def test_close_then_put_or_get_is_value_error(self):
        q = procshare.Queue()
        q.put(1)
        q.close()
        with self.assertRaises(ValueError):
            q.put(2)
        with self.assertRaises(ValueError):
            q.get()
        q.join_thread()
        q.cancel_join_thread()

    def test_put_many_get_many(self):
        q = procshare.Queue()
        q.put_many(range(10))
        self.assertEqual(q.get_many(4), [0, 1, 2, 3])
        self.assertEqual(q.get_many(100), list(range(4, 10)))
        with self.assertRaises(queue.Empty):
            q.get_many(5, timeout=0.05)

    def test_joinable_counts_tasks(self):
        jq = procshare.JoinableQueue()
        self.assertIsInstance(jq, procshare.Queue)
        jq.put(1)
        self.assertFalse(jq.join(timeout=0.05))
        jq.get()
        jq.task_done()
        jq.join()
        with self.assertRaises(ValueError):
            jq.task_done()

    def test_simple_queue_close_is_os_error(self):
        sq = procshare.SimpleQueue()
        self.assertTrue(sq.empty())
        sq.put([1])
        self.assertEqual(sq.get(), [1])
        sq.close()
        with self.assertRaises(OSError):
            sq.put(1)

    def test_shutdown(self):
        q = procshare.Queue()
        q.put(1)
        q.shutdown()
        with self.assertRaises(procshare.ShutDown):
            q.put(2)
        self.assertEqual(q.get(), 1)
        with self.assertRaises(procshare.ShutDown):
            q.get(timeout=5)

    def test_pickling_outside_spawning_is_runtime_error(self):
        for obj in (procshare.Queue(), procshare.JoinableQueue(), procshare.SimpleQueue(), procshare.Pipe()[0]):
            with self.assertRaises(RuntimeError):
                pickle.dumps(obj)

    def test_every_class_passes_to_children_under_every_start_method(self):
        for method in ("fork", "spawn", "forkserver"):
            with self.subTest(method=method):
                ctx = multiprocessing.get_context(method)
                q, jq, sq = procshare.Queue(), procshare.JoinableQueue(), procshare.SimpleQueue()
                a, b = procshare.Pipe()
                p = ctx.Process(target=_put_back, args=(q, jq, sq, b))
                p.start()
                self.assertEqual(q.get(timeout=60)[0], "q")
                self.assertEqual(jq.get(timeout=60), "jq")
                self.assertEqual(sq.get(), "sq")
                self.assertTrue(a.poll(60))
                self.assertEqual(a.recv(), "conn")
                p.join(60)
                self.assertEqual(p.exitcode, 0)

    def test_ctrl_c_interrupts_a_blocked_get(self):
        ctx = multiprocessing.get_context("fork")
        q, ready = procshare.Queue(), procshare.Queue()
        p = ctx.Process(target=_blocked_get, args=(q, ready))
        p.start()
        self.assertEqual(ready.get(timeout=60), "ready")
        time.sleep(0.2)  # let it enter the blocking get (a SIGINT before is also a KeyboardInterrupt)
        os.kill(p.pid, signal.SIGINT)
        p.join(30)
        self.assertEqual(p.exitcode, 42)

    def test_worker_killed_mid_put_leaves_no_torn_item(self):
        ctx = multiprocessing.get_context("fork")
        q = procshare.Queue(maxsize=8)
        blob = bytes(range(256)) * 4096  # 1 MiB, so a kill lands inside a copy
        workers = [ctx.Process(target=_putter, args=(q, blob)) for _ in range(2)]
        for w in workers:
            w.start()
        for _ in range(20):
            self.assertEqual(q.get(timeout=60), blob)
        workers[0].kill()
        workers[0].join(30)
        for _ in range(20):  # the other producer goes on; every item is whole
            self.assertEqual(q.get(timeout=60), blob)
        workers[1].kill()
        workers[1].join(30)
        while True:
            try:
                self.assertEqual(q.get(timeout=0.5), blob)
            except queue.Empty:
                break


if __name__ == "__main__":
    unittest.main()
