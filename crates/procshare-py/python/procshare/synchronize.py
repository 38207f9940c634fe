"""``multiprocessing.synchronize`` on procshare: Lock, RLock, Semaphore, BoundedSemaphore,
Event, Condition and Barrier (crash-safe, in shared memory; see ``procshare._sync``).

Each constructor takes ``multiprocessing.synchronize``'s keyword ``ctx`` and ignores it: a
procshare object works under every start method. ``SEM_VALUE_MAX`` is CPython's.
"""

from multiprocessing.synchronize import SEM_VALUE_MAX

from ._sync import (
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    Lock,
    LockNotOwnedError,
    RLock,
    Semaphore,
)

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event"]
