"""``multiprocessing.managers``: CPython's, plus a ``SharedMemoryManager`` whose segments are
procshare's.

``SharedMemoryManager`` is CPython's class (its server process, its ``start``/``shutdown``/
``with``), running CPython's own methods with procshare's ``shared_memory`` module: the blocks
and lists it hands out are ``procshare.shared_memory`` objects, and its server unlinks them at
shutdown through procshare too (so Python's ``resource_tracker`` sees none of them). Every
other name is CPython's ``multiprocessing.managers``'.
"""

from multiprocessing import managers as _mp_managers
from multiprocessing.managers import BaseManager, BaseProxy, SyncManager, Token

from . import shared_memory
from ._reuse import rebound

__all__ = ["BaseManager", "SyncManager", "BaseProxy", "Token", "SharedMemoryManager"]


class _SharedMemoryTracker(_mp_managers._SharedMemoryTracker):
    destroy_segment = rebound(
        _mp_managers._SharedMemoryTracker.destroy_segment, shared_memory=shared_memory
    )


class SharedMemoryServer(_mp_managers.SharedMemoryServer):
    __init__ = rebound(
        _mp_managers.SharedMemoryServer.__init__, _SharedMemoryTracker=_SharedMemoryTracker
    )


class SharedMemoryManager(_mp_managers.SharedMemoryManager):
    """CPython's ``SharedMemoryManager`` handing out procshare segments (see the module docs)."""

    _Server = SharedMemoryServer
    SharedMemory = rebound(
        _mp_managers.SharedMemoryManager.SharedMemory, shared_memory=shared_memory
    )
    ShareableList = rebound(
        _mp_managers.SharedMemoryManager.ShareableList, shared_memory=shared_memory
    )


def __getattr__(name):
    return getattr(_mp_managers, name)
