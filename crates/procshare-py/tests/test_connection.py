"""procshare's Pipe and Connection from Python: objects and bytes, maxlength, recv_bytes_into
with offsets and BufferTooShort, poll and timeouts, connection.wait over several, EOFError after
the peer closed or was SIGKILLed, duplex and simplex, the exceptions on closed handles (checked
against multiprocessing.Pipe doing the same), connections passed to children under fork, spawn
and forkserver, and hostile bytes.

Run from this directory: python -m unittest test_connection
"""

import array
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import unittest

import procshare
import procshare.connection
import _support

# Bounded waits: they fail a hang, they never judge speed.
LONG = _support.LONG
METHODS = ("fork", "spawn", "forkserver")


_join = _support.join


def _start(method, target, conn):
    """A child of start method `method` running `target(conn)`, started."""
    p = multiprocessing.get_context(method).Process(target=target, args=(conn,))
    p.start()
    return p


# --- child targets (module level, so spawn and forkserver can find them) ----------------------


def _echo(conn):
    """Echoes objects back until it receives None."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.close()


def _echo_bytes(conn):
    """Echoes byte messages back until an empty one."""
    while True:
        msg = conn.recv_bytes()
        if not msg:
            break
        conn.send_bytes(msg)


def _send_then_exit(conn, what):
    conn.send(what)
    conn.close()


def _send_then_sleep(conn):
    conn.send("alive")
    time.sleep(LONG)  # killed here


def _recv_forever(conn, ready):
    ready.send("ready")
    conn.recv()  # killed here, blocked


def _sender(conn, tag, n):
    for i in range(n):
        conn.send((tag, i))


class Both:
    """Runs a check against multiprocessing.Pipe and procshare.Pipe alike, so procshare's
    exceptions are shown to be multiprocessing's, not just ones we chose."""

    PIPES = (("multiprocessing", multiprocessing.Pipe), ("procshare", procshare.Pipe))


class TestObjectsAndBytes(unittest.TestCase):
    def test_objects_round_trip(self):
        a, b = procshare.Pipe()
        items = [0, -1, 2**100, 1.5, float("inf"), "", "héllo", b"\x00\xff", bytearray(b"ab"),
                 [1, [2, [3]]], (1, "a"), {"k": {1: None}}, {1, 2}, None, True, array.array("d", [1.0])]
        for obj in items:
            a.send(obj)
        for obj in items:
            self.assertEqual(b.recv(), obj)
        # Duplex: the other direction too.
        b.send(("back", 1))
        self.assertEqual(a.recv(), ("back", 1))

    def test_send_raises_pickling_errors_and_sends_nothing(self):
        a, b = procshare.Pipe()
        with self.assertRaises((TypeError, AttributeError, pickle.PicklingError)):
            a.send(lambda: None)
        self.assertFalse(b.poll())

    def test_send_bytes_offset_and_size_count_bytes(self):
        a, b = procshare.Pipe()
        data = b"0123456789"
        a.send_bytes(data)
        a.send_bytes(data, 3)
        a.send_bytes(data, 3, 4)
        a.send_bytes(data, 10)  # an empty message
        a.send_bytes(bytearray(data), 0, 2)
        a.send_bytes(memoryview(data)[2:], 1, 1)
        self.assertEqual(b.recv_bytes(), data)
        self.assertEqual(b.recv_bytes(), b"3456789")
        self.assertEqual(b.recv_bytes(), b"3456")
        self.assertEqual(b.recv_bytes(), b"")
        self.assertEqual(b.recv_bytes(), b"01")
        self.assertEqual(b.recv_bytes(), b"3")

    def test_bad_offsets_and_sizes_are_value_errors_like_multiprocessing(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                a, b = Pipe()
                for args in ((-1,), (11,), (0, -1), (5, 6)):
                    with self.assertRaises(ValueError, msg=str(args)):
                        a.send_bytes(b"0123456789", *args)
                with self.assertRaises(ValueError):
                    b.recv_bytes(-1)
                self.assertFalse(b.poll())

    def test_recv_bytes_maxlength(self):
        a, b = procshare.Pipe()
        a.send_bytes(b"x" * 100)
        with self.assertRaises(OSError):  # multiprocessing's "bad message length"
            b.recv_bytes(99)
        # Unlike multiprocessing (which leaves the connection unusable), nothing is lost.
        self.assertEqual(b.recv_bytes(100), b"x" * 100)
        a.send_bytes(b"y" * 5)
        self.assertEqual(b.recv_bytes(5), b"yyyyy")

    def test_recv_bytes_into_at_offsets(self):
        a, b = procshare.Pipe()
        buf = bytearray(16)
        a.send_bytes(b"abcd")
        self.assertEqual(b.recv_bytes_into(buf), 4)
        a.send_bytes(b"XY")
        self.assertEqual(b.recv_bytes_into(buf, 10), 2)
        a.send_bytes(b"end!")
        self.assertEqual(b.recv_bytes_into(buf, 12), 4)  # exactly to the end
        self.assertEqual(bytes(buf), b"abcd" + bytes(6) + b"XYend!")
        # Offsets count bytes in a buffer of larger items, as multiprocessing's do.
        arr = array.array("i", [0] * 4)
        a.send_bytes(array.array("i", [7, 8]).tobytes())
        self.assertEqual(b.recv_bytes_into(arr, arr.itemsize), 2 * arr.itemsize)
        self.assertEqual(list(arr), [0, 7, 8, 0])

    def test_recv_bytes_into_too_short_hands_back_the_whole_message(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                a, b = Pipe()
                buf = bytearray(8)
                a.send_bytes(b"0123456789")
                with self.assertRaises(multiprocessing.BufferTooShort) as cm:
                    b.recv_bytes_into(buf)
                self.assertEqual(cm.exception.args[0], b"0123456789")
                a.send_bytes(b"abcd")
                with self.assertRaises(multiprocessing.BufferTooShort) as cm:
                    b.recv_bytes_into(buf, 5)  # fits the buffer, not the room after the offset
                self.assertEqual(cm.exception.args[0], b"abcd")
                self.assertEqual(bytes(buf), bytes(8))  # nothing written on failure
                for off in (-1, 9):
                    a.send_bytes(b"z")
                    with self.assertRaises(ValueError):
                        b.recv_bytes_into(buf, off)
                    if which == "procshare":
                        # The offset is checked before anything is received.
                        self.assertEqual(b.recv_bytes(), b"z")

    def test_recv_bytes_into_needs_a_writable_buffer(self):
        a, b = procshare.Pipe()
        a.send_bytes(b"x")
        with self.assertRaises(TypeError):
            b.recv_bytes_into(b"immutable")
        self.assertEqual(b.recv_bytes(), b"x")

    def test_a_large_message_arrives_whole(self):
        a, b = procshare.Pipe()
        blob = os.urandom(3 << 20)  # past the in-record size, so out of band
        a.send_bytes(blob)
        a.send({"blob": blob})
        self.assertEqual(b.recv_bytes(), blob)
        self.assertEqual(b.recv()["blob"], blob)


class TestPollAndWait(unittest.TestCase):
    def test_poll_looks_and_waits(self):
        a, b = procshare.Pipe()
        self.assertFalse(b.poll())
        self.assertFalse(b.poll(0.05))
        self.assertFalse(b.poll(-1))
        a.send_bytes(b"1")
        self.assertTrue(b.poll())
        self.assertTrue(b.poll(None))
        self.assertTrue(b.poll())  # poll consumes nothing
        self.assertEqual(b.recv_bytes(), b"1")
        self.assertFalse(b.poll())
        with self.assertRaises(ValueError):
            b.poll(float("nan"))

    def test_poll_none_waits_for_a_child(self):
        ctx = multiprocessing.get_context("fork")
        a, b = procshare.Pipe()
        p = ctx.Process(target=_send_then_exit, args=(b, "late"))
        p.start()
        b.close()
        self.assertTrue(a.poll(None))
        self.assertEqual(a.recv(), "late")
        self.assertEqual(_join(p), 0)

    def test_wait_over_several(self):
        pipes = [procshare.Pipe() for _ in range(4)]
        readers = [r for r, _ in pipes]
        self.assertEqual(procshare.connection.wait(readers, 0), [])
        self.assertEqual(procshare.connection.wait(readers, 0.05), [])
        pipes[1][1].send(1)
        pipes[3][1].send(3)
        ready = procshare.connection.wait(readers, LONG)
        self.assertEqual(sorted(id(r) for r in ready), sorted(id(r) for r in (readers[1], readers[3])))
        # wait consumes nothing; a tuple or any iterable will do.
        self.assertEqual(len(procshare.connection.wait(tuple(readers), None)), 2)
        self.assertEqual(readers[1].recv(), 1)
        self.assertEqual(readers[3].recv(), 3)
        # End-of-file is ready too.
        pipes[0][1].close()
        self.assertEqual(procshare.connection.wait(readers, LONG), [readers[0]])

    def test_wait_mixes_procshare_and_foreign_objects(self):
        # procshare Connections next to what multiprocessing.connection.wait takes (its
        # Connections, sockets, sentinels): each kind is ready when it is.
        a, b = procshare.Pipe()
        mp_a, mp_b = multiprocessing.Pipe()
        self.assertEqual(procshare.connection.wait([a, mp_a], 0), [])
        mp_b.send(1)
        self.assertEqual(procshare.connection.wait([a, mp_a], LONG), [mp_a])
        b.send(2)
        self.assertEqual(procshare.connection.wait([a, mp_a], LONG), [a, mp_a])
        self.assertEqual((a.recv(), mp_a.recv()), (2, 1))
        start = time.monotonic()
        self.assertEqual(procshare.connection.wait([a, mp_a], 0.1), [])
        self.assertGreaterEqual(time.monotonic() - start, 0.09)
        with self.assertRaises(ValueError):  # what multiprocessing's wait raises
            procshare.connection.wait([a, object()], 0)

    def test_wait_gathers_from_children(self):
        ctx = multiprocessing.get_context("fork")
        pipes = [procshare.Pipe(duplex=False) for _ in range(3)]
        kids = [ctx.Process(target=_sender, args=(w, i, 50)) for i, (_, w) in enumerate(pipes)]
        for k in kids:
            k.start()
        for _, w in pipes:
            w.close()
        readers = [r for r, _ in pipes]
        got = {i: [] for i in range(3)}
        open_readers = list(readers)
        while open_readers:
            for r in procshare.connection.wait(open_readers, LONG):
                try:
                    tag, i = r.recv()
                except EOFError:
                    open_readers.remove(r)
                    continue
                got[tag].append(i)
        for tag in range(3):
            self.assertEqual(got[tag], list(range(50)))  # each sender's order kept
        for k in kids:
            self.assertEqual(_join(k), 0)


class TestEndOfFile(unittest.TestCase):
    def test_eof_after_the_peer_closed(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                a, b = Pipe()
                a.send("last")
                a.close()
                self.assertTrue(b.poll())
                self.assertEqual(b.recv(), "last")  # what was sent is still read
                with self.assertRaises(EOFError):
                    b.recv()
                with self.assertRaises(EOFError):
                    b.recv_bytes()
                self.assertTrue(b.poll())  # end-of-file is "something to read"

    def test_send_to_a_closed_peer_is_an_os_error_not_sigpipe(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                a, b = Pipe()
                b.close()
                with self.assertRaises(OSError):  # BrokenPipeError, as multiprocessing's
                    for _ in range(10000):  # the kernel may buffer the first few
                        a.send_bytes(b"x" * 1024)

    def test_eof_after_the_peer_was_sigkilled(self):
        for method in METHODS:
            with self.subTest(method=method):
                a, b = procshare.Pipe()
                p = _start(method, _send_then_sleep, b)
                b.close()
                self.assertEqual(a.recv(), "alive")
                p.kill()
                self.assertEqual(_join(p), -signal.SIGKILL)
                with self.assertRaises(EOFError):
                    a.recv()

    def test_a_reader_killed_while_blocked_leaves_the_pipe_working(self):
        ctx = multiprocessing.get_context("fork")
        a, b = procshare.Pipe()
        ready_r, ready_w = procshare.Pipe(duplex=False)
        p = ctx.Process(target=_recv_forever, args=(b, ready_w))
        p.start()
        self.assertEqual(ready_r.recv(), "ready")
        time.sleep(0.1)  # let it block in recv (if it has not yet, the kill is earlier: also fine)
        p.kill()
        self.assertEqual(_join(p), -signal.SIGKILL)
        a.send("after")
        self.assertEqual(b.recv(), "after")
        b.send("back")
        self.assertEqual(a.recv(), "back")


class TestDuplexSimplexAndClosed(unittest.TestCase):
    def test_simplex_ends(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                r, w = Pipe(duplex=False)
                self.assertTrue(r.readable)
                self.assertFalse(r.writable)
                self.assertTrue(w.writable)
                self.assertFalse(w.readable)
                w.send(1)
                self.assertEqual(r.recv(), 1)
                with self.assertRaises(OSError):
                    r.send(1)
                with self.assertRaises(OSError):
                    r.send_bytes(b"1")
                with self.assertRaises(OSError):
                    w.recv()
                with self.assertRaises(OSError):
                    w.recv_bytes()
                with self.assertRaises(OSError):
                    w.poll()

    def test_duplex_ends(self):
        a, b = procshare.Pipe(duplex=True)
        for c in (a, b):
            self.assertTrue(c.readable)
            self.assertTrue(c.writable)
            self.assertFalse(c.closed)

    def test_closed_handles_raise_like_multiprocessing(self):
        for which, Pipe in Both.PIPES:
            with self.subTest(which):
                a, b = Pipe()
                a.close()
                a.close()  # idempotent
                self.assertTrue(a.closed)
                calls = [
                    lambda: a.send(1),
                    lambda: a.recv(),
                    lambda: a.send_bytes(b"1"),
                    lambda: a.recv_bytes(),
                    lambda: a.recv_bytes_into(bytearray(4)),
                    lambda: a.poll(),
                    lambda: a.fileno(),
                ]
                for call in calls:
                    with self.assertRaises(OSError):
                        call()

    def test_context_manager_closes(self):
        a, b = procshare.Pipe()
        with a as same:
            self.assertIs(same, a)
        self.assertTrue(a.closed)
        with self.assertRaises(EOFError):
            b.recv()

    def test_fileno_is_a_stable_descriptor(self):
        # Not checked: that it turns readable when poll() would be true. With the pipe on
        # shared-memory rings a selector is not a counted poller, so no doorbell rings for it
        # (an open bug in the binding's fileno(), not hidden here: see the report of issue 14).
        a, b = procshare.Pipe()
        fd = b.fileno()
        self.assertIsInstance(fd, int)
        self.assertEqual(b.fileno(), fd)  # the same one, owned by the object
        os.fstat(fd)  # an open descriptor


class TestChildren(unittest.TestCase):
    def test_connections_pass_to_children_under_every_start_method(self):
        for method in METHODS:
            with self.subTest(method=method):
                a, b = procshare.Pipe()
                p = _start(method, _echo, b)
                b.close()
                for obj in (1, "two", [3.0], {"four": b"4"}, (None,)):
                    a.send(obj)
                    self.assertEqual(a.recv(), obj)
                a.send(None)
                self.assertEqual(_join(p), 0)
                with self.assertRaises(EOFError):
                    a.recv()  # the child closed its end and exited

    def test_simplex_ends_and_bytes_pass_to_children(self):
        for method in METHODS:
            with self.subTest(method=method):
                a, b = procshare.Pipe()
                p = _start(method, _echo_bytes, b)
                for msg in (b"x", os.urandom(2 << 20), b"\x00" * 7):
                    a.send_bytes(msg)
                    self.assertEqual(a.recv_bytes(), msg)
                a.send_bytes(b"")
                self.assertEqual(_join(p), 0)


class TestHostileBytes(unittest.TestCase):
    def test_garbage_is_an_unpickling_error_and_the_pipe_goes_on(self):
        a, b = procshare.Pipe()
        hostile = [
            b"",
            b"\x80",
            b"\x80\x05",
            b"garbage that is no pickle",
            pickle.dumps(list(range(100)), 5)[:-3],  # truncated
            b"\x80\x05\x95\xff\xff\xff\xff\xff\xff\xff\x7f",  # a frame claiming 2**63 bytes
            b"\x80\x04\x8c\xff",  # a short string claiming more bytes than there are
            os.urandom(4096),
        ]
        for msg in hostile:
            a.send_bytes(msg)
            with self.assertRaises(Exception) as cm:
                b.recv()
            self.assertNotIsInstance(cm.exception, (SystemExit, KeyboardInterrupt))
        a.send("fine")
        self.assertEqual(b.recv(), "fine")

    def test_a_random_flood_never_tears_a_message(self):
        a, b = procshare.Pipe()
        msgs = [os.urandom(n) for n in (0, 1, 63, 4096, 65537, 1 << 20)]
        for m in msgs * 3:
            a.send_bytes(m)
        for m in msgs * 3:
            self.assertEqual(b.recv_bytes(), m)


if __name__ == "__main__":
    unittest.main()
