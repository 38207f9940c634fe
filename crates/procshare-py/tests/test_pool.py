"""procshare.Pool and procshare.futures.ProcessPoolExecutor: the Rust pool core's promises,
driven from Python with real signals, under each start method (PROCSHARE_START_METHODS).

* a worker SIGKILLed mid-task fails that task only (WorkerDied: pid, signal, attempts); with
  retries the task's rerun gives the right result; the pool goes on;
* task_timeout: TaskTimeout (a multiprocessing.TimeoutError); the pool goes on;
* an unpicklable argument or result fails its own task only;
* a task raising SystemExit or KeyboardInterrupt fails that task, the pool goes on;
* SIGINT to a process in a long map: it exits within about a second, no worker left;
* the owner SIGKILLed: its workers are gone within a second.
"""

import concurrent.futures
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

import procshare
from procshare.futures import ProcessPoolExecutor

METHODS = [m for m in os.environ.get("PROCSHARE_START_METHODS", "fork,spawn,forkserver").split(",") if m]
HERE = os.path.dirname(os.path.abspath(__file__))


def sq(x):
    return x * x


def slow(t):
    time.sleep(t)
    return t


def pid_then_sleep(path, t):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(t)
    return "done"


def raise_base(kind):
    if kind == "exit":
        raise SystemExit(3)
    raise KeyboardInterrupt


def unpicklable_result(_):
    return lambda: None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, within):
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return not any(alive(p) for p in pids)


class PoolCases:
    method = None

    def setUp(self):
        self.ctx = procshare.get_context(self.method)
        self.tmp = os.path.join("/tmp", f"procshare-pool-test-{os.getpid()}-{id(self)}")

    def tearDown(self):
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def running_pid(self, within=10, after=None):
        end = time.monotonic() + within
        while time.monotonic() < end:
            try:
                with open(self.tmp) as f:
                    lines = f.read().split()
                if lines and int(lines[-1]) != after:
                    return int(lines[-1])
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        self.fail("the task never started")

    def test_killed_worker_fails_only_its_task(self):
        with self.ctx.Pool(2) as pool:
            victim = pool.apply_async(pid_then_sleep, (self.tmp, 30))
            others = pool.map_async(sq, range(50))
            pid = self.running_pid()
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            with self.assertRaises(procshare.WorkerDied) as cm:
                victim.get(timeout=10)
            self.assertLess(time.monotonic() - t0, 2)
            self.assertEqual((cm.exception.pid, cm.exception.signal, cm.exception.attempts),
                             (pid, signal.SIGKILL, 1))
            self.assertEqual(others.get(timeout=20), [x * x for x in range(50)])
            self.assertEqual(pool.map(sq, range(10)), [x * x for x in range(10)])

    def test_retries_rerun_the_task(self):
        with self.ctx.Pool(2, retries=1) as pool:
            r = pool.apply_async(pid_then_sleep, (self.tmp, 1.0))
            os.kill(self.running_pid(), signal.SIGKILL)
            self.assertEqual(r.get(timeout=20), "done")

    def test_task_timeout(self):
        with self.ctx.Pool(2, task_timeout=0.5) as pool:
            r = pool.apply_async(slow, (30,))
            with self.assertRaises(procshare.TaskTimeout) as cm:
                r.get(timeout=10)
            self.assertIsInstance(cm.exception, multiprocessing.TimeoutError)
            self.assertEqual(pool.apply(sq, (4,)), 16)

    def test_unpicklable_argument_and_result(self):
        with self.ctx.Pool(2) as pool:
            results = pool.map_async(sq, [1, lambda: 0, 3])
            with self.assertRaises(Exception):
                results.get(timeout=10)
            r = pool.apply_async(unpicklable_result, (1,))
            with self.assertRaises(multiprocessing.pool.MaybeEncodingError):
                r.get(timeout=10)
            bad = pool.apply_async(sq, (lambda: 0,))
            with self.assertRaises(Exception):
                bad.get(timeout=10)
            self.assertEqual(pool.apply(sq, (5,)), 25)

    def test_base_exception_does_not_hang(self):
        with self.ctx.Pool(2) as pool:
            with self.assertRaises(SystemExit):
                pool.apply_async(raise_base, ("exit",)).get(timeout=10)
            with self.assertRaises(KeyboardInterrupt):
                pool.apply_async(raise_base, ("int",)).get(timeout=10)
            self.assertEqual(pool.map(sq, range(20)), [x * x for x in range(20)])

    def test_executor(self):
        with ProcessPoolExecutor(2, mp_context=self.ctx, retries=1) as ex:
            self.assertEqual(ex.submit(sq, 3).result(timeout=10), 9)
            self.assertEqual(list(ex.map(sq, range(5))), [0, 1, 4, 9, 16])
            f = ex.submit(pid_then_sleep, self.tmp, 30)
            first = self.running_pid()
            os.kill(first, signal.SIGKILL)
            os.kill(self.running_pid(after=first), signal.SIGKILL)
            with self.assertRaises(procshare.WorkerDied) as cm:
                f.result(timeout=10)
            self.assertEqual(cm.exception.attempts, 2)
            self.assertEqual(ex.submit(sq, 6).result(timeout=10), 36)
        self.assertTrue(isinstance(ex, concurrent.futures.Executor))

    def run_script(self, body):
        code = textwrap.dedent(f"""
            import os, sys, time
            sys.path.insert(0, {HERE!r})
            import procshare
            from test_pool import slow
            if __name__ == "__main__":
                ctx = procshare.get_context({self.method!r})
        """) + textwrap.indent(textwrap.dedent(body), "    ")
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def test_ctrl_c_stops_a_map_and_the_workers(self):
        p = self.run_script("""
            pool = ctx.Pool(2)
            print(" ".join(str(w.pid) for w in pool._pool), flush=True)
            try:
                pool.map(slow, [5] * 8)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        """)
        pids = [int(x) for x in p.stdout.readline().split()]
        self.assertEqual(len(pids), 2)
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - t0
        self.assertIn("interrupted", out, err)
        self.assertLess(took, 1.5, err)
        self.assertTrue(wait_gone(pids, 1.0), "a worker outlived the Ctrl-C")

    def test_owner_sigkilled_workers_exit(self):
        p = self.run_script("""
            pool = ctx.Pool(2)
            r = pool.map_async(slow, [30] * 4)
            print(" ".join(str(w.pid) for w in pool._pool), flush=True)
            time.sleep(60)
        """)
        pids = [int(x) for x in p.stdout.readline().split()]
        self.assertEqual(len(pids), 2)
        time.sleep(0.3)
        p.kill()
        p.wait()
        self.assertTrue(wait_gone(pids, 1.0), "a worker outlived its owner's SIGKILL")
        p.stdout.close()
        p.stderr.close()


for _m in METHODS:
    _name = f"Pool{_m.capitalize()}Test"
    globals()[_name] = type(_name, (PoolCases, unittest.TestCase), {"method": _m})
del _m, _name

if __name__ == "__main__":
    unittest.main()
