"""procshare's Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier from
Python: multiprocessing's behaviour, the three start methods, Ctrl-C, and the crash promises
(a killed holder or party never strands the others)."""

import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import unittest

import procshare
import _support

# Bounded waits: they fail a hang, they never judge speed.
LONG = 30.0
METHODS = ("fork", "spawn", "forkserver")


def _ctx(method):
    return mp.get_context(method)


def _join(p):
    return _support.join(p, LONG)


# --- child targets (module level, so spawn and forkserver can find them) ----------------------


def _use_all(lock, rlock, sem, bsem, event, cond, barrier, out):
    with lock:
        pass
    with rlock:
        with rlock:
            pass
    assert sem.acquire(timeout=LONG)
    bsem.release()  # the parent took one unit
    event.set()
    with cond:
        cond.notify_all()
    out.put(barrier.wait(LONG))


def _hold_and_report(lock, ready):
    lock.acquire()
    ready.set()
    time.sleep(LONG)  # killed here


def _barrier_then_die(barrier, arrived):
    arrived.set()
    barrier.wait()  # killed here, while the others wait


def _cond_wait_forever(cond, sleeping):
    with cond:
        sleeping.release()
        cond.wait()  # killed here


def _interrupted(kind, obj, ready, result):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ready.set()
        if kind == "lock":
            obj.acquire()
        elif kind == "sem":
            obj.acquire()
        elif kind == "event":
            obj.wait()
        elif kind == "cond":
            with obj:
                obj.wait()
        elif kind == "barrier":
            obj.wait()
        result.put("returned")
    except KeyboardInterrupt:
        if kind == "cond":
            # multiprocessing's Condition.wait takes the lock back even when interrupted.
            result.put("interrupted, lock free" if obj.acquire(timeout=LONG) else "no lock")
            return
        result.put("interrupted")


def _wait_once(barrier):
    barrier.wait(LONG)


# --- tests -------------------------------------------------------------------------------------


class LockTest(unittest.TestCase):
    def test_acquire_release_errors(self):
        lock = procshare.Lock()
        self.assertIs(lock.acquire(), True)
        self.assertIs(lock.acquire(False), False)
        self.assertIs(lock.acquire(True, 0.05), False)
        self.assertIs(lock.acquire(timeout=-1), False)  # negative timeout is 0, as SemLock
        self.assertIsNone(lock.release())
        with self.assertRaisesRegex(ValueError, "released too many times"):
            lock.release()
        with lock:
            self.assertFalse(lock.acquire(block=0))  # any object, by truth value
        self.assertTrue(lock.acquire(block=1))
        lock.release()
        with self.assertRaises(ValueError):
            lock.acquire(timeout=float("nan"))

    def test_another_thread_may_release(self):
        lock = procshare.Lock()
        lock.acquire()
        t = threading.Thread(target=lock.release)
        t.start()
        t.join()
        self.assertTrue(lock.acquire(False))
        lock.release()

    def test_waiting_releases_the_gil(self):
        # The holder is a Python thread that needs the GIL to release: a waiter that kept the
        # GIL while blocked would deadlock here.
        lock = procshare.Lock()
        lock.acquire()
        t = threading.Timer(0.2, lock.release)
        t.start()
        self.assertTrue(lock.acquire(timeout=LONG))
        t.join()
        lock.release()

    def test_rlock(self):
        r = procshare.RLock()
        self.assertTrue(r.acquire())
        self.assertTrue(r.acquire(False))  # re-entry never blocks
        r.release()
        errors = []

        def other():
            try:
                r.release()
            except AssertionError as e:
                errors.append(e)
            errors.append(r.acquire(timeout=0.05))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        self.assertEqual(len(errors), 2)
        self.assertIsInstance(errors[0], AssertionError)
        self.assertIs(errors[1], False)
        r.release()
        with self.assertRaises(AssertionError):
            r.release()

    def test_pickling_outside_spawning_is_refused(self):
        for obj in (procshare.Lock(), procshare.RLock(), procshare.Semaphore(1),
                    procshare.BoundedSemaphore(1), procshare.Event(), procshare.Condition(),
                    procshare.Barrier(2)):
            with self.assertRaisesRegex(RuntimeError, "through inheritance"):
                pickle.dumps(obj)


class SemaphoreEventTest(unittest.TestCase):
    def test_semaphore(self):
        s = procshare.Semaphore(2)
        self.assertEqual(s.get_value(), 2)
        self.assertTrue(s.acquire())
        self.assertTrue(s.acquire())
        self.assertFalse(s.acquire(False))
        self.assertFalse(s.acquire(timeout=0.05))
        s.release()
        s.release()
        s.release()  # unbounded: above the start value is fine
        self.assertEqual(s.get_value(), 3)
        with self.assertRaises(ValueError):
            procshare.Semaphore(-1)
        with procshare.Semaphore(1) as got:
            self.assertTrue(got)

    def test_bounded_semaphore(self):
        s = procshare.BoundedSemaphore(1)
        with self.assertRaisesRegex(ValueError, "released too many times"):
            s.release()
        self.assertEqual(s.get_value(), 1)
        s.acquire()
        s.release()
        self.assertIn("maxvalue=1", repr(s))

    def test_event(self):
        e = procshare.Event()
        self.assertFalse(e.is_set())
        self.assertIs(e.wait(0), False)
        self.assertIs(e.wait(0.05), False)
        threading.Timer(0.1, e.set).start()
        self.assertIs(e.wait(LONG), True)
        self.assertIs(e.wait(), True)
        e.clear()
        self.assertFalse(e.is_set())
        self.assertRegex(repr(e), r"<Event at .* unset>")


class ConditionTest(unittest.TestCase):
    def test_needs_the_lock(self):
        c = procshare.Condition()
        for call in (c.notify, c.notify_all, c.wait):
            with self.assertRaises(RuntimeError):
                call()
            with self.assertRaises(AssertionError):  # multiprocessing's exception, too
                call()

    def test_wait_timeout_and_wait_for(self):
        for lock in (None, procshare.Lock(), procshare.RLock()):
            c = procshare.Condition(lock)
            with c:
                self.assertIs(c.wait(0), False)
                self.assertIs(c.wait(0.05), False)
                self.assertEqual(c.wait_for(lambda: 0, timeout=0.05), 0)
                self.assertEqual(c.wait_for(lambda: 7), 7)
            self.assertEqual(c._waiting(), 0)
        with self.assertRaises(TypeError):
            procshare.Condition(threading.Lock())

    def test_rlock_is_released_fully_while_waiting(self):
        c = procshare.Condition(procshare.RLock())
        state = []

        def notifier():
            with c:  # only possible if the waiter released every level
                state.append(1)
                c.notify()

        with c:
            with c:
                threading.Timer(0.1, notifier).start()
                self.assertTrue(c.wait_for(lambda: state, LONG))
            c.release()  # both levels came back
            c.acquire()
        with self.assertRaises(AssertionError):
            c.release()

    def test_notify_n_wakes_exactly_n(self):
        c = procshare.Condition()
        sleeping = procshare.Semaphore(0)
        woken = procshare.Semaphore(0)

        def waiter():
            with c:
                sleeping.release()
                c.wait(LONG)
                woken.release()

        threads = [threading.Thread(target=waiter) for _ in range(5)]
        for t in threads:
            t.start()
        for _ in threads:
            self.assertTrue(sleeping.acquire(timeout=LONG))
        with c:  # every waiter is inside wait() once it released the lock
            c.notify(2)
        for _ in range(2):
            self.assertTrue(woken.acquire(timeout=LONG))
        time.sleep(0.2)
        self.assertEqual(woken.get_value(), 0)  # exactly two
        with c:
            c.notify_all()
        for t in threads:
            t.join(LONG)
        self.assertEqual(woken.get_value(), 3)
        self.assertEqual(c._waiting(), 0)

    def test_killed_waiter_does_not_take_the_notify(self):
        # multiprocessing's notify() waits for the woken sleeper to answer: a sleeper killed
        # in wait() hangs it forever. Here the notify skips the dead one and wakes the live.
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                ctx = _ctx(method)
                c = procshare.Condition()
                sleeping = procshare.Semaphore(0)
                p = ctx.Process(target=_cond_wait_forever, args=(c, sleeping))
                p.start()
                self.assertTrue(sleeping.acquire(timeout=LONG))
                with c:  # the child is inside wait() now
                    pass
                p.kill()
                _join(p)
                got = []

                def live_waiter():
                    with c:
                        sleeping.release()
                        got.append(c.wait(LONG))

                t = threading.Thread(target=live_waiter)
                t.start()
                self.assertTrue(sleeping.acquire(timeout=LONG))
                with c:
                    c.notify()
                t.join(LONG)
                self.assertEqual(got, [True])
                self.assertEqual(c._waiting(), 0)


class BarrierTest(unittest.TestCase):
    def test_index_properties_abort_reset(self):
        b = procshare.Barrier(3, timeout=LONG)
        self.assertEqual(b.parties, 3)
        self.assertEqual(b.n_waiting, 0)
        self.assertFalse(b.broken)
        results = []
        threads = [threading.Thread(target=lambda: results.append(b.wait())) for _ in range(2)]
        for t in threads:
            t.start()
        while b.n_waiting < 2:
            time.sleep(0.01)
        results.append(b.wait())
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), [0, 1, 2])
        b.abort()
        self.assertTrue(b.broken)
        with self.assertRaises(threading.BrokenBarrierError):
            b.wait()
        b.reset()
        self.assertFalse(b.broken)
        with self.assertRaises(ValueError):
            procshare.Barrier(0)

    def test_timeout_breaks_the_barrier(self):
        b = procshare.Barrier(2)
        with self.assertRaises(threading.BrokenBarrierError):
            b.wait(0.1)
        self.assertTrue(b.broken)
        b = procshare.Barrier(2, timeout=0.1)
        with self.assertRaises(threading.BrokenBarrierError):
            b.wait()

    def test_action_runs_once_before_anyone_goes_on(self):
        ran = []
        b = procshare.Barrier(3, action=lambda: (time.sleep(0.1), ran.append(1)))
        seen = []

        def party():
            b.wait(LONG)
            seen.append(len(ran))

        threads = [threading.Thread(target=party) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        self.assertEqual(ran, [1])
        self.assertEqual(seen, [1, 1, 1])

    def test_failing_action_breaks_the_barrier(self):
        def action():
            raise ZeroDivisionError

        b = procshare.Barrier(2, action=action)
        errors = []

        def party():
            try:
                b.wait(LONG)
            except BaseException as e:  # noqa: BLE001 - collected for the assertion
                errors.append(type(e))

        threads = [threading.Thread(target=party) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        self.assertEqual(sorted(errors, key=str),
                         sorted([ZeroDivisionError, threading.BrokenBarrierError], key=str))
        self.assertTrue(b.broken)

    def test_parties_that_finished_and_exited_break_nothing(self):
        # multiprocessing children leave by os._exit, dropping nothing; a party that merely
        # exited after its waits must not count as one that died holding the barrier.
        for method in METHODS:
            with self.subTest(method=method):
                ctx = _ctx(method)
                b = procshare.Barrier(2)
                for _ in range(2):
                    p = ctx.Process(target=_wait_once, args=(b,))
                    p.start()
                    self.assertEqual(b.wait(LONG) in (0, 1), True)
                    self.assertEqual(_join(p), 0)
                self.assertFalse(b.broken)


class ChildrenTest(unittest.TestCase):
    def test_every_object_under_every_start_method(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = _ctx(method)
                lock, rlock = procshare.Lock(), procshare.RLock()
                sem, bsem = procshare.Semaphore(1), procshare.BoundedSemaphore(1)
                event, cond, barrier = procshare.Event(), procshare.Condition(), procshare.Barrier(2)
                out = ctx.Queue()
                self.assertTrue(bsem.acquire(False))
                p = ctx.Process(target=_use_all,
                                args=(lock, rlock, sem, bsem, event, cond, barrier, out))
                p.start()
                index = barrier.wait(LONG)
                self.assertEqual(sorted([index, out.get(timeout=LONG)]), [0, 1])
                self.assertEqual(_join(p), 0)
                self.assertTrue(event.is_set())
                self.assertEqual(sem.get_value(), 0)
                self.assertEqual(bsem.get_value(), 1)
                self.assertTrue(lock.acquire(False))
                self.assertTrue(rlock.acquire(False))

    def test_killed_holder_does_not_strand_the_lock(self):
        for method in METHODS:
            for cls in (procshare.Lock, procshare.RLock):
                with self.subTest(method=method, lock=cls.__name__):
                    ctx = _ctx(method)
                    lock, ready = cls(), procshare.Event()
                    p = ctx.Process(target=_hold_and_report, args=(lock, ready))
                    p.start()
                    self.assertTrue(ready.wait(LONG))
                    self.assertFalse(lock.acquire(False))
                    p.kill()
                    self.assertEqual(_join(p), -signal.SIGKILL)
                    # multiprocessing.Lock would wait forever here.
                    self.assertTrue(lock.acquire(timeout=LONG))
                    lock.release()

    def test_killed_party_breaks_the_barrier(self):
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                ctx = _ctx(method)
                b, arrived = procshare.Barrier(3), procshare.Event()
                p = ctx.Process(target=_barrier_then_die, args=(b, arrived))
                p.start()
                self.assertTrue(arrived.wait(LONG))
                while b.n_waiting < 1:
                    time.sleep(0.01)
                errors = []

                def party():
                    try:
                        b.wait(LONG)
                    except threading.BrokenBarrierError:
                        errors.append("broken")

                t = threading.Thread(target=party)
                t.start()
                p.kill()
                _join(p)
                t.join(LONG + 5)
                self.assertEqual(errors, ["broken"])
                self.assertTrue(b.broken)

    def test_ctrl_c_interrupts_every_blocking_call(self):
        held = procshare.Lock()
        held.acquire()
        cases = {
            "lock": held,
            "sem": procshare.Semaphore(0),
            "event": procshare.Event(),
            "cond": procshare.Condition(),
            "barrier": procshare.Barrier(2),
        }
        ctx = _ctx("fork")
        for kind, obj in cases.items():
            with self.subTest(kind=kind):
                ready, result = procshare.Event(), ctx.Queue()
                p = ctx.Process(target=_interrupted, args=(kind, obj, ready, result))
                p.start()
                self.assertTrue(ready.wait(LONG))
                time.sleep(0.2)  # let it block
                os.kill(p.pid, signal.SIGINT)
                want = "interrupted, lock free" if kind == "cond" else "interrupted"
                self.assertEqual(result.get(timeout=LONG), want)
                _join(p)
        held.release()


if __name__ == "__main__":
    unittest.main()
