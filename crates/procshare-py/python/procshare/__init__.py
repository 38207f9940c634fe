"""procshare: a crash-safe, much faster multiprocessing.

``import procshare as multiprocessing`` is the whole ``multiprocessing`` namespace, built as
CPython builds it: every public name of the default context (``procshare.context``), whose
factories make procshare's objects — Queue, JoinableQueue, SimpleQueue, Pipe, Lock, RLock,
Semaphore, BoundedSemaphore, Event, Condition, Barrier, Value, Array, RawValue, RawArray and
Pool — while everything else (Process, current_process, Manager, get_context,
set_start_method, the exceptions, ...) is CPython's, with CPython's one start-method setting.
Submodules: ``context``, ``connection``, ``queues``, ``synchronize``, ``sharedctypes``,
``shared_memory``, ``managers`` and ``pool`` are procshare's; any other ``multiprocessing``
submodule (``util``, ``process``, ``reduction``, ...) is reached as an attribute here.

Queues live in shared memory and have no feeder thread: an item is in the queue when ``put``
returns. Items are pickled by the caller (protocol 5), so ``put`` raises pickling errors.
A process killed at any instant never leaves a torn item or a stranded lock. Every object
passes to ``Process`` children under fork, spawn and forkserver; blocking calls release the
GIL, and Ctrl-C interrupts them within about 100 ms.
"""

import importlib as _importlib
import multiprocessing as _multiprocessing

from . import _procshare
from . import context
from ._procshare import Connection, ShutDown, __version__
from ._sync import LockNotOwnedError

# The default context's public names, as multiprocessing/__init__.py copies them.
__all__ = [_n for _n in dir(context._default_context) if not _n.startswith("_")]
globals().update((_n, getattr(context._default_context, _n)) for _n in __all__)

# multiprocessing's logging levels.
SUBDEBUG = _multiprocessing.SUBDEBUG
SUBWARNING = _multiprocessing.SUBWARNING

# procshare's own.
from .pool import TaskTimeout, WorkerDied  # noqa: E402
__all__ += ["Connection", "LockNotOwnedError", "ShutDown", "TaskTimeout", "WorkerDied"]

# The submodules that are ours; any other multiprocessing submodule is CPython's (below).
_OURS = {"connection", "context", "futures", "managers", "pool", "queues", "shared_memory",
         "sharedctypes", "synchronize"}


def __getattr__(name):
    """``procshare.util``, ``procshare.process``, ...: CPython's submodule of that name."""
    if name.startswith("_") or name in _OURS:
        raise AttributeError(f"module 'procshare' has no attribute {name!r}")
    try:
        return _importlib.import_module("multiprocessing." + name)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'procshare' has no attribute {name!r}") from None
