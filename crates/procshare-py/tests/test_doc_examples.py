"""The `multiprocessing` documentation's examples (doc_examples/ex_*.py), each run twice in a
fresh interpreter: once as written (`import multiprocessing`), once with its imports switched
to procshare. The outputs must be identical, and the procshare run must print nothing on
stderr (no resource_tracker warning, no traceback).

Run: python -m unittest test_doc_examples (from crates/procshare-py/tests)
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

from _support import LONG

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "doc_examples")
EXAMPLES = sorted(f for f in os.listdir(HERE) if f.startswith("ex_") and f.endswith(".py"))


def switch_imports(source):
    """The import lines of `source` with multiprocessing replaced by procshare, as a user
    switches: `from multiprocessing[.x] import` -> `from procshare[.x] import`,
    `import multiprocessing as m` -> `import procshare as m`, `import multiprocessing` ->
    `import procshare as multiprocessing`."""
    source = re.sub(r"^from multiprocessing\b", "from procshare", source, flags=re.M)
    source = re.sub(r"^import multiprocessing as\b", "import procshare as", source, flags=re.M)
    return re.sub(r"^import multiprocessing$", "import procshare as multiprocessing", source,
                  flags=re.M)


def run(path):
    r = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=LONG * 2,
                       cwd=os.path.dirname(path))
    return r.returncode, r.stdout, r.stderr


class TestDocExamples(unittest.TestCase):
    def test_examples_exist(self):
        self.assertGreaterEqual(len(EXAMPLES), 12)

    def test_each_example_prints_the_same(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in EXAMPLES:
                with self.subTest(example=name):
                    original = os.path.join(HERE, name)
                    with open(original) as f:
                        source = f.read()
                    switched = switch_imports(source)
                    self.assertNotEqual(switched, source, "the example imports no multiprocessing")
                    self.assertNotRegex(switched, r"(?m)^(from|import) multiprocessing\b")
                    path = os.path.join(tmp, name)
                    with open(path, "w") as f:
                        f.write(switched)
                    rc, out, err = run(original)
                    self.assertEqual(rc, 0, f"{name} as written failed:\n{err}")
                    rc2, out2, err2 = run(path)
                    self.assertEqual(rc2, 0, f"{name} on procshare failed:\n{err2}")
                    self.assertTrue(out.strip())
                    self.assertEqual(out2, out)
                    self.assertEqual(err2, "")


if __name__ == "__main__":
    unittest.main()
