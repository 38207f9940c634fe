"""The tracker's reaper in Python processes: a Python process that made a named queue and was
SIGKILLed leaves nothing in /dev/shm once its reaper ran. The reaper is this interpreter
running procshare._procshare._reaper() (a Python process's /proc/self/exe is python, which
would never become one), and _reaper() keeps the tracker's checks: anywhere else it refuses.

Run from this directory: python -m unittest test_reaper
"""

import os
import signal
import subprocess
import sys
import time
import unittest
import uuid

import procshare._procshare as ext

LONG = 60.0
REGISTRY = f"/dev/shm/procshare-{os.geteuid()}"

CHILD = r"""
import sys, time, procshare
q = procshare.{cls}(name=sys.argv[1])
q.put(("left", "behind"))
print("made", flush=True)
time.sleep(600)  # SIGKILLed here
"""


def _children(pid):
    """The pids whose parent is pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _wait_gone(pid):
    """Waits until pid has exited (it is not our child, so poll /proc)."""
    deadline = time.monotonic() + LONG
    while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not exit")
        time.sleep(0.01)


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


class TestReaper(unittest.TestCase):
    def _killed_creator_leaves_nothing(self, cls):
        name = "reaped_" + uuid.uuid4().hex[:16]
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(cls=cls), name],
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        try:
            self.assertEqual(child.stdout.readline().strip(), "made")
            self.assertTrue(os.path.exists(f"/dev/shm/{name}"))
            self.assertTrue(os.path.isdir(f"{REGISTRY}/{name}"))
            # Its reaper: this interpreter running _reaper(), started at the first registration.
            reapers = [p for p in _children(child.pid)
                       if any(b"_reaper()" in a for a in _cmdline(p))]
            self.assertEqual(len(reapers), 1, [_cmdline(p) for p in _children(child.pid)])
            self.assertEqual(os.path.realpath(os.fsdecode(_cmdline(reapers[0])[0])),
                             os.path.realpath(sys.executable))
        finally:
            child.kill()
            child.wait()
        self.assertEqual(child.returncode, -signal.SIGKILL)
        # Nobody else registers anything now, so only the reaper can have swept: it exits once
        # it did, and then nothing of the queue is left.
        _wait_gone(reapers[0])
        self.assertFalse(os.path.exists(f"/dev/shm/{name}"), "the queue's segment is left")
        self.assertFalse(os.path.exists(f"{REGISTRY}/{name}"), "its registration is left")

    def test_a_sigkilled_python_creator_of_a_queue_leaves_nothing(self):
        self._killed_creator_leaves_nothing("Queue")

    def test_a_sigkilled_python_creator_of_a_joinable_queue_leaves_nothing(self):
        self._killed_creator_leaves_nothing("JoinableQueue")

    def test_reaper_refuses_a_process_not_started_as_one(self):
        with self.assertRaises(RuntimeError):
            ext._reaper()

    def test_reaper_refuses_a_stray_environment(self):
        code = "import procshare._procshare as m\ntry:\n    m._reaper()\nexcept RuntimeError:\n    print('refused')\n"
        me = os.getpid()
        with open(f"/proc/{me}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        cases = {
            "not our parent, alive": f"ext:1:{self._start_of(1)}",
            "garbage": "ext:no:pe",
            # The load-time hook's form is checked by that hook, at import, the same way.
            "the exe form, not our parent": f"1:{self._start_of(1)}",
            "empty": "",
        }
        for why, spec in cases.items():
            with self.subTest(why):
                env = dict(os.environ, PROCSHARE_SHM_REAPER=spec)
                out = subprocess.run([sys.executable, "-c", code], env=env, 
                                     stdout=subprocess.PIPE, text=True, timeout=LONG, input="")
                self.assertEqual(out.stdout.strip(), "refused")
        # Our parent named rightly, but stdin is not a pipe: refused too.
        with self.subTest("stdin not a pipe"):
            env = dict(os.environ, PROCSHARE_SHM_REAPER=f"ext:{me}:{start}")
            out = subprocess.run([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, text=True, timeout=LONG)
            self.assertEqual(out.stdout.strip(), "refused")

    @staticmethod
    def _start_of(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]


if __name__ == "__main__":
    unittest.main()
