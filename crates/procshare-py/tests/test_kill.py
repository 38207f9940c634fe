"""SIGKILL Python workers of a procshare.Queue at random instants, again and again — producers
mid-put (items up to 600 kB, so kills land inside copies), consumers mid-get and while blocked
in get — while the others run. The others go on; no item is torn or delivered twice; the only
items missing are ones a killed consumer had taken (at most one per consumer kill, counted as
crates/procshare/tests/queue_kill.rs counts them); no lock is left stranded (the queue works
afterwards, and so does a JoinableQueue's task count).

Run from this directory: python -m unittest test_kill
"""

import multiprocessing
import os
import queue
import random
import signal
import threading
import time
import unittest

import procshare

LONG = 60.0  # a bound that turns a hang into a failure; never a speed judgement
KILLS = int(os.environ.get("PROCSHARE_KILLS", "120"))


def payload(pid_tag, seq):
    """Deterministic content: mostly small, some large enough that a kill lands mid-copy."""
    n = seq % 61
    size = 600_000 if n == 0 else 9_000 if n <= 4 else n * 7
    return random.Random(pid_tag * 1_000_003 + seq).randbytes(size)


def _producer(q, tag, stop, report):
    seq = 0
    while True:
        q.put(("item", tag, seq, payload(tag, seq)))
        seq += 1
        if seq % 16 == 0:
            try:
                stop.get_nowait()
            except queue.Empty:
                continue
            report.send(("done", tag, seq))
            return


def _consumer(q, me, report):
    while True:
        msg = q.get()
        if msg == "stop":
            return
        _, tag, seq, data = msg
        if data != payload(tag, seq):
            report.send(("torn", tag, seq))
        report.send(("got", me, tag, seq))


def _blocked_consumer(q, me, report, ready):
    ready.put(me)
    _consumer(q, me, report)


class Log:
    def __init__(self):
        self.got, self.torn, self.done = [], [], {}
        self.count = 0
        self.cv = threading.Condition()

    def collect(self, rx):
        while True:
            try:
                r = rx.recv()
            except EOFError:
                return
            with self.cv:
                if r[0] == "got":
                    self.got.append(r[1:])
                    self.count += 1
                    self.cv.notify_all()
                elif r[0] == "torn":
                    self.torn.append(r[1:])
                else:
                    self.done[r[1]] = r[2]

    def wait_for(self, n):
        with self.cv:
            if not self.cv.wait_for(lambda: self.count >= n, LONG):
                raise AssertionError(f"no progress: {self.count} items delivered, waited for {n}")


class TestRandomKills(unittest.TestCase):
    def test_random_kills_never_tear_lose_or_duplicate(self):
        ctx = multiprocessing.get_context("fork")
        q = procshare.Queue(maxsize=256)
        stop = procshare.Queue()
        rx, tx = procshare.Pipe(duplex=False)
        log = Log()
        collector = threading.Thread(target=log.collect, args=(rx,), daemon=True)
        collector.start()

        next_id = [0]

        def spawn(producer):
            next_id[0] += 1
            me = next_id[0]
            if producer:
                p = ctx.Process(target=_producer, args=(q, me, stop, tx))
            else:
                p = ctx.Process(target=_consumer, args=(q, me, tx))
            p.start()
            return [producer, me, p]

        procs = [spawn(i < 2) for i in range(4)]  # slots 0, 1 produce; 2, 3 consume
        killed_producers, consumer_kills = set(), 0
        rng = random.Random()
        for _ in range(KILLS):
            slot = rng.randrange(4)
            before = log.count
            time.sleep(rng.uniform(0, 0.003))
            producer, me, p = procs[slot]
            p.kill()
            p.join(LONG)
            self.assertEqual(p.exitcode, -signal.SIGKILL)
            if producer:
                killed_producers.add(me)
            else:
                consumer_kills += 1
            procs[slot] = spawn(producer)
            log.wait_for(before + 5)  # the queue keeps flowing

        # Wind down: each producer stops on a token, then each consumer on a "stop".
        for _ in range(2):
            stop.put(None)
        surviving = []
        for producer, me, p in procs:
            if producer:
                p.join(LONG)
                self.assertEqual(p.exitcode, 0)
                surviving.append(me)
        for _ in range(2):
            q.put("stop")
        for producer, me, p in procs:
            if not producer:
                p.join(LONG)
                self.assertEqual(p.exitcode, 0)
        tx.close()
        collector.join(LONG)
        self.assertFalse(collector.is_alive())

        self.assertEqual(log.torn, [])
        seen, per, last = set(), {}, {}
        for c, tag, seq in log.got:
            self.assertNotIn((tag, seq), seen, f"({tag}, {seq}) delivered twice")
            seen.add((tag, seq))
            if (c, tag) in last:
                self.assertLess(last[(c, tag)], seq, f"consumer {c} got {tag}/{seq} out of order")
            last[(c, tag)] = seq
            per.setdefault(tag, []).append(seq)
        # Missing below the highest delivered seq of each producer (below its count for the
        # ones that finished): only items a killed consumer had taken.
        missing = 0
        for tag, seqs in per.items():
            upto = log.done.get(tag, max(seqs) + 1)
            missing += upto - len(seqs)
        for tag in surviving:
            self.assertIn(tag, log.done, f"surviving producer {tag} did not finish")
            if tag not in per:
                missing += log.done[tag]
        print(f"\n{KILLS} kills ({len(killed_producers)} producers, {consumer_kills} consumers); "
              f"{len(log.got)} items delivered; {missing} taken by killed consumers")
        self.assertLessEqual(missing, consumer_kills)

        # Nothing stranded: the queue works and is empty.
        q.put("after", timeout=LONG)
        self.assertEqual(q.get(timeout=LONG), "after")
        self.assertTrue(q.empty())

    def test_consumers_killed_while_blocked_in_get_take_nothing(self):
        ctx = multiprocessing.get_context("fork")
        for round_ in range(10):
            with self.subTest(round=round_):
                q = procshare.Queue()
                ready = procshare.Queue()
                rx, tx = procshare.Pipe(duplex=False)
                log = Log()
                collector = threading.Thread(target=log.collect, args=(rx,), daemon=True)
                collector.start()
                kids = [ctx.Process(target=_blocked_consumer, args=(q, i, tx, ready))
                        for i in range(3)]
                for k in kids:
                    k.start()
                for _ in kids:
                    ready.get(timeout=LONG)
                time.sleep(random.uniform(0, 0.05))  # in get by now, or about to be: both fine
                kids[0].kill()
                kids[0].join(LONG)
                self.assertEqual(kids[0].exitcode, -signal.SIGKILL)
                n = 200
                for seq in range(n):
                    q.put(("item", 7, seq, payload(7, seq)))
                log.wait_for(n)  # the queue was empty when it died: it took nothing
                for _ in kids[1:]:
                    q.put("stop")
                for k in kids[1:]:
                    k.join(LONG)
                    self.assertEqual(k.exitcode, 0)
                tx.close()
                collector.join(LONG)
                self.assertEqual(log.torn, [])
                self.assertEqual(sorted(seq for _, _, seq in log.got), list(range(n)))
                self.assertEqual({c for c, _, _ in log.got} & {0}, set())

    def test_joinable_queue_survives_a_killed_worker(self):
        ctx = multiprocessing.get_context("fork")
        jq = procshare.JoinableQueue()
        for i in range(50):
            jq.put(i)
        p = ctx.Process(target=_drain_and_die, args=(jq,))
        p.start()
        p.join(LONG)
        self.assertEqual(p.exitcode, -signal.SIGKILL)
        # It took 10 and did 10; 40 are left and not done. No lock of the count is stranded.
        for _ in range(40):
            jq.get(timeout=LONG)
            jq.task_done()
        self.assertIsNone(jq.join())


def _drain_and_die(jq):
    for _ in range(10):
        jq.get()
        jq.task_done()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
