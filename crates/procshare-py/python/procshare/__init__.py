"""procshare: a crash-safe, much faster multiprocessing.

Switch by changing an import: ``import procshare as mp`` gives Queue, JoinableQueue,
SimpleQueue, Pipe, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier with
``multiprocessing``'s signatures, return values and exceptions.
"""

from ._procshare import __version__

__all__ = ["__version__"]
