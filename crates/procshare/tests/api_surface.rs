//! The public contract of ../shared/API.md, signature by signature: this file only compiles if
//! every name and signature there exists as written (and checks a few behaviours on the way).

use procshare::thread_queue;
use procshare::{
    connect, current_process, pipe, pipe_simplex, wait, Address, Array, ArrayGuard, Barrier,
    BoundedSemaphore, Condition, ConditionGuard, Connection, Error, Event, ExitCode, Item,
    JoinableQueue, Listener, Lock, LockGuard, Process, Queue, RLock, Result, Semaphore,
    ShareableList, SharedMemory, SharedMemoryManager, SimpleQueue, StartMethod, Value, ValueGuard,
};
use std::time::Duration;

fn assert_send_sync_static<T: Send + Sync + 'static>() {}
fn assert_clone<T: Clone>() {}

#[test]
fn error_and_result() {
    assert_send_sync_static::<Error>();
    fn _is_std_error(e: Error) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(e)
    }
    let _: Result<()> = Ok(());
    let _: std::result::Result<(), std::io::Error> = Result::<(), std::io::Error>::Ok(());
    // Every variant, by name.
    let all = [
        Error::Empty,
        Error::Full,
        Error::Timeout,
        Error::Closed,
        Error::Eof,
        Error::ShutDown,
        Error::TaskDoneTooManyTimes,
        Error::MessageTooLarge { size: 2, limit: 1 },
        Error::BufferTooShort(vec![1]),
        Error::AuthenticationFailed,
        Error::AlreadyExists("x".into()),
        Error::NotFound("x".into()),
        Error::InvalidArgument("x".into()),
        Error::Codec("x".into()),
        Error::PeerDied,
        Error::Io(std::io::Error::other("x")),
    ];
    for e in all {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn pipes_and_connections() {
    let f: fn() -> Result<(Connection, Connection)> = pipe;
    let _ = f;
    let (a, b) = pipe_simplex().unwrap();
    assert_send_sync_static::<Connection>();
    let _: Result<()> = b.send(&1u8);
    let _: Result<()> = b.send("str slice is ?Sized");
    let _: Result<u8> = a.recv();
    let _: Result<()> = b.send_bytes(b"x");
    let _: Result<Vec<u8>> = a.recv_bytes();
    let _: Result<Vec<u8>> = a.recv_bytes_max(10);
    let mut buf = [0u8; 4];
    b.send_bytes(b"y").unwrap();
    let _: Result<usize> = a.recv_bytes_into(&mut buf);
    let _: Result<bool> = a.poll(Some(Duration::ZERO));
    let _: bool = a.readable();
    let _: bool = b.writable();
    let c: Result<Connection> = a.try_clone();
    let _: usize = a.max_message_size();
    a.set_max_message_size(1 << 30);
    let _: Result<()> = b.send_pickle(&(1, "x"));
    b.send_pickle(&7i64).unwrap();
    let _: Result<i64> = a.recv_pickle();
    let _: Result<Vec<usize>> = wait(&[&a], Some(Duration::ZERO));
    let _: Result<()> = c.unwrap().close();
    let listener: Result<Listener> =
        Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), None);
    let listener = listener.unwrap();
    let addr: Address = listener.address();
    let _ = Address::Unix(std::path::PathBuf::from("/tmp/x"));
    let t = std::thread::spawn(move || connect(&addr, None).map(drop));
    let _: Result<Connection> = listener.accept();
    t.join().unwrap().unwrap();
}

#[test]
fn processes() {
    procshare::init();
    let spawn: fn((), fn(())) -> Result<Process> = Process::spawn::<()>;
    let mut p = spawn((), |()| {}).unwrap();
    let _: u32 = p.pid();
    let _: &str = p.name();
    let _: bool = p.is_alive();
    let code: Result<ExitCode> = p.join();
    assert_eq!(code.unwrap(), 0i32);
    let mut q = Process::builder()
        .name("n")
        .start_method(StartMethod::Spawn)
        .daemon(false)
        .spawn(1u8, |_| {})
        .unwrap();
    let _: Result<Option<ExitCode>> = q.join_timeout(Duration::from_secs(30));
    let _: Result<()> = q.terminate();
    let _: Result<()> = q.kill();
    let _ = StartMethod::Fork;
    let me = current_process();
    let _: &str = me.name();
    let _: u32 = me.pid();
}

#[test]
fn shared_memory() {
    let shm: SharedMemory = SharedMemory::create(10).unwrap();
    let _: &str = shm.name();
    let _: usize = shm.size();
    let _: Result<()> = shm.write(0, b"ab");
    let mut b = [0u8; 2];
    let _: Result<()> = shm.read(0, &mut b);
    let _: *mut u8 = shm.as_ptr();
    // SAFETY: nobody else writes this segment during the test.
    let _: &[u8] = unsafe { shm.as_slice() };
    let _: Result<SharedMemory> = SharedMemory::open(shm.name());
    let _: Result<SharedMemory> = SharedMemory::create_named("psm_api_surface_x", 1);
    if let Ok(s) = SharedMemory::open("psm_api_surface_x") {
        s.unlink().unwrap();
    }
    let _: Result<()> = shm.unlink();
    assert_clone::<SharedMemory>();

    let items = [
        Item::None,
        Item::Bool(true),
        Item::Int(1),
        Item::Float(1.5),
        Item::Str("s".into()),
        Item::Bytes(vec![1]),
    ];
    let sl: ShareableList = ShareableList::new(&items).unwrap();
    let _: usize = sl.len();
    let _: Result<Item> = sl.get(0);
    let _: Result<()> = sl.set(2, Item::Int(5));
    let _: usize = sl.count(&Item::Int(5));
    let _: Option<usize> = sl.index(&Item::Int(5));
    let _: &str = sl.name();
    let _: &SharedMemory = sl.shm();
    let _: Result<ShareableList> = ShareableList::open(sl.name());
    sl.shm().unlink().unwrap();

    let v: Value<u64> = Value::new(1).unwrap();
    let _: u64 = v.get();
    v.set(2);
    {
        let mut g: ValueGuard<'_, u64> = v.lock();
        *g += 1;
    }
    let a: Array<f64> = Array::new(3).unwrap();
    let a2: Result<Array<f64>> = Array::from_slice(&[1.0, 2.0]);
    let _: usize = a.len();
    let _: f64 = a.get(0);
    a.set(0, 1.0);
    {
        let mut g: ArrayGuard<'_, f64> = a.lock();
        g[1] = 2.0;
    }
    let _: Vec<f64> = a.to_vec();
    drop(a2);
    assert_clone::<Value<u64>>();
    assert_clone::<Array<u8>>();

    let m: SharedMemoryManager = SharedMemoryManager::new().unwrap();
    let _: Result<SharedMemory> = m.shared_memory(5);
    let _: Result<ShareableList> = m.shareable_list(&[Item::Int(1)]);
    let _: Result<()> = m.shutdown();
}

#[test]
fn locks_and_synchronisation() {
    let l: Lock = Lock::new().unwrap();
    {
        let _g: LockGuard<'_> = l.lock().unwrap();
        let _: Result<Option<LockGuard<'_>>> = l.try_lock();
    }
    let _: Result<Option<LockGuard<'_>>> = l.lock_timeout(Duration::from_millis(1));
    let r: RLock = RLock::new().unwrap();
    let _g1 = r.lock().unwrap();
    let _g2 = r.lock().unwrap();
    let _: Result<Option<LockGuard<'_>>> = r.try_lock();
    let _: Result<Option<LockGuard<'_>>> = r.lock_timeout(Duration::ZERO);
    let s: Semaphore = Semaphore::new(1).unwrap();
    let _: Result<()> = s.acquire();
    let _: Result<bool> = s.acquire_timeout(Duration::ZERO);
    let _: Result<()> = s.release();
    let b: BoundedSemaphore = BoundedSemaphore::new(1).unwrap();
    assert!(b.release().is_err());
    let e: Event = Event::new().unwrap();
    e.set();
    e.clear();
    let _: bool = e.is_set();
    let _: Result<bool> = e.wait(Some(Duration::ZERO));
    let c: Condition = Condition::new().unwrap();
    {
        let mut g: ConditionGuard<'_> = c.lock().unwrap();
        let _: Result<bool> = g.wait_timeout(Duration::from_millis(1));
    }
    c.notify(1);
    c.notify_all();
    let bar: Barrier = Barrier::new(1).unwrap();
    let _: Result<usize> = bar.wait();
    assert_clone::<Lock>();
    assert_clone::<RLock>();
    assert_clone::<Semaphore>();
    assert_clone::<BoundedSemaphore>();
    assert_clone::<Event>();
    assert_clone::<Condition>();
    assert_clone::<Barrier>();
    assert_send_sync_static::<Lock>();
}

#[test]
fn thread_queues() {
    let q: thread_queue::Queue<u8> = thread_queue::Queue::new();
    let _ = thread_queue::Queue::<u8>::bounded(2);
    let _: Result<()> = q.put(1);
    let _: Result<()> = q.put_timeout(1, Duration::ZERO);
    let _: Result<()> = q.put_nowait(1);
    let _: Result<u8> = q.get();
    let _: Result<u8> = q.get_timeout(Duration::ZERO);
    let _: Result<u8> = q.get_nowait();
    let _: usize = q.qsize();
    let _: bool = q.empty();
    let _: bool = q.full();
    let _: Result<()> = q.task_done();
    let _: usize = q.unfinished_tasks();
    while q.unfinished_tasks() > 0 {
        q.task_done().unwrap();
    }
    q.join();
    q.shutdown(false);
    let _ = thread_queue::LifoQueue::<u8>::new();
    let _ = thread_queue::PriorityQueue::<u8>::bounded(1);
    let s = thread_queue::SimpleQueue::<u8>::new();
    s.put(1);
    let _: Result<u8> = s.get();
    let _: Result<u8> = s.get_timeout(Duration::ZERO);
    let _: Result<u8> = s.get_nowait();
    let _: usize = s.qsize();
    let _: bool = s.empty();
    let d = thread_queue::Deque::<u8>::with_maxlen(2);
    let _ = thread_queue::Deque::<u8>::new();
    d.append(1);
    d.append_left(0);
    let _: Option<u8> = d.pop();
    let _: Option<u8> = d.pop_left();
    let _: usize = d.len();
    let _: bool = d.is_empty();
    d.clear();
    let _: Option<usize> = d.maxlen();
    assert_send_sync_static::<thread_queue::Queue<u8>>();
    assert_send_sync_static::<thread_queue::Deque<u8>>();
}

#[test]
fn process_queues() {
    let q: Queue<String> = Queue::new().unwrap();
    let b: Queue<String> = Queue::bounded(1).unwrap();
    let _: Result<()> = q.put("a".into());
    let _: Result<()> = b.put_timeout("a".into(), Duration::ZERO);
    assert!(matches!(b.put_nowait("b".into()), Err(Error::Full)));
    let _: Result<String> = q.get();
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    let _: usize = q.qsize();
    let _: bool = q.empty();
    let _: bool = b.full();
    let c = q.clone();
    c.close();
    assert!(c.put("x".into()).is_err());
    q.put("still open".into()).unwrap();
    assert_clone::<Queue<u8>>();
    assert_send_sync_static::<Queue<u8>>();

    let j: JoinableQueue<u8> = JoinableQueue::new().unwrap();
    j.put(1).unwrap();
    let _: u8 = j.get().unwrap();
    let _: Result<()> = j.task_done();
    assert!(matches!(j.task_done(), Err(Error::TaskDoneTooManyTimes)));
    let _: Result<()> = j.join();
    let _: Result<()> = j.join_timeout(Duration::ZERO);
    let _ = JoinableQueue::<u8>::bounded(3).unwrap();
    assert_clone::<JoinableQueue<u8>>();

    let s: SimpleQueue<u8> = SimpleQueue::new().unwrap();
    let _: Result<()> = s.put(1);
    let _: Result<u8> = s.get();
    let _: bool = s.empty();
    s.close();
    assert_clone::<SimpleQueue<u8>>();
}
