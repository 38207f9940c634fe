# library/multiprocessing.rst, "multiprocessing.Event" (a clone of threading.Event): one process
# waits until another sets the flag.
import multiprocessing

def waiter(event, q):
    q.put(('waiting', event.is_set()))
    event.wait()
    q.put(('woken', event.is_set()))

if __name__ == '__main__':
    event = multiprocessing.Event()
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=waiter, args=(event, q))
    p.start()
    print(q.get())
    print(event.wait(timeout=0.1))
    event.set()
    print(q.get())
    p.join()
    event.clear()
    print(event.is_set())
