# library/multiprocessing.rst, "Synchronization between processes"
#
# Without the lock, output from the different processes could get all mixed up. The order of
# the lines is the order the processes got the lock, which differs from run to run, so each
# line goes to a Queue (under the lock, as the docs print it) and the parent prints them sorted.
from multiprocessing import Process, Lock, Queue

def f(l, i, out):
    l.acquire()
    try:
        out.put(' '.join(map(str, ('hello world', i))))
    finally:
        l.release()

if __name__ == '__main__':
    lock = Lock()
    out = Queue()
    procs = [Process(target=f, args=(lock, num, out)) for num in range(10)]
    for p in procs:
        p.start()
    lines = [out.get() for _ in procs]
    for p in procs:
        p.join()
    for line in sorted(lines, key=lambda s: int(s.split()[-1])):
        print(line)
