# The CPython rows of `procshare bench --python`: multiprocessing measured now, on this machine.
# argv[1] is the duration of each measurement in seconds; prints one JSON object.
import json, sys, time, threading, queue, multiprocessing as mp
DUR = float(sys.argv[1])


def sender(conn, size):
    m = b'x' * size
    try:
        while True:
            conn.send_bytes(m)
    except Exception:
        pass


def finish(p):
    # A child can stay blocked after the measurement (a fork child holds both ends of a pipe,
    # so closing ours never gives it EOF; a Queue feeder flushing at exit into a pipe nobody
    # drains): give it a moment, then end it.
    p.join(timeout=2)
    if p.is_alive():
        p.terminate()
        p.join()


def count_for(step):
    step()
    n = 0
    t = time.perf_counter()
    while True:
        for _ in range(64):
            step()
        n += 64
        if time.perf_counter() - t >= DUR:
            return n / (time.perf_counter() - t)


def pipe_rate(size):
    r, w = mp.Pipe(False)
    p = mp.Process(target=sender, args=(w, size))
    p.start()
    w.close()
    rate = count_for(r.recv_bytes)
    r.close()
    p.terminate()
    p.join()
    return rate


def echo(conn):
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except Exception:
        pass


def pipe_rtt():
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b,))
    p.start()
    b.close()
    m = b'x' * 8
    for _ in range(100):
        a.send_bytes(m)
        a.recv_bytes()
    ts = []
    start = time.perf_counter()
    while time.perf_counter() - start < DUR or len(ts) < 100:
        t = time.perf_counter()
        a.send_bytes(m)
        a.recv_bytes()
        ts.append((time.perf_counter() - t) * 1e6)
    a.close()
    finish(p)
    ts.sort()
    return [ts[len(ts) // 2], ts[min(len(ts) * 99 // 100, len(ts) - 1)]]


def qsender(q, stop, size):
    m = b'x' * size
    while not stop.is_set():
        try:
            q.put(m, timeout=0.01)
        except Exception:
            pass


def queue_rate(q, size):
    stop = mp.Event()
    p = mp.Process(target=qsender, args=(q, stop, size))
    p.start()
    rate = count_for(q.get)
    stop.set()
    try:
        while True:
            q.get(timeout=0.2)
    except Exception:
        pass
    finish(p)
    return rate


def qconsumer(q, stop, total):
    n = 0
    while not stop.is_set():
        try:
            q.get(timeout=0.01)
            n += 1
        except Exception:
            pass
    with total.get_lock():
        total.value += n


def queue_2x2():
    q, stop_p, stop_c, total = mp.Queue(1024), mp.Event(), mp.Event(), mp.Value('q', 0)
    ps = [mp.Process(target=qsender, args=(q, stop_p, 64)) for _ in range(2)]
    cs = [mp.Process(target=qconsumer, args=(q, stop_c, total)) for _ in range(2)]
    for p in ps + cs:
        p.start()
    time.sleep(DUR)
    stop_c.set()
    for c in cs:
        c.join()
    stop_p.set()
    try:
        while True:
            q.get(timeout=0.2)
    except Exception:
        pass
    for p in ps:
        finish(p)
    return total.value / DUR


def locker(lock, arr, dur):
    end = time.perf_counter() + dur
    while time.perf_counter() < end:
        for _ in range(64):
            with lock:
                arr[0] += 1


def lock_rate():
    lock, arr = mp.Lock(), mp.RawArray('q', 3)
    ps = [mp.Process(target=locker, args=(lock, arr, DUR)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    return arr[0] / DUR


def ff_rate():
    try:
        from faster_fifo import Queue as FFQueue
    except ImportError:
        return None
    return queue_rate(FFQueue(1 << 20), 64)


def noop():
    pass


def spawn_cost():
    ctx = mp.get_context('spawn')
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e6


def create_cost(make):
    # Make and drop, as the Rust rows do (the previous handle is freed by the assignment).
    ts = []
    start = time.perf_counter()
    while time.perf_counter() - start < min(DUR, 0.5) or len(ts) < 100:
        t = time.perf_counter()
        h = make()
        del h
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e6


def tq_rate():
    q = queue.Queue(1024)
    stop = []

    def prod():
        i = 0
        while not stop:
            try:
                q.put(i, timeout=0.01)
                i += 1
            except queue.Full:
                pass
    th = threading.Thread(target=prod)
    th.start()
    rate = count_for(q.get)
    stop.append(1)
    th.join(timeout=1)
    return rate


def square(x):
    return x * x


def tasks_rate(n, job):
    # Tasks/s of `job(n)` (which runs n tasks), repeated for about DUR.
    t = time.perf_counter()
    k = 0
    while k == 0 or time.perf_counter() - t < DUR:
        job(n)
        k += n
    return k / (time.perf_counter() - t)


def pool_rows():
    # multiprocessing.Pool(2) and ProcessPoolExecutor(2), warm, on the same tiny task as the
    # procshare rows. imap/submit are ~10^4 tasks/s: fewer tasks there, a rate all the same.
    import concurrent.futures as cf
    out = {}
    with mp.Pool(2) as pool:
        pool.map(square, range(1000))
        out['pool_map'] = tasks_rate(100_000, lambda n: pool.map(square, range(n)))
        out['pool_imap1'] = tasks_rate(5_000, lambda n: sum(1 for _ in pool.imap(square, range(n), chunksize=1)))
        out['pool_apply_async'] = tasks_rate(5_000, lambda n: [r.get() for r in [pool.apply_async(square, (x,)) for x in range(n)]])
        ts = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < DUR or len(ts) < 100:
            t = time.perf_counter()
            pool.apply(square, (3,))
            ts.append((time.perf_counter() - t) * 1e6)
        ts.sort()
        out['pool_apply_rtt'] = [ts[len(ts) // 2], ts[min(len(ts) - 1, len(ts) * 99 // 100)]]
    with cf.ProcessPoolExecutor(2) as ex:
        list(ex.map(square, range(100)))
        out['ppe_submit'] = tasks_rate(2_000, lambda n: [f.result() for f in [ex.submit(square, x) for x in range(n)]])
        out['ppe_map1'] = tasks_rate(2_000, lambda n: sum(1 for _ in ex.map(square, range(n), chunksize=1)))
    return out


if __name__ == '__main__':
    MIB = 1 << 20
    rows = {
        'pipe_64': pipe_rate(64), 'pipe_4k': pipe_rate(4096), 'pipe_1m': pipe_rate(MIB) * MIB,
        'queue_64': queue_rate(mp.Queue(1024), 64), 'queue_4k': queue_rate(mp.Queue(1024), 4096),
        'queue_1m': queue_rate(mp.Queue(16), MIB) * MIB, 'queue_2x2': queue_2x2(),
        'pipe_rtt': pipe_rtt(), 'lock': lock_rate(), 'thread_queue': tq_rate(),
        'faster_fifo': ff_rate(), 'spawn_us': spawn_cost(),
        'pipe_create_us': create_cost(mp.Pipe), 'queue_create_us': create_cost(mp.Queue)}
    rows.update(pool_rows())
    print(json.dumps(rows))
