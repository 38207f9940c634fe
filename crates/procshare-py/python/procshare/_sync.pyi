"""Type stubs for procshare's locks and synchronisation (multiprocessing.synchronize's API).

All blocking calls release the GIL and can be interrupted by Ctrl-C (KeyboardInterrupt).
Objects pass to multiprocessing.Process children under fork, spawn and forkserver; pickling
them at any other time raises RuntimeError.
"""

from types import TracebackType
from typing import Any, Callable, Optional, Type, TypeVar, Union

_T = TypeVar("_T")

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

class LockNotOwnedError(RuntimeError, AssertionError):
    """Condition.wait/notify without holding the lock (RuntimeError as threading's,
    AssertionError as multiprocessing's)."""

class Lock:
    """A non-recursive lock shared by processes (multiprocessing.Lock). A holder that dies
    (killed, or its thread ended holding it) does not strand it: the next acquire takes it
    over."""

    def __init__(self, *, ctx: Any = None) -> None: ...
    def acquire(self, block: object = True, timeout: Optional[float] = None) -> bool:
        """True once held; False if block is false and the lock is held, or timeout passed
        (a negative timeout is 0)."""
    def release(self) -> None:
        """Release (any thread or process may). ValueError if not locked."""
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class RLock:
    """A recursive lock shared by processes (multiprocessing.RLock)."""

    def __init__(self, *, ctx: Any = None) -> None: ...
    def acquire(self, block: object = True, timeout: Optional[float] = None) -> bool:
        """True once held (at once if this thread holds it)."""
    def release(self) -> None:
        """Release one level. AssertionError unless this thread holds it."""
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class Semaphore:
    """A counting semaphore shared by processes (multiprocessing.Semaphore). Units taken by a
    process that dies are not given back (as in multiprocessing)."""

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        """ValueError if value < 0 or > 2**31 - 1."""
    def acquire(self, block: object = True, timeout: Optional[float] = None) -> bool: ...
    def release(self) -> None:
        """ValueError past 2**31 - 1 units."""
    def get_value(self) -> int: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class BoundedSemaphore(Semaphore):
    """A semaphore whose release past its start value raises ValueError
    (multiprocessing.BoundedSemaphore)."""

class Event:
    """A flag processes wait for (multiprocessing.Event)."""

    def __init__(self, *, ctx: Any = None) -> None: ...
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once set; False if timeout passed."""

class Condition:
    """A condition variable shared by processes (multiprocessing.Condition). A waiter killed
    in wait() never makes notify() hang; the notify goes to a live waiter."""

    def __init__(self, lock: Optional[Union[Lock, RLock]] = None, *, ctx: Any = None) -> None:
        """lock: a procshare Lock or RLock (a new RLock by default); TypeError otherwise."""
    def acquire(self, block: object = True, timeout: Optional[float] = None) -> bool: ...
    def release(self) -> None: ...
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Release the lock (every level of an RLock), wait for a notify (True) or the
        timeout (False), take the lock back. LockNotOwnedError without the lock."""
    def wait_for(self, predicate: Callable[[], _T], timeout: Optional[float] = None) -> _T:
        """Wait until predicate() is true or timeout passed; predicate's last result."""
    def notify(self, n: int = 1) -> None:
        """Wake up to n waiters, oldest first. LockNotOwnedError without the lock."""
    def notify_all(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class Barrier:
    """A meeting point for parties threads or processes (multiprocessing.Barrier). A party
    that dies while the others need it breaks the barrier (BrokenBarrierError, not a hang)."""

    def __init__(
        self,
        parties: int,
        action: Optional[Callable[[], Any]] = None,
        timeout: Optional[float] = None,
        *,
        ctx: Any = None,
    ) -> None:
        """action runs in the last arriving party before any party goes on."""
    def wait(self, timeout: Optional[float] = None) -> int:
        """This party's arrival index (0 to parties - 1). threading.BrokenBarrierError if the
        barrier is or becomes broken; a timeout breaks it."""
    def reset(self) -> None: ...
    def abort(self) -> None: ...
    @property
    def parties(self) -> int: ...
    @property
    def n_waiting(self) -> int: ...
    @property
    def broken(self) -> bool: ...
