"""``multiprocessing.connection``'s ``wait`` for procshare Connections."""

from ._procshare import Connection, _wait

__all__ = ["Connection", "wait"]


def wait(object_list, timeout=None):
    """Wait until one or more of the Connections in object_list is ready to read.

    Returns the list of those that are ready (a message, or end-of-file), waiting up to
    timeout seconds (None: until one is); an empty list when the timeout ran out. Ctrl-C
    interrupts the wait. Only procshare Connections are accepted (TypeError otherwise).
    """
    return _wait(list(object_list), timeout)
