"""procshare.shared_memory and procshare.managers.SharedMemoryManager: CPython's classes on
procshare segments, with procshare's tracker instead of Python's resource_tracker.

Run: python -m unittest test_shared_memory (from crates/procshare-py/tests)
"""

import multiprocessing
import multiprocessing.resource_tracker
import multiprocessing.shared_memory as cpython_shm
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

import procshare
from procshare import shared_memory
from procshare.managers import SharedMemoryManager
from _support import LONG, join

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]


def _exists(name):
    # A look at the name, not an open: opening makes this process a user, which keeps the
    # segment for the rest of its life (procshare's rule, as Python's).
    return os.path.exists(os.path.join("/dev/shm", name))


def _wait_gone(name, timeout=LONG):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _exists(name):
            return True
        time.sleep(0.05)
    return False


def _script(code):
    """Runs `code` in a fresh interpreter that finds this procshare; (stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=LONG)
    return r.returncode, r.stdout, r.stderr


def _child_writes(shm, name, sl_name):
    other = shared_memory.SharedMemory(name)
    other.buf[:5] = b"child"
    other.close()
    shm.buf[5:8] = b"!!!"
    sl = shared_memory.ShareableList(name=sl_name)
    sl[0] = sl[0] + 1
    sl[1] = "from child"
    sl.shm.close()


class TestSharedMemory(unittest.TestCase):
    def test_is_cpythons_class_on_our_segment(self):
        shm = shared_memory.SharedMemory(create=True, size=100)
        self.addCleanup(shm.unlink)
        self.assertIsInstance(shm, cpython_shm.SharedMemory)
        self.assertTrue(shm.name.startswith("psm_"))
        self.assertEqual((shm.size, len(shm.buf)), (100, 100))
        shm.buf[:3] = b"abc"
        # CPython's class reads it, byte for byte.
        theirs = cpython_shm.SharedMemory(shm.name)
        self.assertEqual(bytes(theirs.buf[:3]), b"abc")
        theirs.close()
        multiprocessing.resource_tracker.unregister(theirs._name, "shared_memory")
        shm.close()

    def test_opens_cpythons_segment(self):
        theirs = cpython_shm.SharedMemory(create=True, size=64)
        try:
            theirs.buf[:2] = b"hi"
            ours = shared_memory.SharedMemory(theirs.name)
            self.assertEqual((bytes(ours.buf[:2]), ours.size), (b"hi", 64))
            ours.close()
        finally:
            theirs.close()
            theirs.unlink()

    def test_errors(self):
        with self.assertRaises(ValueError):
            shared_memory.SharedMemory(create=True, size=0)
        with self.assertRaises(ValueError):
            shared_memory.SharedMemory()
        with self.assertRaises(FileNotFoundError):
            shared_memory.SharedMemory("psm_procshare_nothere")
        shm = shared_memory.SharedMemory(create=True, size=8)
        with self.assertRaises(FileExistsError):
            shared_memory.SharedMemory(shm.name, create=True, size=8)
        view = shm.buf[:4]
        with self.assertRaises(BufferError):  # mmap's export check, as CPython's
            shm.close()
        view.release()
        shm.close()
        shm.unlink()
        with self.assertRaises(FileNotFoundError):
            shm.unlink()

    def test_children_under_every_start_method(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = procshare.get_context(method)
                shm = shared_memory.SharedMemory(create=True, size=16)
                sl = shared_memory.ShareableList([41, "x" * 12, 2.5, None, b"b"])
                p = ctx.Process(target=_child_writes, args=(shm, shm.name, sl.shm.name))
                p.start()
                self.assertEqual(join(p), 0)
                self.assertEqual(bytes(shm.buf[:8]), b"child!!!")
                self.assertEqual(list(sl), [42, "from child", 2.5, None, b"b"])
                for s in (shm, sl.shm):
                    s.close()
                    s.unlink()

    def test_no_resource_tracker_warning_and_gone_after_exit(self):
        rc, out, err = _script("""
            from procshare import shared_memory
            from procshare.managers import SharedMemoryManager
            shm = shared_memory.SharedMemory(create=True, size=10)
            sl = shared_memory.ShareableList([1, 2, 3])
            with SharedMemoryManager() as smm:
                smm.ShareableList(range(4)); smm.SharedMemory(32)
            print(shm.name, sl.shm.name)
        """)
        self.assertEqual((rc, err), (0, ""))
        for name in out.split():
            self.assertTrue(_wait_gone(name), f"{name} still there after its only user exited")

    def test_gone_after_sigkill(self):
        p = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent("""
                import sys, time
                from procshare import shared_memory
                shm = shared_memory.SharedMemory(create=True, size=10)
                print(shm.name, flush=True)
                time.sleep(100)
            """)],
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            name = p.stdout.readline().strip()
            self.assertTrue(name.startswith("psm_"))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.assertTrue(_wait_gone(name), "a SIGKILLed creator leaked its segment")
        with p.stdout, p.stderr:
            self.assertEqual(p.stderr.read(), "")

    def test_track_false_outlives_its_creator(self):
        rc, out, err = _script("""
            from procshare import shared_memory
            shm = shared_memory.SharedMemory(create=True, size=10, track=False)
            shm.buf[0] = 7
            print(shm.name)
        """)
        self.assertEqual((rc, err), (0, ""))
        name = out.strip()
        time.sleep(0.2)
        shm = shared_memory.SharedMemory(name)
        self.assertEqual(shm.buf[0], 7)
        shm.close()
        shm.unlink()

    def test_manager(self):
        with SharedMemoryManager() as smm:
            sl = smm.ShareableList(["a", 1])
            shm = smm.SharedMemory(size=40)
            self.assertIsInstance(sl, shared_memory.ShareableList)
            self.assertIsInstance(shm, shared_memory.SharedMemory)
            names = (sl.shm.name, shm.name)
            sl.shm.close()
            shm.close()
        for name in names:
            self.assertFalse(_exists(name))


if __name__ == "__main__":
    unittest.main()
