"""Locks and other synchronisation between processes, with ``multiprocessing.synchronize``'s
signatures: Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier.

The classes live in the Rust extension (``procshare._procshare``); this module names them for
``procshare.synchronize`` (whose classes the contexts' factories are) and the stubs
(``_sync.pyi``).
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
