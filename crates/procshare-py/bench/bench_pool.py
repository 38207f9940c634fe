"""procshare.Pool against multiprocessing.Pool (same start method, same worker count):
map of N tiny tasks (default chunksize), imap with chunksize 1, apply_async throughput, and
how fast a SIGKILLed worker's task raises WorkerDied.

Run: python bench_pool.py [--n 100000] [--procs 2] [--method fork]
"""

import argparse
import multiprocessing
import os
import signal
import time

import procshare


def tiny(x):
    return x + 1


def sleepy(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(30)


def rate(pool, kind, n):
    t = time.perf_counter()
    if kind == "map":
        out = pool.map(tiny, range(n))
    elif kind == "imap1":
        out = list(pool.imap(tiny, range(n), chunksize=1))
    else:
        rs = [pool.apply_async(tiny, (i,)) for i in range(n)]
        out = [r.get() for r in rs]
    dt = time.perf_counter() - t
    assert out[-1] == n, out[-1]
    return n / dt


def death_latency(pool, rounds=5):
    path = f"/tmp/procshare-bench-pool-{os.getpid()}"
    lat = []
    for _ in range(rounds):
        if os.path.exists(path):
            os.unlink(path)
        r = pool.apply_async(sleepy, (path,))
        while not os.path.exists(path) or not open(path).read():
            time.sleep(0.005)
        pid = int(open(path).read())
        t = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            r.get(timeout=10)
        except procshare.WorkerDied:
            lat.append(time.perf_counter() - t)
    os.unlink(path)
    return sorted(lat)[len(lat) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--method", default="fork")
    a = ap.parse_args()
    rows = [("map", a.n), ("imap1", a.n // 5), ("apply_async", a.n // 5)]
    with multiprocessing.get_context(a.method).Pool(a.procs) as mp_pool, \
            procshare.get_context(a.method).Pool(a.procs) as ps_pool:
        for kind, n in rows:
            m = rate(mp_pool, kind, n)
            p = rate(ps_pool, kind, n)
            print(f"{kind:12} n={n:7}  multiprocessing {m:10.0f}/s  procshare {p:10.0f}/s  "
                  f"ratio {p / m:5.2f}x")
        print(f"killed worker's task raises WorkerDied after {death_latency(ps_pool) * 1e3:.2f} ms "
              "(median of 5)")


if __name__ == "__main__":
    main()
