"""procshare: a crash-safe, much faster multiprocessing.

Switch by changing an import: ``import procshare as mp`` gives Queue, JoinableQueue,
SimpleQueue, Pipe, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier with
``multiprocessing``'s signatures, return values and exceptions.
"""

from ._procshare import __version__
from ._sync import *  # noqa: F401,F403  (Lock, RLock, ... : see _sync.py)
from ._sync import __all__ as _sync_all

__all__ = ["__version__", *_sync_all]
