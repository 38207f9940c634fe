# library/multiprocessing.rst, "JoinableQueue" (task_done/join), with the worker loop of
# library/queue.rst's example; workers finish in any order, so the results are printed sorted.
import multiprocessing

def worker(tasks, results):
    while True:
        item = tasks.get()
        if item is None:
            tasks.task_done()
            break
        results.put(f'Finished {item}')
        tasks.task_done()

if __name__ == '__main__':
    tasks = multiprocessing.JoinableQueue()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=worker, args=(tasks, results)) for _ in range(4)]
    for w in workers:
        w.start()
    for item in range(30):
        tasks.put(item)
    for _ in workers:
        tasks.put(None)
    # Block until all tasks are done.
    tasks.join()
    print('All work completed')
    print(sorted((results.get() for _ in range(30)), key=lambda s: int(s.split()[1])))
    for w in workers:
        w.join()
