"""Throughput of procshare.Queue vs multiprocessing.Queue vs faster_fifo.Queue (1->1 and 4->4
processes, a 5-int tuple and 1 MiB bytes) and procshare.Pipe vs multiprocessing.Pipe (small
objects). One run; items per second, total over consumers.

    python crates/procshare-py/bench/bench_queues.py [--n N]
"""

import argparse
import multiprocessing as mp
import time

import procshare

SMALL = (1, 2, 3, 4, 5)


def producer(q, n, item):
    for _ in range(n):
        q.put(item)


def consumer(q, n, done):
    for _ in range(n):
        q.get(timeout=60)
    done.put(1)


def queue_rate(make, procs, n, item):
    q = make()
    done = mp.Queue()
    per = n // procs
    ps = [mp.Process(target=producer, args=(q, per, item)) for _ in range(procs)]
    cs = [mp.Process(target=consumer, args=(q, per, done)) for _ in range(procs)]
    t = time.perf_counter()
    for p in cs + ps:
        p.start()
    for _ in cs:
        done.get()
    e = time.perf_counter() - t
    for p in cs + ps:
        p.join()
    return per * procs / e


def pipe_sender(c, n):
    for _ in range(n):
        c.send(SMALL)


def pipe_rate(make, n):
    r, w = make(False)
    p = mp.Process(target=pipe_sender, args=(w, n))
    t = time.perf_counter()
    p.start()
    for _ in range(n):
        r.recv()
    e = time.perf_counter() - t
    p.join()
    return n / e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    a = ap.parse_args()
    mp.set_start_method("fork")
    try:
        import faster_fifo

        ff = lambda: faster_fifo.Queue(max_size_bytes=64 << 20)  # noqa: E731
    except ImportError:
        ff = None
    for procs in (1, 4):
        for label, item, n in (("5-int tuple", SMALL, a.n), ("1 MiB bytes", b"x" * (1 << 20), max(a.n // 200, 40))):
            ps = queue_rate(procshare.Queue, procs, n, item)
            mq = queue_rate(mp.Queue, procs, n, item)
            line = f"{procs}->{procs} {label}: procshare {ps:,.0f}/s  mp.Queue {mq:,.0f}/s ({ps / mq:.1f}x)"
            if ff is not None:
                f = queue_rate(ff, procs, n, item)
                line += f"  faster_fifo {f:,.0f}/s ({ps / f:.1f}x)"
            print(line, flush=True)
    ps = pipe_rate(procshare.Pipe, a.n)
    mpp = pipe_rate(mp.Pipe, a.n)
    print(f"Pipe 5-int tuple: procshare {ps:,.0f}/s  mp.Pipe {mpp:,.0f}/s ({ps / mpp:.1f}x)")


if __name__ == "__main__":
    main()
