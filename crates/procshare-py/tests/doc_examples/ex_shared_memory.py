# library/multiprocessing.shared_memory.rst: SharedMemory, ShareableList, SharedMemoryManager
from multiprocessing import shared_memory
from multiprocessing import Process
from multiprocessing.managers import SharedMemoryManager
import array

def do_work(sl, start, stop):
    for i in range(start, stop):
        sl[i] = i * 2

if __name__ == '__main__':
    shm_a = shared_memory.SharedMemory(create=True, size=10)
    print(type(shm_a.buf))
    buffer = shm_a.buf
    print(len(buffer))
    buffer[:4] = bytearray([22, 33, 44, 55])  # Modify multiple at once
    buffer[4] = 100                           # Modify single byte at a time
    # Attach to an existing shared memory block
    shm_b = shared_memory.SharedMemory(shm_a.name)
    print(array.array('b', shm_b.buf[:5]))  # Copy the data into a new array.array
    shm_b.buf[:5] = b'howdy'  # Modify via shm_b using bytes
    print(bytes(shm_a.buf[:5]))      # Access via shm_a
    shm_b.close()   # Close each SharedMemory instance
    shm_a.close()
    shm_a.unlink()  # Call unlink only once to release the shared memory

    a = shared_memory.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42])
    print([ type(entry) for entry in a ])
    print(a[2])
    a[2] = -78.5
    print(a[2])
    a[2] = 'dry ice'  # Changing data types is supported as well
    print(a[2])
    try:
        a[2] = 'larger than previously allocated storage space'
    except ValueError as e:
        print('ValueError:', e)
    print(a[2])
    print(len(a))
    try:
        del a[2]  # Use of del is not supported
    except (TypeError, AttributeError) as e:
        print(type(e).__name__, e)
    print(a.count(b"HoWdY"), a.index(42))
    a.shm.close()
    a.shm.unlink()

    with SharedMemoryManager() as smm:
        sl = smm.ShareableList(range(2000))
        # Divide the work among two processes, storing partial results in sl
        p1 = Process(target=do_work, args=(sl, 0, 1000))
        p2 = Process(target=do_work, args=(sl, 1000, 2000))
        p1.start()  # A multiprocessing.Pool might be more efficient
        p2.start()
        p1.join()
        p2.join()   # Wait for all work to complete in both processes
        total_result = sum(sl)  # Consolidate the partial results now in sl
        print(total_result)
