"""``procshare.futures.ProcessPoolExecutor``: a ``concurrent.futures.Executor`` on
``procshare.Pool`` (the Rust pool core's supervision), with the stdlib's API plus ``retries``
and ``task_timeout``.

A worker killed mid-task fails only that future (``procshare.WorkerDied``, after ``retries``
reruns); the executor goes on (the stdlib's breaks: ``BrokenProcessPool``). A future is
``PENDING`` until it is done, so ``cancel()`` succeeds on any unfinished future: a queued task
is dropped, a running one has its worker killed and replaced.
"""

import concurrent.futures as _cf
import threading

from .pool import Pool, TaskTimeout, WorkerDied

__all__ = ["ProcessPoolExecutor", "WorkerDied", "TaskTimeout"]


class ProcessPoolExecutor(_cf.Executor):
    """``concurrent.futures.ProcessPoolExecutor``'s signature, on a procshare Pool."""

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, retries=0, task_timeout=None):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = Pool(max_workers, initializer, initargs, max_tasks_per_child,
                          context=mp_context, retries=retries, task_timeout=task_timeout)
        self._max_workers = self._pool._processes
        self._lock = threading.Lock()
        self._shutdown = False
        self._pending = {}

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            f = _cf.Future()
            key = object()

            def done(value, f=f, key=key):
                self._pending.pop(key, None)
                if not f.done():
                    try:
                        f.set_result(value)
                    except _cf.InvalidStateError:
                        pass

            def failed(exc, f=f, key=key):
                self._pending.pop(key, None)
                if not f.done():
                    try:
                        f.set_exception(exc)
                    except _cf.InvalidStateError:
                        pass

            r = self._pool.apply_async(fn, args, kwargs, callback=done, error_callback=failed)
            self._pending[key] = (f, r)
            ids = getattr(r, "_ids", {})

            def on_done(fut, ids=ids):
                if fut.cancelled():
                    self._pending.pop(key, None)
                    for i in ids.values():
                        self._pool._core.cancel(i)

            f.add_done_callback(on_done)
            return f

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        return super().map(fn, *iterables, timeout=timeout)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
        if cancel_futures:
            for f, _ in list(self._pending.values()):
                f.cancel()
        if first:
            self._pool.close()
        if wait:
            self._pool.join()
        else:
            threading.Thread(target=self._pool.join, daemon=True).start()
