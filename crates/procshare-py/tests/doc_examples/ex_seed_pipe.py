# The seed's Pipe example (Programmer's Python Async, "Sharing Data Pipes & Queues"): one
# writer and two readers on one end of a duplex Pipe, each reader receiving under a Lock (two
# unlocked readers of one end may corrupt a multiprocessing Pipe). The seed's readers print
# each item and loop forever; which reader gets which item differs from run to run, so here
# they stop at None and the parent prints the totals.
import multiprocessing

def addCount(con):
    for i in range(500):
        con.send(i)
    con.send(None)
    con.send(None)

def getCount(con, l, out):
    got = []
    while True:
        with l:
            item = con.recv()
        if item is None:
            break
        got.append(item)
    out.put((len(got), sum(got)))

if __name__ == '__main__':
    con1, con2 = multiprocessing.Pipe()
    pLock = multiprocessing.Lock()
    out = multiprocessing.Queue()
    p1 = multiprocessing.Process(target=addCount, args=(con1,))
    p2 = multiprocessing.Process(target=getCount, args=(con2, pLock, out))
    p3 = multiprocessing.Process(target=getCount, args=(con2, pLock, out))
    p1.start()
    p2.start()
    p3.start()
    a, b = out.get(), out.get()
    p2.join()
    p3.join()
    p1.join()
    print('items', a[0] + b[0], 'sum', a[1] + b[1])
