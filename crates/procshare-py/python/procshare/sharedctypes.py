"""``multiprocessing.sharedctypes`` on procshare: ctypes objects in shared memory that pass to
``Process`` children under fork, spawn and forkserver, guarded by procshare's crash-safe RLock.

Built on CPython's module: an object is made by CPython's ``rebuild_ctype`` over our buffer
(so it pickles for children through CPython's ``reduce_ctype``, which ``ForkingPickler``
registers for its type), and ``Value``/``Array`` wrap it with CPython's ``synchronized``
(``Synchronized``, ``SynchronizedArray``, ``SynchronizedString``: ``.value``, indexing and
slicing, ``get_lock()``, ``get_obj()``, ``.raw`` of a ``'c'`` array). What is ours:

* the memory: CPython's heap allocator (``multiprocessing.heap.Heap``: blocks carved from
  arenas that double up to 4 MiB, freed when their object goes, a fresh heap after fork) over
  arenas that are anonymous memfds mapped with ``mmap``. Nothing has a name, not even for a
  moment, so nothing can leak: the kernel frees an arena when the last process holding it is
  gone, SIGKILL included. A child gets an arena by inheritance (fork) or as a
  ``multiprocessing.reduction.DupFd`` (spawn, forkserver); an object pickles only while a child
  is being started (CPython's ``reduce_ctype``), RuntimeError otherwise.
* the default lock: a procshare ``RLock``, which the next acquirer takes over if its holder
  dies (a ``Value`` whose updater was killed mid-update stays usable; the value is what the
  dead holder left).
"""

import ctypes
import mmap
import os

from multiprocessing import heap as _mp_heap
from multiprocessing import reduction as _reduction
from multiprocessing import util as _util
from multiprocessing.sharedctypes import (
    Synchronized,
    SynchronizedArray,
    SynchronizedBase,
    SynchronizedString,
    rebuild_ctype,
    typecode_to_type,
)
from multiprocessing.sharedctypes import synchronized as _mp_synchronized

from ._reuse import rebound

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized"]


class _Arena:
    """Shared memory the heap carves objects from: an anonymous memfd and its mapping
    (CPython's ``multiprocessing.heap.Arena`` makes an unlinked file in ``/dev/shm``)."""

    def __init__(self, size, fd=-1):
        if fd == -1:
            fd = os.memfd_create("procshare-sharedctypes", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, size)
            except BaseException:
                os.close(fd)
                raise
        self.size = size
        self.fd = fd
        self.buffer = mmap.mmap(fd, size)
        # The descriptor is what a spawned child gets; the mapping stays valid without it.
        _util.Finalize(self, os.close, (fd,))


def _reduce_arena(arena):
    return _rebuild_arena, (arena.size, _reduction.DupFd(arena.fd))


def _rebuild_arena(size, dupfd):
    return _Arena(size, dupfd.detach())


# For multiprocessing's pickler only, as CPython registers its Arena (plain pickle refuses it).
_reduction.register(_Arena, _reduce_arena)


class _Heap(_mp_heap.Heap):
    """CPython's heap (its allocator, its fork handling) over our arenas."""

    _new_arena = rebound(_mp_heap.Heap._new_arena, Arena=_Arena)


class _Buffer(_mp_heap.BufferWrapper):
    """CPython's ``BufferWrapper`` on our heap: a block of an arena, freed when the object
    goes; ``rebuild_ctype`` needs only its ``create_memoryview()``."""

    _heap = _Heap()


# CPython's __init__ names its own class's heap (``BufferWrapper._heap``): run it with ours.
_Buffer.__init__ = rebound(_mp_heap.BufferWrapper.__init__, BufferWrapper=_Buffer)


def _new_value(type_):
    size = ctypes.sizeof(type_)
    obj = rebuild_ctype(type_, _Buffer(size), None)
    # A block may be a freed one: zero it, as CPython does.
    ctypes.memset(ctypes.addressof(obj), 0, size)
    return obj


def _ctype(typecode_or_type):
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def RawValue(typecode_or_type, *args):
    """A ctypes object in shared memory, without a lock."""
    obj = _new_value(_ctype(typecode_or_type))
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """A ctypes array in shared memory, without a lock: ``size_or_initializer`` is a length
    (zero-filled) or a sequence to copy."""
    type_ = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _new_value(type_ * size_or_initializer)
    obj = _new_value(type_ * len(size_or_initializer))
    obj.__init__(*size_or_initializer)
    return obj


def _locked(obj, lock, ctx):
    """``obj`` wrapped by ``synchronized`` with ``lock`` (True or None: a new RLock of ``ctx``, by
    default procshare's; False: ``obj`` itself)."""
    if lock is False:
        return obj
    if lock is True or lock is None:
        lock = None  # synchronized makes one: ctx's RLock
    elif not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return synchronized(obj, lock, ctx)


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A ctypes object in shared memory, guarded by ``lock`` (default: a procshare RLock)."""
    return _locked(RawValue(typecode_or_type, *args), lock, ctx)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A ctypes array in shared memory, guarded by ``lock`` (default: a procshare RLock)."""
    return _locked(RawArray(typecode_or_type, size_or_initializer), lock, ctx)


def synchronized(obj, lock=None, ctx=None):
    """CPython's ``synchronized``, whose default lock comes from procshare's default context
    (a procshare RLock)."""
    if ctx is None:
        from .context import _default_context
        ctx = _default_context.get_context()
    return _mp_synchronized(obj, lock, ctx)


def copy(obj):
    """A new shared ctypes object holding a copy of ``obj``."""
    new_obj = _new_value(type(obj))
    ctypes.pointer(new_obj)[0] = obj
    return new_obj
