"""Helpers shared by the procshare-py test modules."""

# Bounded waits: they fail a hang, they never judge speed.
LONG = 60.0


def join(p, timeout=LONG):
    """Joins child process `p`, failing (after killing it) if it is still running at `timeout`."""
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        raise AssertionError("child did not finish")
    return p.exitcode
