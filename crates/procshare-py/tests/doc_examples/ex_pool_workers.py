# library/multiprocessing.rst, "Using a pool of workers"
#
# The docs print imap_unordered's results in arbitrary order and the workers' process ids;
# here the former are printed sorted and the latter as "is a pid of a worker" checks. The
# 10-second sleep is 3 seconds (it only has to outlast the 1-second timeout).
from multiprocessing import Pool, TimeoutError
import time
import os

def f(x):
    return x*x

if __name__ == '__main__':
    # start 4 worker processes
    with Pool(processes=4) as pool:

        # print "[0, 1, 4,..., 81]"
        print(pool.map(f, range(10)))

        # print same numbers in arbitrary order
        print(sorted(pool.imap_unordered(f, range(10))))

        # evaluate "f(20)" asynchronously
        res = pool.apply_async(f, (20,))      # runs in *only* one process
        print(res.get(timeout=1))             # prints "400"

        # evaluate "os.getpid()" asynchronously
        res = pool.apply_async(os.getpid, ()) # runs in *only* one process
        pids = {p.pid for p in pool._pool}
        print(res.get(timeout=1) in pids)     # prints the PID of that process

        # launching multiple evaluations asynchronously *may* use more processes
        multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)]
        print(all(res.get(timeout=1) in pids for res in multiple_results))

        # make a single worker sleep for 3 seconds
        res = pool.apply_async(time.sleep, (3,))
        try:
            print(res.get(timeout=1))
        except TimeoutError:
            print("We lacked patience and got a multiprocessing.TimeoutError")

        print("For the moment, the pool remains available for more work")

    # exiting the 'with'-block has stopped the pool
    print("Now the pool is closed and no longer available")
