"""Lock acquire/release: procshare.Lock vs multiprocessing.Lock, uncontended (one thread) and
contended (two processes taking turns at one lock); and Value get/set (locked, the default):
procshare.Value vs multiprocessing.Value. Prints ns per operation and the ratio (> 1: procshare
is faster). Small on purpose: a few seconds in all.

Run: python crates/procshare-py/bench/bench_sync.py [--n N]
"""

import argparse
import multiprocessing as mp
import time

import procshare


def _uncontended(lock, n):
    acquire, release = lock.acquire, lock.release
    t = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - t) / n * 1e9


def _uncontended_with(lock, n):
    t = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return (time.perf_counter() - t) / n * 1e9


def _hammer(lock, n, start):
    start.wait()
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        release()


def _contended(lock, n, ctx):
    start = ctx.Event()
    kids = [ctx.Process(target=_hammer, args=(lock, n, start)) for _ in range(2)]
    for k in kids:
        k.start()
    time.sleep(0.2)  # both started
    t = time.perf_counter()
    start.set()
    for k in kids:
        k.join()
    return (time.perf_counter() - t) / (2 * n) * 1e9


def _value_get_set(value, n):
    t = time.perf_counter()
    for i in range(n):
        value.value = i
        value.value
    return (time.perf_counter() - t) / n * 1e9


def _value_increment(value, n):
    t = time.perf_counter()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    return (time.perf_counter() - t) / n * 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    ctx = mp.get_context("fork")
    rows = []
    for name, run in (
        ("uncontended, 1 thread", lambda lock: _uncontended(lock, n)),
        ("uncontended, `with lock:`", lambda lock: _uncontended_with(lock, n)),
        ("contended, 2 processes", lambda lock: _contended(lock, n // 2, ctx)),
    ):
        mp_ns = min(run(ctx.Lock()) for _ in range(3))
        ps_ns = min(run(procshare.Lock()) for _ in range(3))
        rows.append((name, mp_ns, ps_ns))
    print(f"{'Lock acquire+release':26} {'multiprocessing':>16} {'procshare':>10} {'ratio':>6}")
    for name, mp_ns, ps_ns in rows:
        print(f"{name:26} {mp_ns:13.0f} ns {ps_ns:7.0f} ns {mp_ns / ps_ns:5.2f}x")
    rows = []
    for name, run in (
        ("set + get", lambda v: _value_get_set(v, n)),
        ("`with get_lock(): += 1`", lambda v: _value_increment(v, n)),
    ):
        mp_ns = min(run(ctx.Value("i", 0)) for _ in range(3))
        ps_ns = min(run(procshare.get_context("fork").Value("i", 0)) for _ in range(3))
        rows.append((name, mp_ns, ps_ns))
    print(f"{'Value(i), locked':26} {'multiprocessing':>16} {'procshare':>10} {'ratio':>6}")
    for name, mp_ns, ps_ns in rows:
        print(f"{name:26} {mp_ns:13.0f} ns {ps_ns:7.0f} ns {mp_ns / ps_ns:5.2f}x")


if __name__ == "__main__":
    main()
