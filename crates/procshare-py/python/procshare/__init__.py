"""procshare: a crash-safe, much faster multiprocessing.

Switch by changing an import: ``import procshare as mp`` gives Queue, JoinableQueue,
SimpleQueue, Pipe, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier with
``multiprocessing``'s signatures, return values and exceptions (``queue.Empty``,
``queue.Full``, ``EOFError``, ``ValueError`` on a closed queue,
``multiprocessing.BufferTooShort``, ``threading.BrokenBarrierError``).

Queues live in shared memory and have no feeder thread: an item is in the queue when ``put``
returns. Items are pickled by the caller (protocol 5), so ``put`` raises pickling errors.
A process killed at any instant never leaves a torn item or a stranded lock. Every object
passes to ``multiprocessing.Process`` children under fork, spawn and forkserver; blocking calls
release the GIL, and Ctrl-C interrupts them within about 100 ms.
"""

from . import _procshare
from ._procshare import (
    Connection,
    JoinableQueue,
    Pipe,
    Queue,
    ShutDown,
    SimpleQueue,
    __version__,
)

__all__ = [
    "Connection",
    "JoinableQueue",
    "Pipe",
    "Queue",
    "ShutDown",
    "SimpleQueue",
    "__version__",
]

# The locks and sync primitives (built by the sync module of the extension) under their
# multiprocessing names, when this build has them.
for _name in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier",
              "LockNotOwnedError"):
    if hasattr(_procshare, _name):
        globals()[_name] = getattr(_procshare, _name)
        __all__.append(_name)
del _name
