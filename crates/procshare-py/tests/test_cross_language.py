"""Rust and Python processes on one named queue: a Rust producer and two Python consumers, two
Python producers and two Rust consumers, JoinableQueue's task_done/join both ways, and shutdown
across languages (a Rust process blocked in get or put woken by a Python shutdown, Python
consumers ending on a Rust shutdown).

The Rust peer is crates/procshare/examples/xlang_peer.rs. This module builds it once per run
(`cargo build -p procshare --example xlang_peer`, which cargo itself caches between runs) or
uses the binary named by PROCSHARE_XLANG_PEER; without cargo the tests skip, saying so on
stderr.

Every item is a record `(tag, seq, int, float, str, bytes, list, tuple, dict, None-or-int)`
derived from (tag, seq); the receiving side checks the whole record, every item is received
exactly once, and each consumer sees each producer's items in the order they were put.

Run from this directory: python -m unittest test_cross_language
"""

import json
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import unittest
import uuid

import procshare

LONG = 120.0
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_peer = None  # the built binary's path, or the reason there is none


def peer():
    """The xlang_peer binary, built on first use; SkipTest (said loudly) without cargo."""
    global _peer
    if _peer is None:
        _peer = _find_or_build()
    if _peer.startswith("SKIP: "):
        raise unittest.SkipTest(_peer[len("SKIP: "):])
    return _peer


def _find_or_build():
    given = os.environ.get("PROCSHARE_XLANG_PEER")
    if given:
        return given
    cargo = shutil.which("cargo")
    if cargo is None:
        why = "cargo is not on PATH, so the Rust peer (examples/xlang_peer.rs) cannot be built"
        print(f"\n*** test_cross_language SKIPPED: {why} ***", file=sys.stderr)
        return "SKIP: " + why
    out = subprocess.run(
        [cargo, "build", "-p", "procshare", "--example", "xlang_peer", "--message-format=json"],
        cwd=REPO, stdout=subprocess.PIPE, check=True,
    ).stdout
    for line in out.decode().splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "xlang_peer":
            return msg["executable"]
    raise AssertionError("cargo built no xlang_peer executable")


def record(tag, seq):
    """The record xlang_peer's record() builds for (tag, seq)."""
    return (tag, seq, seq * 7 - 3, seq + 0.25, f"{tag}-{seq}-é", bytes([seq % 256]) * (seq % 50),
            list(range(seq % 5)), (seq, "t"), {"seq": seq, "neg": -seq},
            None if seq % 2 == 0 else seq)


def fresh_name():
    return "xlang_" + uuid.uuid4().hex[:16]


def start(*args):
    return subprocess.Popen([peer(), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def expect_line(p, want):
    line = p.stdout.readline().strip()
    if line != want:
        p.kill()
        _, err = p.communicate()
        raise AssertionError(f"xlang_peer said {line!r}, not {want!r}; stderr: {err}")


def finish(p):
    """Waits for a peer; returns the (tag, seq) it printed, in order. Fails on a bad exit."""
    try:
        out, err = p.communicate(timeout=LONG)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"xlang_peer did not finish; stderr: {err}")
    if p.returncode != 0:
        raise AssertionError(f"xlang_peer exited {p.returncode}; stderr: {err}")
    lines = out.splitlines()
    got = [(w[1], int(w[2])) for w in (l.split() for l in lines) if w and w[0] == "item"]
    done = [l for l in lines if l.startswith("done ")]
    if done:
        assert int(done[0].split()[1]) == len(got), (done, len(got))
    return got


def check_exactly_once_in_order(test, per_consumer, producers):
    """per_consumer: a list of [(tag, seq), ...] per consumer; producers: {tag: n}."""
    everything = sorted(x for got in per_consumer for x in got)
    test.assertEqual(everything, sorted((t, s) for t, n in producers.items() for s in range(n)))
    for got in per_consumer:
        for tag in producers:
            seqs = [s for t, s in got if t == tag]
            test.assertEqual(seqs, sorted(seqs), f"{tag}'s items out of order")


# --- Python children (module level, so spawn can find them) ----------------------------------


def _py_consumer(name, opened, results, joinable):
    q = (procshare.JoinableQueue if joinable else procshare.Queue).open(name)
    opened.put(os.getpid())
    got = []
    while True:
        try:
            item = q.get(timeout=LONG)
        except procshare.ShutDown:
            break
        if item != record(item[0], item[1]):
            results.put(("bad", repr(item)))
            return
        got.append((item[0], item[1]))
        if joinable:
            q.task_done()
    results.put(("ok", got))


def _py_producer(name, tag, n):
    q = procshare.Queue.open(name)
    for seq in range(n):
        q.put(record(tag, seq))


class TestCrossLanguage(unittest.TestCase):
    def setUp(self):
        peer()  # build (or skip) before anything starts

    def _python_consumers(self, name, k, joinable=False, method="spawn"):
        ctx = multiprocessing.get_context(method)
        opened, results = ctx.Queue(), ctx.Queue()
        kids = [ctx.Process(target=_py_consumer, args=(name, opened, results, joinable))
                for _ in range(k)]
        for c in kids:
            c.start()
        for _ in kids:
            opened.get(timeout=LONG)
        return kids, results

    def _collect(self, kids, results):
        per = []
        for _ in kids:
            status, got = results.get(timeout=LONG)
            self.assertEqual(status, "ok", got)
            per.append(got)
        for c in kids:
            c.join(LONG)
            self.assertEqual(c.exitcode, 0)
        return per

    def test_rust_producer_python_consumers(self):
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                name, n = fresh_name(), 3000
                rust = start("produce", name, "rust", n, 64)  # bounded: the producer waits on us
                expect_line(rust, "ready")
                kids, results = self._python_consumers(name, 2, method=method)
                rust.stdin.write("go\n")
                rust.stdin.flush()
                per = self._collect(kids, results)  # they end on the Rust side's shutdown
                finish(rust)
                check_exactly_once_in_order(self, per, {"rust": n})

    def test_python_producers_rust_consumers(self):
        name, n = fresh_name(), 3000
        q = procshare.Queue(maxsize=64, name=name)
        rusts = [start("consume", name) for _ in range(2)]
        ctx = multiprocessing.get_context("spawn")
        producers = [ctx.Process(target=_py_producer, args=(name, f"py{i}", n)) for i in range(2)]
        for p in producers:
            p.start()
        for p in producers:
            p.join(LONG)
            self.assertEqual(p.exitcode, 0)
        q.shutdown()  # the Rust consumers drain what is left, then see ShutDown
        per = [finish(r) for r in rusts]
        check_exactly_once_in_order(self, per, {"py0": n, "py1": n})

    def test_a_rust_consumer_reads_what_python_put_directly(self):
        name = fresh_name()
        q = procshare.Queue(name=name)
        q.put_many([record("direct", s) for s in range(100)])
        q.put(record("direct", 100))
        q.shutdown()
        self.assertEqual(finish(start("consume", name)), [("direct", s) for s in range(101)])

    def test_joinable_python_puts_rust_task_done_python_joins(self):
        name, n = fresh_name(), 500
        jq = procshare.JoinableQueue(name=name)
        rusts = [start("joinable-consume", name) for _ in range(2)]
        for seq in range(n):
            jq.put(record("py", seq))
        self.assertIsNone(jq.join())  # returns once the Rust consumers called task_done for all
        self.assertTrue(jq.empty())
        jq.shutdown()
        per = [finish(r) for r in rusts]
        check_exactly_once_in_order(self, per, {"py": n})
        with self.assertRaises(ValueError):
            jq.task_done()  # every item is done: one more is too many, as Python's

    def test_joinable_rust_puts_python_task_done_rust_joins(self):
        name, n = fresh_name(), 500
        rust = start("joinable-produce", name, "rust", n)
        expect_line(rust, "ready")
        kids, results = self._python_consumers(name, 2, joinable=True)
        rust.stdin.write("go\n")
        rust.stdin.flush()
        expect_line(rust, "joined")  # the Rust join() returned: Python's task_done counted
        rust.stdin.write("go\n")
        rust.stdin.flush()  # then it shuts the queue down, which ends the consumers
        per = self._collect(kids, results)
        finish(rust)
        check_exactly_once_in_order(self, per, {"rust": n})

    def test_python_shutdown_wakes_a_rust_get(self):
        for immediate in (False, True):
            with self.subTest(immediate=immediate):
                name = fresh_name()
                q = procshare.Queue(name=name)
                rust = start("blocked-get", name)
                expect_line(rust, "blocked")
                q.shutdown(immediate=immediate)
                expect_line(rust, "shutdown")
                finish(rust)

    def test_python_shutdown_wakes_a_rust_put_and_immediate_discards(self):
        name = fresh_name()
        q = procshare.Queue(maxsize=2, name=name)
        q.put(1)
        q.put(2)
        rust = start("blocked-put", name)
        expect_line(rust, "blocked")
        q.shutdown(immediate=True)
        expect_line(rust, "shutdown")
        finish(rust)
        with self.assertRaises(procshare.ShutDown):
            q.get_nowait()  # immediate: what was left is discarded
        with self.assertRaises(procshare.ShutDown):
            q.put(3)

    def test_a_rust_shutdown_ends_a_blocked_python_get(self):
        name = fresh_name()
        rust = start("produce", name, "rust", 0)
        expect_line(rust, "ready")
        q = procshare.Queue.open(name)
        with self.assertRaises(queue.Empty):
            q.get(timeout=0.05)
        rust.stdin.write("go\n")
        rust.stdin.flush()  # puts nothing, shuts down
        with self.assertRaises(procshare.ShutDown):
            q.get(timeout=LONG)
        with self.assertRaises(procshare.ShutDown):
            q.put(1)
        finish(rust)

    def test_opening_an_unknown_name_is_file_not_found(self):
        with self.assertRaises(FileNotFoundError):
            procshare.Queue.open(fresh_name())


if __name__ == "__main__":
    unittest.main()
