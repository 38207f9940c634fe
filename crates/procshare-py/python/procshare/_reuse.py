"""One way to build on CPython's classes without copying their code: CPython's own function
(its code object, defaults and closure) with some of the module globals it reads replaced.

``multiprocessing.shared_memory.ShareableList.__init__`` calls the module's ``SharedMemory``,
``multiprocessing.managers.SharedMemoryManager.SharedMemory`` calls the module's
``shared_memory``: ``rebound(func, SharedMemory=ours)`` is the same function reading ours. The
globals are a snapshot taken here, with the replacements applied; nothing of CPython's changes.
"""

import types


def rebound(func, **names):
    """``func`` (a plain function) running with ``names`` replacing its module's globals."""
    missing = [n for n in names if n not in func.__code__.co_names]
    if missing:
        # The function no longer reads these (another CPython version): fail at import, loudly,
        # rather than silently running CPython's objects.
        raise ImportError(f"{func.__qualname__} does not read {missing} any more")
    g = dict(func.__globals__)
    g.update(names)
    new = types.FunctionType(func.__code__, g, func.__name__, func.__defaults__, func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__doc__ = func.__doc__
    new.__dict__.update(func.__dict__)
    return new
