"""``multiprocessing.sharedctypes`` on procshare: ctypes objects in shared memory that pass to
``Process`` children under fork, spawn and forkserver, guarded by procshare's crash-safe RLock.

Built on CPython's module: an object is made by CPython's ``rebuild_ctype`` over our buffer
(so it pickles for children through CPython's ``reduce_ctype``, which ``ForkingPickler``
registers for its type), and ``Value``/``Array`` wrap it with CPython's ``synchronized``
(``Synchronized``, ``SynchronizedArray``, ``SynchronizedString``: ``.value``, indexing and
slicing, ``get_lock()``, ``get_obj()``, ``.raw`` of a ``'c'`` array). What is ours:

* the memory: each object has its own anonymous memfd (``_Buffer``), mapped with ``mmap`` and
  zero-filled by the kernel. Nothing has a name, so nothing can leak: the kernel frees it when
  the last process holding it is gone, SIGKILL included. A child gets it by inheritance (fork)
  or as a ``multiprocessing.reduction.DupFd`` (spawn, forkserver); pickling it at any other
  time is RuntimeError, as CPython's. (CPython carves objects out of a heap of such files; one
  file per object costs a descriptor and a page each.)
* the default lock: a procshare ``RLock``, which the next acquirer takes over if its holder
  dies (a ``Value`` whose updater was killed mid-update stays usable; the value is what the
  dead holder left).
"""

import ctypes
import mmap
import os

from multiprocessing import context as _mp_context
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

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized"]


class _Buffer:
    """The shared memory of one object: an anonymous memfd and its mapping. CPython's
    ``rebuild_ctype`` needs only ``create_memoryview()``."""

    def __init__(self, size, fd=None):
        if fd is None:
            fd = os.memfd_create("procshare-sharedctypes", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, size)
            except BaseException:
                os.close(fd)
                raise
        self._size = size
        self._fd = fd
        self._map = mmap.mmap(fd, size)
        # The descriptor is what a spawned child gets; the mapping stays valid without it.
        _util.Finalize(self, os.close, (fd,))

    def create_memoryview(self):
        return memoryview(self._map)

    def __reduce__(self):
        _mp_context.assert_spawning(self)
        return _rebuild_buffer, (self._size, _reduction.DupFd(self._fd))


def _rebuild_buffer(size, dupfd):
    return _Buffer(size, dupfd.detach())


def _new_value(type_):
    # A zero-size type still gets a page: mmap refuses empty files.
    return rebuild_ctype(type_, _Buffer(max(ctypes.sizeof(type_), 1)), None)


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
