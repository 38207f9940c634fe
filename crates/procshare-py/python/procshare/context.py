"""procshare's contexts: CPython's ``multiprocessing.context`` classes, with factories that make
procshare objects.

Built as CPython builds ``multiprocessing`` (``Lib/multiprocessing/context.py``), on top of its
classes: one :class:`BaseContext` (a ``multiprocessing.context.BaseContext``) holds every
factory, and each concrete context is CPython's concrete context with ours in front::

    ForkContext(BaseContext, multiprocessing.context.ForkContext)        _name, Process: CPython's
    SpawnContext(BaseContext, multiprocessing.context.SpawnContext)
    ForkServerContext(BaseContext, multiprocessing.context.ForkServerContext)
    DefaultContext(BaseContext, multiprocessing.context.DefaultContext)

So ``isinstance(ctx, multiprocessing.context.BaseContext)`` holds (``concurrent.futures``,
``multiprocessing.pool`` and libraries that check for a context accept ours), ``ctx.Process``,
``ctx.Manager``, ``ctx.get_logger``, the exceptions and everything else not listed below are
CPython's, and the factories make procshare's objects: ``Queue``, ``JoinableQueue``,
``SimpleQueue``, ``Pipe``, ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``,
``Condition``, ``Barrier``, ``Value``, ``Array``, ``RawValue``, ``RawArray``, ``Pool``.

There is one start-method setting, CPython's: the default context keeps no state of its own and
asks ``multiprocessing.context._default_context`` (so ``procshare.set_start_method("spawn")``
and ``multiprocessing.set_start_method("spawn")`` are the same call, and ``procshare.Process``
is ``multiprocessing.Process``). A concrete context is looked up by CPython (its errors, its
availability checks) and answered with our twin of the same name.
"""

import multiprocessing.context as _mp_context

from . import _procshare, queues, synchronize

__all__ = []  # as CPython's context module: the names are reached through the contexts


class BaseContext(_mp_context.BaseContext):
    """CPython's ``BaseContext`` whose factories make procshare objects.

    The classes whose constructor is the factory's signature are the factories themselves, so
    ``ctx.Queue is procshare.Queue`` (``Queue.open``, ``isinstance`` work through the context).
    """

    Queue = staticmethod(queues.Queue)
    JoinableQueue = staticmethod(queues.JoinableQueue)
    SimpleQueue = staticmethod(queues.SimpleQueue)
    Lock = staticmethod(synchronize.Lock)
    RLock = staticmethod(synchronize.RLock)
    Semaphore = staticmethod(synchronize.Semaphore)
    BoundedSemaphore = staticmethod(synchronize.BoundedSemaphore)
    Event = staticmethod(synchronize.Event)
    Condition = staticmethod(synchronize.Condition)
    Barrier = staticmethod(synchronize.Barrier)

    def Pipe(self, duplex=True):
        """Returns two procshare Connections joined by a pipe."""
        return _procshare.Pipe(duplex)

    def RawValue(self, typecode_or_type, *args):
        """Returns a ctypes object in procshare shared memory, without a lock."""
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type, size_or_initializer):
        """Returns a ctypes array in procshare shared memory, without a lock."""
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type, *args, lock=True):
        """Returns a ctypes object in procshare shared memory, guarded by a procshare RLock."""
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type, size_or_initializer, *, lock=True):
        """Returns a ctypes array in procshare shared memory, guarded by a procshare RLock."""
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self.get_context())

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, *,
             retries=0, task_timeout=None):
        """Returns a process pool on procshare's Rust pool core (see procshare.pool)."""
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self.get_context(), retries=retries, task_timeout=task_timeout)

    def get_context(self, method=None):
        if method is None:
            return self
        return _twin(super().get_context(method))


def _twin(mp_ctx):
    """Our concrete context for CPython's concrete context ``mp_ctx``."""
    return _concrete_contexts[mp_ctx.get_start_method()]


class ForkContext(BaseContext, _mp_context.ForkContext):
    pass


class SpawnContext(BaseContext, _mp_context.SpawnContext):
    pass


class ForkServerContext(BaseContext, _mp_context.ForkServerContext):
    pass


class DefaultContext(BaseContext, _mp_context.DefaultContext):
    """The default context: the start method is CPython's default context's (never a copy)."""

    def __init__(self):
        # No ``_default_context``/``_actual_context`` of our own: CPython's default context
        # holds the one setting.
        pass

    def get_context(self, method=None):
        if method is None:
            return _twin(_mp_context._default_context.get_context())
        return super().get_context(method)

    def set_start_method(self, method, force=False):
        _mp_context._default_context.set_start_method(method, force)

    def get_start_method(self, allow_none=False):
        return _mp_context._default_context.get_start_method(allow_none)

    def get_all_start_methods(self):
        return _mp_context._default_context.get_all_start_methods()


_concrete_contexts = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}
_default_context = DefaultContext()
