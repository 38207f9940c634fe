"""Throughput of procshare.Queue vs multiprocessing.Queue vs faster_fifo.Queue (1->1 and 4->4
processes, a 5-int tuple and 1 MiB bytes), Queue.put_many/get_many in batches, procshare.Pipe vs
multiprocessing.Pipe (small objects) and uncontended Lock acquire+release.

Every row is measured --repeat times; within a repetition the contenders run back to back
(procshare, multiprocessing, faster_fifo), so each ratio compares runs a few seconds apart on
this noisy machine. The table gives the median ratio and its spread (min..max over the
repetitions), and whether the median meets the target.

    python crates/procshare-py/bench/bench_queues.py [--n N] [--repeat R] [--only ROW]
"""

import argparse
import multiprocessing as mp
import queue
import statistics
import sys
import time

import procshare

SMALL = (1, 2, 3, 4, 5)
BIG = b"x" * (1 << 20)
BATCH = 100


def producer(q, n, item):
    put = q.put
    for _ in range(n):
        put(item)


def consumer(q, n, done):
    # faster_fifo's get(timeout) can raise Empty early when several consumers race for one
    # large message: retry until an overall minute ran out.
    get = q.get
    deadline = time.monotonic() + 60
    got = 0
    while got < n:
        try:
            get(timeout=1)
            got += 1
        except queue.Empty:
            if time.monotonic() > deadline:
                raise
    done.put(1)


def producer_many(q, n, item):
    batch = [item] * BATCH
    for _ in range(n // BATCH):
        q.put_many(batch)


def consumer_many(q, n, done):
    got = 0
    while got < n:
        got += len(q.get_many(BATCH, timeout=60))
    done.put(1)


def queue_rate(make, procs, n, item, batched=False):
    """Items per second through a queue, `procs` producers and `procs` consumers."""
    q = make()
    done = mp.Queue()
    per = n // procs
    prod, cons = (producer_many, consumer_many) if batched else (producer, consumer)
    ps = [mp.Process(target=prod, args=(q, per, item)) for _ in range(procs)]
    cs = [mp.Process(target=cons, args=(q, per, done)) for _ in range(procs)]
    t = time.perf_counter()
    for p in cs + ps:
        p.start()
    for _ in cs:
        done.get()
    e = time.perf_counter() - t
    for p in cs + ps:
        p.join()
    return per * procs / e


def pipe_sender(c, n, item):
    send = c.send
    for _ in range(n):
        send(item)


def pipe_rate(make, n, item):
    r, w = make(False)
    p = mp.Process(target=pipe_sender, args=(w, n, item))
    t = time.perf_counter()
    p.start()
    recv = r.recv
    for _ in range(n):
        recv()
    e = time.perf_counter() - t
    p.join()
    return n / e


def lock_rate(make, n):
    lock = make()
    acquire, release = lock.acquire, lock.release
    t = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return n / (time.perf_counter() - t)


def faster_fifo_queue():
    try:
        import faster_fifo
    except ImportError:
        return None
    return lambda: faster_fifo.Queue(max_size_bytes=64 << 20)


def rows(n):
    """(name, unit, {contender: thunk -> rate}, {baseline: target ratio or None})."""
    ff = faster_fifo_queue()
    big_n = max(n // 200, 40)
    out = []
    for procs in (1, 4):
        for label, item, k, targets in (
            ("5-int tuple", SMALL, n, {"mp.Queue": 5.0, "faster_fifo": 3.0}),
            ("1 MiB bytes", BIG, big_n, {"mp.Queue": 5.0, "faster_fifo": None}),
        ):
            c = {
                "procshare": lambda p=procs, i=item, k=k: queue_rate(procshare.Queue, p, k, i),
                "mp.Queue": lambda p=procs, i=item, k=k: queue_rate(mp.Queue, p, k, i),
            }
            if ff is not None:
                c["faster_fifo"] = lambda p=procs, i=item, k=k: queue_rate(ff, p, k, i)
            out.append((f"Queue {procs}->{procs}, {label}", "items/s", c, targets))
    out.append((
        f"Queue 1->1, 5-int tuple, put_many/get_many({BATCH}) vs put/get",
        "items/s",
        {
            "procshare": lambda: queue_rate(procshare.Queue, 1, n, SMALL, batched=True),
            "mp.Queue": lambda: queue_rate(mp.Queue, 1, n, SMALL),
        },
        {"mp.Queue": None},
    ))
    out.append((
        "Pipe 1->1, 5-int tuple",
        "msgs/s",
        {
            "procshare": lambda: pipe_rate(procshare.Pipe, n, SMALL),
            "mp.Pipe": lambda: pipe_rate(mp.Pipe, n, SMALL),
        },
        {"mp.Pipe": 3.0},
    ))
    out.append((
        "Pipe 1->1, 1 MiB bytes",
        "msgs/s",
        {
            "procshare": lambda: pipe_rate(procshare.Pipe, big_n, BIG),
            "mp.Pipe": lambda: pipe_rate(mp.Pipe, big_n, BIG),
        },
        {"mp.Pipe": None},
    ))
    out.append((
        "Lock acquire+release, uncontended",
        "pairs/s",
        {
            "procshare": lambda: lock_rate(procshare.Lock, 20 * n),
            "mp.Lock": lambda: lock_rate(mp.Lock, 20 * n),
        },
        {"mp.Lock": None},
    ))
    return out


def fmt_rate(r):
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k" if r >= 1e3 else f"{r:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000, help="small items per run")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions per row")
    ap.add_argument("--only", default=None, help="run only the rows whose name contains this")
    a = ap.parse_args()
    mp.set_start_method("fork")
    table = []
    for name, unit, contenders, targets in rows(a.n):
        if a.only and a.only not in name:
            continue
        rates = {c: [] for c in contenders}
        for _ in range(a.repeat):
            for c, run in contenders.items():
                rates[c].append(run())
        mine = statistics.median(rates["procshare"])
        print(f"{name}: " + "  ".join(
            f"{c} {fmt_rate(statistics.median(r))}/s" for c, r in rates.items()),
            file=sys.stderr, flush=True)
        for base, target in targets.items():
            if base not in rates:
                continue
            ratios = [p / b for p, b in zip(rates["procshare"], rates[base])]
            med = statistics.median(ratios)
            verdict = "—" if target is None else ("met" if med >= target else "**missed**")
            table.append((
                name, f"{fmt_rate(mine)} {unit}", base,
                f"{fmt_rate(statistics.median(rates[base]))} {unit}",
                f"{med:.2f}×", f"{min(ratios):.2f}–{max(ratios):.2f}",
                "—" if target is None else f"≥ {target:g}×", verdict,
            ))
    print(f"Python {sys.version.split()[0]}, procshare {procshare.__version__}, "
          f"n={a.n}, {a.repeat} repetitions (ratio: median, spread min–max)\n")
    print("| benchmark | procshare | baseline | baseline rate | ratio | spread | target | |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for r in table:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
