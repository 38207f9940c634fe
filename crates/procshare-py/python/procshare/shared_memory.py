"""``multiprocessing.shared_memory`` on procshare's segments: SharedMemory and ShareableList.

Both are CPython's classes (subclasses; ``ShareableList`` runs CPython's own ``__init__``
with our ``SharedMemory``), so the byte layout is CPython's and a segment made here is read by
``multiprocessing.shared_memory`` in any process, and the other way round. What differs:

* the segment is made and opened by procshare (``procshare::SharedMemory``), whose tracker
  replaces Python's ``resource_tracker``: nothing is registered with the latter, so there are
  no "leaked shared_memory" warnings, and a segment made here is unlinked once every process
  that created or opened it has died, SIGKILL included (``procshare shm ls`` lists the live
  ones). A segment is still gone at once after ``unlink()``.
* ``track`` (CPython 3.13's keyword, accepted on every version): ``track=False`` makes a
  segment that outlives every process until someone unlinks it.
* names are 1 to 30 bytes (a leading ``/`` is dropped, as CPython's ``name`` shows it).
"""

import mmap
import os

from multiprocessing import shared_memory as _mp_shm

from . import _procshare
from ._reuse import rebound

__all__ = ["SharedMemory", "ShareableList"]


class SharedMemory(_mp_shm.SharedMemory):
    """CPython's ``SharedMemory`` on a procshare segment (see the module docs).

    SharedMemory(name=None, create=False, size=0, *, track=True). ``buf`` is a memoryview of
    an ``mmap`` of the segment, as CPython's; ``close()``, ``__reduce__`` (by name) and
    ``__repr__`` are CPython's.
    """

    def __init__(self, name=None, create=False, size=0, *, track=True):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        flags = (os.O_CREAT | os.O_EXCL | os.O_RDWR) if create else self._flags
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if name is None and not flags & os.O_EXCL:
            raise ValueError("'name' can only be None if create=True")
        self._fd = -1
        self._mmap = None
        self._buf = None
        self._track = track
        persistent = not track
        if name is None:
            # CPython's name maker (so a test that mocks it steers ours too), retried on a taken
            # name as CPython's loop does.
            while True:
                try:
                    segment = _procshare._Segment.create(_mp_shm._make_filename(), size, persistent)
                    break
                except FileExistsError:
                    continue
        elif flags & os.O_EXCL:
            segment = _procshare._Segment.create(name, size, persistent)
        elif flags & os.O_CREAT:
            # A subclass's O_CREAT without O_EXCL: attach, or create if there is none.
            try:
                segment = _procshare._Segment.open(name)
            except FileNotFoundError:
                segment = _procshare._Segment.create(name, size, persistent)
        else:
            segment = _procshare._Segment.open(name)
        self._segment = segment
        self._name = "/" + segment.name
        self._size = segment.size
        self._fd = segment.dup_fd()
        self._mmap = mmap.mmap(self._fd, self._size)
        self._buf = memoryview(self._mmap)

    def unlink(self):
        """Removes the segment's name: nobody can open it any more; existing mappings stay
        valid. FileNotFoundError if it is gone already."""
        self._segment.unlink()


class ShareableList(_mp_shm.ShareableList):
    """CPython's ``ShareableList`` (its layout, its methods) on a procshare ``SharedMemory``."""

    __init__ = rebound(_mp_shm.ShareableList.__init__, SharedMemory=SharedMemory)


def __getattr__(name):
    # CPython's module-level names (``_SHM_NAME_PREFIX``, ``_USE_POSIX``, ...), as they are.
    return getattr(_mp_shm, name)
