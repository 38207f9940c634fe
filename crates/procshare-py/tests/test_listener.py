"""procshare.connection.Listener and Client: CPython's signatures, wire format and authkey
handshake, with procshare Connections; each side interoperates with CPython's.

Run: python -m unittest test_listener (from crates/procshare-py/tests)
"""

import multiprocessing
import multiprocessing.connection as mp_connection
import os
import threading
import unittest

import procshare
import procshare.connection as connection
from _support import LONG, join


def _serve_once(listener, out):
    try:
        with listener.accept() as c:
            out.append(c.recv())
            c.send_bytes(b"pong")
    except BaseException as e:  # handed to the test thread
        out.append(e)


def _client_in_child(address, authkey):
    with connection.Client(address, authkey=authkey) as c:
        c.send(("from child", os.getpid()))
        assert c.recv() == "ack"


class TestListenerClient(unittest.TestCase):
    def _round_trip(self, listener_cls, client, address, authkey):
        with listener_cls(address, authkey=authkey) as listener:
            out = []
            t = threading.Thread(target=_serve_once, args=(listener, out))
            t.start()
            with client(listener.address, authkey=authkey) as c:
                c.send({"ping": 1})
                self.assertEqual(c.recv_bytes(), b"pong")
            t.join(LONG)
            self.assertEqual(out, [{"ping": 1}])

    def test_ours_both_sides(self):
        for address in (("localhost", 0), None):
            for authkey in (None, b"secret"):
                with self.subTest(address=address, authkey=authkey):
                    self._round_trip(connection.Listener, connection.Client, address, authkey)

    def test_with_cpython_on_the_other_side(self):
        for authkey in (None, b"secret"):
            with self.subTest(authkey=authkey):
                self._round_trip(connection.Listener, mp_connection.Client, ("127.0.0.1", 0), authkey)
                self._round_trip(mp_connection.Listener, connection.Client, ("127.0.0.1", 0), authkey)

    def test_types_and_addresses(self):
        with connection.Listener(("localhost", 0)) as listener:
            host, port = listener.address
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(port, 0)
            self.assertIsNone(listener.last_accepted)
            c = connection.Client(listener.address)
            s = listener.accept()
            self.assertIsInstance(c, procshare.Connection)
            self.assertIsInstance(s, procshare.Connection)
            c.send(1)
            self.assertEqual(connection.wait([s], LONG), [s])
            self.assertEqual(s.recv(), 1)
            c.close()
            s.close()
        with connection.Listener() as listener:  # AF_UNIX at an arbitrary path, as CPython's
            path = listener.address
            self.assertIsInstance(path, str)
            self.assertTrue(os.path.exists(path))
        self.assertFalse(os.path.exists(path))
        with self.assertRaises(OSError):
            listener.accept()
        with self.assertRaises(TypeError):
            connection.Listener(authkey="not bytes")
        with self.assertRaises((TypeError, ValueError)):  # as CPython's address_type
            connection.Listener(123)

    def test_wrong_authkey(self):
        with connection.Listener(("localhost", 0), authkey=b"right") as listener:
            out = []
            t = threading.Thread(target=_serve_once, args=(listener, out))
            t.start()
            with self.assertRaises(multiprocessing.AuthenticationError):
                connection.Client(listener.address, authkey=b"wrong")
            t.join(LONG)
            self.assertEqual(len(out), 1)
            self.assertIsInstance(out[0], multiprocessing.AuthenticationError)

    def test_client_in_a_spawned_child(self):
        with connection.Listener(("localhost", 0), authkey=b"k") as listener:
            p = procshare.get_context("spawn").Process(
                target=_client_in_child, args=(listener.address, b"k"))
            p.start()
            with listener.accept() as c:
                self.assertEqual(c.recv(), ("from child", p.pid))
                c.send("ack")
            self.assertEqual(join(p), 0)


if __name__ == "__main__":
    unittest.main()
