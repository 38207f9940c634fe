"""``multiprocessing.pool``: ``Pool`` on procshare's Rust pool core, and CPython's ``ThreadPool``.

``Pool`` has ``multiprocessing.pool.Pool``'s API (``apply``, ``apply_async``, ``map``,
``map_async``, ``imap``, ``imap_unordered``, ``starmap``, ``starmap_async``, ``close``,
``terminate``, ``join``, ``with``; ``initializer``/``initargs``, ``maxtasksperchild``) and its
result objects (CPython's ``ApplyResult``/``MapResult``/``IMapIterator`` classes), plus
``retries`` and ``task_timeout``. The supervision is the Rust ``Pool``'s, the same code
(``_procshare.PoolCore``, ``procshare::pool::foreign``): the dispatcher, the collector, the
reaper watching each worker's pidfd, the task table in which a worker names its task before
running it. So:

* a worker killed mid-task (SIGKILL, the OOM killer) fails only that task, with
  :class:`WorkerDied` (``pid``, ``signal``, ``attempts``), after ``retries`` reruns; the worker
  is replaced and every other task completes;
* a task past ``task_timeout`` (seconds) has its worker killed and raises :class:`TaskTimeout`
  (a ``multiprocessing.TimeoutError``);
* an argument that does not pickle fails its own task (in the caller), a result that does not
  pickle its own task (``MaybeEncodingError``, as CPython's);
* a task raising any ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``) fails that task;
* Ctrl-C in ``map``/``apply``/``starmap`` terminates the pool at once (workers killed) and
  raises ``KeyboardInterrupt``; workers ignore SIGINT and exit the moment the owner dies;
* remote tracebacks are chained as CPython's (``RemoteTraceback`` as ``__cause__``).

Workers are ``multiprocessing`` processes of the pool's context (fork, spawn or forkserver):
the Rust reaper asks Python to start one, and the process's target runs the Rust task loop
(``_procshare._pool_worker``), which calls back into Python for each task.

Differences from CPython's: ``imap``/``imap_unordered`` read their whole input first (CPython
reads it lazily on a thread); a terminated pool's unfinished results raise ``RuntimeError``
instead of never completing; each item of a chunk is its own task (a death costs one item).
"""

import atexit
import itertools
import os
import signal
import threading
import weakref
from multiprocessing import TimeoutError as _MpTimeoutError, ProcessError as _ProcessError
from multiprocessing import pool as _mp_pool
from multiprocessing.pool import (  # noqa: F401 (re-exported, as multiprocessing.pool has them)
    CLOSE,
    INIT,
    RUN,
    TERMINATE,
    ApplyResult,
    AsyncResult,
    ExceptionWithTraceback,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    MaybeEncodingError,
    RemoteTraceback,
    ThreadPool,
)
from multiprocessing.reduction import ForkingPickler as _ForkingPickler
import pickle as _pickle

from . import _procshare

__all__ = ["Pool", "ThreadPool", "WorkerDied", "TaskTimeout"]

_SHIFT = 32
_MASK = (1 << _SHIFT) - 1
_job_counter = itertools.count(1)


class WorkerDied(_ProcessError):
    """The worker running a task died (on each of ``attempts`` runs): ``pid`` of the last one,
    ``signal`` that killed it (``None``: it exited)."""

    def __init__(self, pid, signal, attempts):
        self.pid, self.signal, self.attempts = pid, signal, attempts
        how = f"signal {signal}" if signal is not None else "it exited"
        super().__init__(f"the worker running the task died (pid {pid}, {how}) "
                         f"on each of {attempts} attempt(s)")

    def __reduce__(self):
        return (type(self), (self.pid, self.signal, self.attempts))


class TaskTimeout(_MpTimeoutError):
    """The task ran past the pool's ``task_timeout``; its worker was killed and replaced."""


def _dumps(obj):
    return bytes(_ForkingPickler.dumps(obj))


# ---- the worker's side ------------------------------------------------------------------------

def _run_task(data):
    """One task: ``data`` is the pickled ``(func, args, kwds)``; returns the pickled
    ``(success, value)`` (as CPython's workers put on their result queue)."""
    func = None
    try:
        func, args, kwds = _pickle.loads(data)
        result = (True, func(*args, **kwds))
    except BaseException as e:  # noqa: B036 (SystemExit, KeyboardInterrupt fail the task only)
        if func is not _mp_pool._helper_reraises_exception:
            e = ExceptionWithTraceback(e, e.__traceback__)
        result = (False, e)
    try:
        return _dumps(result)
    except Exception as e:
        return _dumps((False, MaybeEncodingError(e, result[1])))


def _worker_main(start, initializer, initargs):
    """A pool worker process's target: the initializer, then the Rust task loop."""
    # Ctrl-C is the owner's: it terminates the pool (the workers would only die mid-task).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    _procshare._pool_worker(start, _run_task)


class _Starter:
    """Starts the worker of a slot (called by the Rust reaper thread, with the GIL). Holds no
    reference to the Pool, so a forgotten pool can be collected."""

    def __init__(self, ctx, initializer, initargs):
        self.ctx, self.initializer, self.initargs = ctx, initializer, initargs
        self.procs = {}
        self.started = threading.Condition()

    def __call__(self, slot, start):
        p = self.ctx.Process(target=_worker_main, args=(start, self.initializer, self.initargs))
        p.name = p.name.replace("Process", "PoolWorker")
        p.daemon = True
        p.start()
        with self.started:
            self.procs[slot] = p
            self.started.notify_all()
        return p


# ---- the owner's side -------------------------------------------------------------------------

def _failure(kind, detail):
    if kind == "died":
        return WorkerDied(*detail)
    if kind == "timeout":
        return TaskTimeout("the task ran past the pool's task_timeout; its worker was killed")
    if kind == "cancelled":
        from concurrent.futures import CancelledError
        return CancelledError()
    if kind == "shutdown":
        return RuntimeError("the pool was terminated before the task finished")
    if kind == "broken":
        return RuntimeError(f"the pool is broken: {detail}")
    return _pickle.PicklingError(str(detail))


def _outcome(kind, payload):
    if kind is None:
        try:
            return _pickle.loads(payload)
        except BaseException as e:  # noqa: B036
            return (False, e)
    return (False, _failure(kind, payload))


def _handle_results(core, cache, lock, stop):
    """The result thread: outcomes from the Rust core to their result objects (whose ``_set``
    runs the callbacks, as CPython's result handler does)."""
    while True:
        got = core.wait(0.05)
        for index, kind, payload in got:
            obj = _outcome(kind, payload)
            with lock:
                res = cache.get(index >> _SHIFT)
                if res is None:
                    continue
                try:
                    res._set(index & _MASK, obj)
                except Exception:
                    import traceback
                    traceback.print_exc()
        more = bool(got)
        # Hold no result while waiting (CPython's test_release_task_refs).
        got = obj = res = payload = None
        if stop.is_set() and not more:
            return


def _shut(core, stop):
    """The pool's finalizer (garbage collection, interpreter exit): terminate."""
    core.terminate()
    stop.set()


class _MapResult(MapResult):
    """``MapResult`` fed one item at a time (each item is its own task)."""

    def __init__(self, pool, length, callback, error_callback):
        # chunksize 0 for no items: CPython's MapResult is then ready at once.
        super().__init__(pool, 1 if length else 0, length, callback, error_callback)

    def _set(self, i, success_result):
        success, value = success_result
        super()._set(i, (True, [value]) if success else (False, value))


_live_pools = weakref.WeakSet()


@atexit.register
def _terminate_live_pools():
    """At exit, before multiprocessing's own exit function (registered earlier, so run later)
    terminates the daemonic workers: the pool's threads must be gone before the interpreter
    finalizes (the reaper would otherwise take the GIL to replace a worker during
    finalization)."""
    for pool in list(_live_pools):
        try:
            pool._core.terminate()
            pool._stop.set()
        except Exception:
            pass


class Pool(_mp_pool.Pool):
    """A process pool on procshare's Rust pool core (see the module docs).

    A subclass of ``multiprocessing.pool.Pool`` for ``isinstance`` only: every method is ours.
    """

    _wrap_exception = True

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, retries=0, task_timeout=None):
        self._state = INIT
        self._cache = {}
        if context is None:
            from .context import _default_context
            context = _default_context.get_context()
        self._ctx = context
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds or None")
        self._processes = processes
        self._initializer, self._initargs = initializer, initargs
        self._maxtasksperchild = maxtasksperchild
        self._retries, self._task_timeout = retries, task_timeout
        self._starter = _Starter(context, initializer, initargs)
        self._set_lock = threading.RLock()
        self._stop = threading.Event()
        self._core = _procshare.PoolCore(processes, self._starter, retries, task_timeout,
                                         maxtasksperchild)
        self._result_handler = threading.Thread(
            target=_handle_results, args=(self._core, self._cache, self._set_lock, self._stop),
            name="procshare-pool-results", daemon=True)
        self._result_handler.start()
        self._finalizer = weakref.finalize(self, _shut, self._core, self._stop)
        _live_pools.add(self)
        self._state = RUN
        # As CPython's, the workers have been started when the constructor returns.
        with self._starter.started:
            self._starter.started.wait_for(
                lambda: len(self._starter.procs) >= processes or self._core.broken(), timeout=10)

    @property
    def _pool(self):
        """The worker processes running now (CPython's pool keeps this list)."""
        return list(self._starter.procs.values())

    def worker_pids(self):
        """The pids of the workers running now."""
        return self._core.worker_pids()

    def __reduce__(self):
        raise NotImplementedError(
            "pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"state={self._state} pool_size={self._processes}>")

    def __del__(self, _warn=__import__("warnings").warn, RUN=RUN):
        if getattr(self, "_state", None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning,
                  source=self)

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    # -- submission --

    def _submit(self, result, calls, chunksize=1, failed_at=None):
        """Queues ``calls`` (``(func, args, kwds)``; item ``i`` is ``result``'s index ``i``):
        one that does not pickle fails its own index. Returns the task ids by index."""
        base = result._job << _SHIFT
        ids = {}
        run, run_start, failed = [], 0, []

        def flush():
            if run:
                first = self._core.submit(run, base | run_start, chunksize)
                for k in range(len(run)):
                    ids[run_start + k] = first + k

        for i, c in enumerate(calls):
            try:
                data = _dumps(c)
            except Exception as e:
                flush()
                run, run_start = [], i + 1
                failed.append((i, e))
                continue
            run.append(data)
        flush()
        for i, e in failed:
            with self._set_lock:
                result._set(i, (False, e))
        return ids

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` in a worker; waits for its result."""
        return self._interruptible(self.apply_async(func, args, kwds))

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """Queues ``func(*args, **kwds)``; returns its ``AsyncResult``."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        result._ids = self._submit(result, [(func, tuple(args), dict(kwds))])
        return result

    def _interruptible(self, result):
        try:
            return result.get()
        except KeyboardInterrupt:
            # One Ctrl-C stops the call and the workers.
            self.terminate()
            raise

    def _chunksize(self, n, chunksize):
        if chunksize is None:
            chunksize, extra = divmod(n, self._processes * 4)
            if extra:
                chunksize += 1
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        return chunksize

    def _map_async(self, func, iterable, star, chunksize, callback, error_callback):
        self._check_running()
        items = list(iterable)
        chunksize = self._chunksize(len(items), chunksize) if items else 1
        result = _MapResult(self, len(items), callback, error_callback)
        if items:
            if star:
                calls = [(func, tuple(a), {}) for a in items]
            else:
                calls = [(func, (a,), {}) for a in items]
            self._submit(result, calls, chunksize)
        return result

    def map(self, func, iterable, chunksize=None):
        """``func`` over ``iterable`` in the workers; the results in order."""
        return self._interruptible(self._map_async(func, iterable, False, chunksize, None, None))

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, False, chunksize, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """``func(*args)`` for each ``args`` of ``iterable``; the results in order."""
        return self._interruptible(self._map_async(func, iterable, True, chunksize, None, None))

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, True, chunksize, callback, error_callback)

    def _imap(self, cls, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        result = cls(self)
        calls, error = [], None
        try:
            for x in iterable:
                calls.append((func, (x,), {}))
        except Exception as e:
            error = e
            # As CPython's: the chunk the input failed in fails as a whole.
            del calls[len(calls) // chunksize * chunksize:]
        self._submit(result, calls, chunksize)
        n = len(calls)
        if error is not None:
            with self._set_lock:
                result._set(n, (False, error))
            n += 1
        with self._set_lock:
            result._set_length(n)
        return result

    def imap(self, func, iterable, chunksize=1):
        """``func`` over ``iterable``; an iterator of the results in order."""
        return self._imap(IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """``func`` over ``iterable``; an iterator of the results as they finish."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize)

    # -- lifetime --

    def close(self):
        """No new tasks; queued ones still run."""
        if self._state == RUN:
            self._state = CLOSE
            self._core.close()

    def terminate(self):
        """Kills the workers now; unfinished tasks fail."""
        self._state = TERMINATE
        self._core.terminate()
        self._stop.set()
        self._join_handler()
        self._finalizer.detach()

    def join(self):
        """After close: waits for every task and for the workers to exit."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._core.join()
        self._stop.set()
        self._join_handler()
        self._finalizer.detach()

    def _join_handler(self):
        if self._result_handler is not threading.current_thread():
            self._result_handler.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()


def __getattr__(name):
    return getattr(_mp_pool, name)
