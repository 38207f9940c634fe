"""A Python worker on a procshare-redis queue, with nothing but redis-py.

The Rust side (examples/redis_queue.rs) puts jobs on the pickle-format queue "jobs"; this worker
takes each with the same reliable step the Rust consumers use (BLMOVE from the queue's items
into its own processing list, under a lease it renews), answers on the queue "results", and
acknowledges the job in the same MULTI as the answer, so a worker killed at any point loses
nothing: its job goes back to the head of "jobs" when its lease expires.

    python3 examples/redis_worker.py redis://127.0.0.1:6379/0

Stops at a None job. Key layout: README, "Scaling past one machine".
"""

import io
import os
import pickle
import sys

import redis

LEASE_MS = 10_000


class DataOnly(pickle.Unpickler):
    """Refuses every pickle that names a class or function: peers send data, never code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def loads(raw):
    return DataOnly(io.BytesIO(raw)).load()


def keys(name):
    return f"procshare:{{{name}}}:"


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    r = redis.Redis.from_url(url)
    jobs, results = keys("jobs"), keys("results")
    for q in (jobs, results):
        fmt = r.hget(q + "meta", "format")
        if fmt != b"pickle":
            sys.exit(f"queue {q!r} holds {fmt!r} items, not pickle: open it with Format::Pickle")
    me = f"py-{os.uname().nodename}-{os.getpid()}"
    proc, lease = jobs + "proc:" + me, jobs + "lease:" + me
    done = 0
    while True:
        # Renewed before each wait; a job runs well inside one lease here.
        r.set(lease, 1, px=LEASE_MS)
        r.sadd(jobs + "consumers", me)
        raw = r.blmove(jobs + "items", proc, 5, "LEFT", "RIGHT")
        if raw is None:
            continue
        try:
            job = loads(raw)
        except Exception as e:  # garbage in the queue: drop that item, keep working
            print(f"{me}: skipping a bad item: {e}", file=sys.stderr)
            r.lrem(proc, 1, raw)
            continue
        if job is None:
            r.lrem(proc, 1, raw)
            break
        answer = pickle.dumps((job, job * job), protocol=3)
        with r.pipeline(transaction=True) as p:
            p.rpush(results + "items", answer)
            p.lrem(proc, 1, raw)
            p.execute()
        done += 1
    r.delete(lease)
    r.srem(jobs + "consumers", me)
    print(f"{me}: {done} jobs")


if __name__ == "__main__":
    main()
