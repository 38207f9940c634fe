"""Locks and other synchronisation between processes, with ``multiprocessing.synchronize``'s
signatures: Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier.

The classes live in the Rust extension (``procshare._procshare``); this module names them for
``procshare/__init__.py`` (``from ._sync import *``).
"""

from ._procshare import (
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    Lock,
    LockNotOwnedError,
    RLock,
    Semaphore,
)

__all__ = [
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Condition",
    "Barrier",
    "LockNotOwnedError",
]
