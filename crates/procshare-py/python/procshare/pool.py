"""``multiprocessing.pool``: ``Pool`` and ``ThreadPool``.

**Interim.** ``Pool`` is CPython's ``multiprocessing.pool.Pool`` built with a procshare context
(the default one unless ``context=`` says otherwise), so its task and result queues are
procshare SimpleQueues and its locks procshare's; its workers and their supervision are
CPython's. The Pool on procshare's Rust core (issue 22, items 6–7: ``retries``,
``task_timeout``, ``WorkerDied``) will replace this class under the same name.
``ThreadPool`` is CPython's, and stays so.
"""

from multiprocessing import pool as _mp_pool
from multiprocessing.pool import (
    ApplyResult,
    AsyncResult,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    ThreadPool,
)

__all__ = ["Pool", "ThreadPool"]


class Pool(_mp_pool.Pool):
    """CPython's ``multiprocessing.pool.Pool`` on a procshare context (see the module docs)."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None):
        if context is None:
            from .context import _default_context
            context = _default_context.get_context()
        super().__init__(processes, initializer, initargs, maxtasksperchild, context)


def __getattr__(name):
    return getattr(_mp_pool, name)
