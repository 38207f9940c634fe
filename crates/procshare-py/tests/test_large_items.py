"""Large items take procshare's own pickle paths (bytes pickled by hand into a warm buffer,
large pickles unpickled in place): what comes out must be what pickle.dumps/loads give."""

import multiprocessing as mp
import pickle
import unittest

import procshare


class B(bytes):
    pass


class LargeItems(unittest.TestCase):
    def test_bytes_round_trip_at_the_edges(self):
        q = procshare.Queue()
        for n in (0, 1, 65535, 65536, 65537, 1 << 20):
            data = bytes(range(256)) * (n // 256) + b"z" * (n % 256)
            q.put(data)
            got = q.get(timeout=10)
            self.assertIs(type(got), bytes)
            self.assertEqual(got, data)

    def test_bytes_subclass_and_other_large_objects_keep_their_type(self):
        q = procshare.Queue()
        items = [B(b"q" * 100_000), bytearray(b"a" * 100_000), list(range(50_000)),
                 ("x" * 70_000, b"y" * 70_000)]
        for it in items:
            q.put(it)
        for it in items:
            got = q.get(timeout=10)
            self.assertIs(type(got), type(it))
            self.assertEqual(got, it)

    def test_put_many_get_many_across_processes(self):
        q = procshare.Queue(maxsize=7)
        ctx = mp.get_context("fork")
        p = ctx.Process(target=_put_batches, args=(q,))
        p.start()
        got = []
        while len(got) < 300:
            got.extend(q.get_many(50, timeout=30))
        p.join()
        self.assertEqual(got, [(i, b"v" * (i % 3) * 40_000) for i in range(300)])


def _put_batches(q):
    for k in range(0, 300, 30):
        q.put_many([(i, b"v" * (i % 3) * 40_000) for i in range(k, k + 30)])


if __name__ == "__main__":
    unittest.main()
