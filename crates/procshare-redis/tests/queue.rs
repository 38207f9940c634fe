//! procshare-redis against a real `redis-server`: the local queue's behaviour, across processes.

mod common;

use common::{server, within};
use procshare::{Error, Format, Process};
use procshare_redis::{JoinableQueue, Options, Queue};
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[test]
fn api_put_get_sizes_close_destroy() {
    let Some(s) = server() else { return };
    let q: Queue<String> = Queue::open(&s.url(), "api").unwrap();
    assert_eq!(q.name(), "api");
    assert!(q.empty());
    assert!(!q.full());
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    q.put("a".into()).unwrap();
    q.put_nowait("b".into()).unwrap();
    q.put_timeout("c".into(), Duration::from_secs(1)).unwrap();
    assert_eq!(q.qsize(), 3);
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.get_nowait().unwrap(), "b");
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), "c");
    q.put_many(["x", "y", "z"].map(String::from)).unwrap();
    assert_eq!(q.get_many(2).unwrap(), ["x", "y"]);
    assert_eq!(q.get_many(10).unwrap(), ["z"]);
    assert!(matches!(q.get_many(0), Err(Error::InvalidArgument(_))));

    // A second handle (another open) sees the same queue; close is per handle.
    let other: Queue<String> = Queue::open(&s.url(), "api").unwrap();
    let clone = q.clone();
    q.close();
    assert!(matches!(q.put("no".into()), Err(Error::Closed)));
    clone.put("clone".into()).unwrap();
    other.put("other".into()).unwrap();
    assert_eq!(other.get().unwrap(), "clone");
    assert_eq!(q.get().unwrap(), "other");

    q.destroy().unwrap();
    drop((q, clone, other));
    assert_eq!(s.dbsize(), 0, "destroy and drop leave no key behind");
}

#[test]
fn bad_names_and_urls_are_invalid_arguments() {
    let Some(s) = server() else { return };
    for name in ["", "a b", "x*", "{x}", &"n".repeat(201)] {
        assert!(
            matches!(Queue::<u8>::open(&s.url(), name), Err(Error::InvalidArgument(_))),
            "{name:?}"
        );
    }
    assert!(matches!(Queue::<u8>::open("http://nope", "q"), Err(Error::InvalidArgument(_))));
}

#[test]
fn bounded_put_blocks_and_times_out_and_maxsize_must_match() {
    let Some(s) = server() else { return };
    let q: Queue<u32> = Queue::open_bounded(&s.url(), "b", 2).unwrap();
    assert_eq!(q.maxsize(), 2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.full());
    assert!(matches!(q.put_nowait(3), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(q.put_timeout(3, Duration::from_millis(50)), Err(Error::Full)));
    assert!(t.elapsed() >= Duration::from_millis(50));
    eprintln!("put_timeout(50 ms) on a full queue returned after {:?}", t.elapsed());

    // A blocked put wakes when a getter makes room (here: another thread).
    let q2 = q.clone();
    let getter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        q2.get().unwrap()
    });
    within(Duration::from_secs(30), {
        let q = q.clone();
        move || q.put(3).unwrap()
    });
    assert_eq!(getter.join().unwrap(), 1);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (2, 3));

    // A putter blocked with many items goes on as room appears.
    let q3 = q.clone();
    let putter = std::thread::spawn(move || q3.put_many(10..20));
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(q.get_timeout(Duration::from_secs(30)).unwrap());
    }
    putter.join().unwrap().unwrap();
    assert_eq!(got, (10..20).collect::<Vec<_>>());

    assert!(matches!(Queue::<u32>::open_bounded(&s.url(), "b", 3), Err(Error::InvalidArgument(_))));
    // Plain open adopts the maxsize in force.
    assert_eq!(Queue::<u32>::open(&s.url(), "b").unwrap().maxsize(), 2);
    q.destroy().unwrap();
}

#[test]
fn get_timeout_is_honoured_within_a_few_ms() {
    let Some(s) = server() else { return };
    let q: Queue<u32> = Queue::open(&s.url(), "t").unwrap();
    for ms in [5u64, 30, 120, 250] {
        let t = Instant::now();
        assert!(matches!(q.get_timeout(Duration::from_millis(ms)), Err(Error::Empty)));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(ms));
        // The server alone would round up to its 100 ms clock; this is the client's cut.
        eprintln!("get_timeout({ms} ms) on an empty queue returned after {took:?}");
    }
    // An item arriving during the wait is returned, and the queue stays consistent after cuts.
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.put(9).unwrap()
    });
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 9);
    t.join().unwrap();
    for i in 0..20 {
        q.put(i).unwrap();
        assert!(matches!(q.get_timeout(Duration::from_millis(1)), Ok(x) if x == i));
        assert!(matches!(q.get_timeout(Duration::from_millis(1)), Err(Error::Empty)));
    }
    assert_eq!(q.qsize(), 0);
    q.destroy().unwrap();
}

/// (producer id, sequence number); `u32::MAX` as id is the stop sentinel.
type Item = (u32, u32);

fn producer((q, id, n): (Queue<Item>, u32, u32)) {
    for seq in 0..n {
        q.put((id, seq)).unwrap();
    }
}

fn consumer((q, out): (Queue<Item>, Queue<Vec<Item>>)) {
    let mut got = Vec::new();
    loop {
        match q.get().unwrap() {
            (u32::MAX, _) => break,
            item => got.push(item),
        }
    }
    out.put(got).unwrap();
}

#[test]
fn four_by_four_processes_exactly_once_fifo_per_producer() {
    let Some(s) = server() else { return };
    const N: u32 = 1500;
    let q: Queue<(u32, u32)> = Queue::open_bounded(&s.url(), "4x4", 64).unwrap();
    let out: Queue<Vec<(u32, u32)>> = Queue::open(&s.url(), "4x4-out").unwrap();
    let mut producers: Vec<Process> =
        (0..4).map(|id| Process::spawn((q.clone(), id, N), producer).unwrap()).collect();
    let mut consumers: Vec<Process> =
        (0..4).map(|_| Process::spawn((q.clone(), out.clone()), consumer).unwrap()).collect();
    for p in &mut producers {
        assert_eq!(p.join().unwrap(), 0);
    }
    for _ in 0..4 {
        q.put((u32::MAX, 0)).unwrap();
    }
    let mut all = Vec::new();
    for _ in 0..4 {
        let got = out.get_timeout(Duration::from_secs(120)).unwrap();
        // Each consumer sees every producer's items in the order they were put.
        for id in 0..4 {
            let seqs: Vec<u32> = got.iter().filter(|x| x.0 == id).map(|x| x.1).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "producer {id} out of order");
        }
        all.extend(got);
    }
    for c in &mut consumers {
        assert_eq!(c.join().unwrap(), 0);
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 4 * N as usize, "nothing twice");
    assert_eq!(unique.len(), 4 * N as usize, "nothing lost");
    q.destroy().unwrap();
    out.destroy().unwrap();
}

fn joinable_worker((q, done): (JoinableQueue<Option<u32>>, Queue<u32>)) {
    while let Some(i) = q.get().unwrap() {
        done.put(i).unwrap();
        q.task_done().unwrap();
    }
    q.task_done().unwrap();
}

#[test]
fn joinable_four_workers_at_least_once_and_join() {
    let Some(s) = server() else { return };
    const N: u32 = 2000;
    let q: JoinableQueue<Option<u32>> = JoinableQueue::open(&s.url(), "jq").unwrap();
    let done: Queue<u32> = Queue::open(&s.url(), "jq-done").unwrap();
    let mut workers: Vec<Process> = (0..4)
        .map(|_| Process::spawn((q.clone(), done.clone()), joinable_worker).unwrap())
        .collect();
    q.put_many((0..N).map(Some)).unwrap();
    within(Duration::from_secs(120), {
        let q = q.clone();
        move || q.join().unwrap()
    });
    // join returned: every item was acknowledged, so each was processed at least once.
    let mut seen = HashSet::new();
    while let Ok(i) = done.get_nowait() {
        seen.insert(i);
    }
    assert_eq!(seen.len(), N as usize);
    for _ in 0..4 {
        q.put(None).unwrap();
    }
    for w in &mut workers {
        assert_eq!(w.join().unwrap(), 0);
    }
    q.join_timeout(Duration::from_secs(30)).unwrap();
    q.destroy().unwrap();
    done.destroy().unwrap();
}

#[test]
fn task_done_and_join_semantics() {
    let Some(s) = server() else { return };
    let q: JoinableQueue<u32> = JoinableQueue::open(&s.url(), "td").unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    q.join().unwrap();
    q.put_many([1, 2, 3]).unwrap();
    let t = Instant::now();
    assert!(matches!(q.join_timeout(Duration::from_millis(60)), Err(Error::Timeout)));
    assert!(t.elapsed() >= Duration::from_millis(60));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get_many(5).unwrap(), [2, 3]);
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.join_timeout(Duration::from_millis(20)), Err(Error::Timeout)));
    let q2 = q.clone();
    let joiner = std::thread::spawn(move || q2.join_timeout(Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(50));
    q.task_done().unwrap();
    joiner.join().unwrap().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    // A Queue and a JoinableQueue of the same name are different kinds: refused.
    assert!(matches!(Queue::<u32>::open(&s.url(), "td"), Err(Error::InvalidArgument(_))));
    q.destroy().unwrap();
}

fn hold_then_hang((q, ready): (JoinableQueue<u32>, Queue<Vec<u32>>)) {
    let held = vec![q.get().unwrap(), q.get().unwrap(), q.get().unwrap()];
    ready.put(held).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn killed_consumers_items_go_to_another_consumer_at_the_head() {
    let Some(s) = server() else { return };
    let opts = Options::new().lease(Duration::from_millis(1000));
    let q: JoinableQueue<u32> = JoinableQueue::open_with(&s.url(), "kill", &opts).unwrap();
    let ready: Queue<Vec<u32>> = Queue::open(&s.url(), "kill-ready").unwrap();
    q.put_many(0..10).unwrap();
    let mut victim = Process::spawn((q.clone(), ready.clone()), hold_then_hang).unwrap();
    let held = ready.get_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(held, [0, 1, 2]);
    // The victim's lease is renewed while it lives: its items stay its own (unrenewed, the
    // lease would lapse more than once in this time).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(q.get().unwrap(), 3);
    q.task_done().unwrap();
    victim.kill().unwrap();
    assert_eq!(victim.join().unwrap(), -9);
    std::thread::sleep(Duration::from_millis(1500));
    // After the lease the dead consumer's items come back first, in order, then the rest.
    let got: Vec<u32> = within(Duration::from_secs(60), {
        let q = q.clone();
        move || (0..9).map(|_| q.get().unwrap()).collect()
    });
    assert_eq!(got, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    for _ in 0..9 {
        q.task_done().unwrap();
    }
    q.join_timeout(Duration::from_secs(10)).unwrap();
    q.destroy().unwrap();
    ready.destroy().unwrap();
}

#[test]
fn plain_queue_item_in_flight_at_a_getters_death_is_not_lost() {
    let Some(s) = server() else { return };
    let opts = Options::new().lease(Duration::from_millis(300));
    let q: Queue<u32> = Queue::open_with(&s.url(), "flight", &opts).unwrap();
    q.put(2).unwrap();
    // What a getter killed between moving item 1 into its processing list and returning it
    // leaves behind: the item in `proc:<id>`, `<id>` in `consumers`, and a lease that lapses.
    let mut raw = s.raw();
    let item = procshare::codec::encode(&1u32).unwrap();
    let _: () = redis::pipe()
        .cmd("RPUSH")
        .arg("procshare:{flight}:proc:dead")
        .arg(item)
        .ignore()
        .cmd("SADD")
        .arg("procshare:{flight}:consumers")
        .arg("dead")
        .ignore()
        .cmd("SET")
        .arg("procshare:{flight}:lease:dead")
        .arg(1)
        .arg("PX")
        .arg(200)
        .ignore()
        .query(&mut raw)
        .unwrap();
    assert_eq!(q.get().unwrap(), 2);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 1);
    q.destroy().unwrap();
}

fn put_nowait_ten((q, out): (Queue<u32>, Queue<u32>)) {
    let ok = (0..10).filter(|&i| q.put_nowait(i).is_ok()).count();
    out.put(ok as u32).unwrap();
}

#[test]
fn two_processes_share_maxsize() {
    let Some(s) = server() else { return };
    let q: Queue<u32> = Queue::open_bounded(&s.url(), "shared", 3).unwrap();
    let out: Queue<u32> = Queue::open(&s.url(), "shared-out").unwrap();
    let mut ps: Vec<Process> = (0..2)
        .map(|_| {
            // Each child opens its own handle (and connection) to the queue.
            let url = s.url();
            Process::spawn((url, out.clone()), |(url, out): (String, Queue<u32>)| {
                let q: Queue<u32> = Queue::open_bounded(&url, "shared", 3).unwrap();
                put_nowait_ten((q, out))
            })
            .unwrap()
        })
        .collect();
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    let total = out.get().unwrap() + out.get().unwrap();
    assert_eq!(total, 3);
    assert_eq!(q.qsize(), 3);
    q.destroy().unwrap();
    out.destroy().unwrap();
}

#[test]
fn garbage_in_the_queue_is_a_codec_error_for_that_item_only() {
    let Some(s) = server() else { return };
    let q: Queue<(u32, String)> = Queue::open(&s.url(), "garbage").unwrap();
    let mut raw = s.raw();
    let items = "procshare:{garbage}:items";
    q.put((1, "one".into())).unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(items)
        .arg(&[0xffu8, 0xff, 0xff, 0xff, 0x0f][..])
        .query(&mut raw)
        .unwrap();
    q.put((2, "two".into())).unwrap();
    assert_eq!(q.get().unwrap().0, 1);
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    assert_eq!(q.get().unwrap().0, 2);

    // In a batch: the good prefix comes back, then the bad item alone, then the rest.
    q.put((3, "three".into())).unwrap();
    let _: () = redis::cmd("RPUSH").arg(items).arg("not postcard at all").query(&mut raw).unwrap();
    q.put((4, "four".into())).unwrap();
    assert_eq!(q.get_many(10).unwrap().len(), 1);
    assert!(matches!(q.get_many(10), Err(Error::Codec(_))));
    assert_eq!(q.get_many(10).unwrap()[0].0, 4);

    // A key of the wrong type: Err(Codec), and the queue works once it is fixed.
    let _: () = redis::cmd("DEL").arg(items).query(&mut raw).unwrap();
    let _: () = redis::cmd("SET").arg(items).arg("oops").query(&mut raw).unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Codec(_))));
    assert!(matches!(q.put((5, "five".into())), Err(Error::Codec(_))));
    let _: () = redis::cmd("DEL").arg(items).query(&mut raw).unwrap();
    q.put((6, "six".into())).unwrap();
    assert_eq!(q.get().unwrap().0, 6);

    // Garbage in the queue's description.
    let _: () = redis::cmd("HSET")
        .arg("procshare:{garbage}:meta")
        .arg("maxsize")
        .arg("lots")
        .query(&mut raw)
        .unwrap();
    assert!(matches!(Queue::<u8>::open(&s.url(), "garbage"), Err(Error::InvalidArgument(_))));
    q.destroy().unwrap();
}

#[test]
fn formats_are_fixed_per_queue_and_pickle_round_trips() {
    let Some(s) = server() else { return };
    let q: Queue<(i64, String)> = Queue::open_with_format(&s.url(), "pk", Format::Pickle).unwrap();
    q.put((7, "seven".into())).unwrap();
    let raw: Vec<u8> =
        redis::cmd("LINDEX").arg("procshare:{pk}:items").arg(0).query(&mut s.raw()).unwrap();
    assert_eq!(raw[0], 0x80, "a pickle (PROTO opcode)");
    assert_eq!(q.get().unwrap(), (7, "seven".to_string()));
    assert!(matches!(Queue::<(i64, String)>::open(&s.url(), "pk"), Err(Error::InvalidArgument(_))));
    q.destroy().unwrap();
}

#[test]
fn unreachable_server_is_an_error_in_time() {
    // Nothing listens: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let r = within(Duration::from_secs(30), move || Queue::<u32>::open(&url, "q").map(drop));
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");

    // A server that accepts and never answers: the connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let opts = Options::new().connect_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let r = within(Duration::from_secs(30), move || {
        Queue::<u32>::open_with(&url, "q", &opts).map(drop)
    });
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    eprintln!("open on a silent server failed after {:?}", t.elapsed());
    drop(silent);

    // A server that dies under an open handle: calls fail within their timeout.
    let Some(mut s) = server() else { return };
    let q: Queue<u32> = Queue::open_with(
        &s.url(),
        "q",
        &Options::new().connect_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    q.put(1).unwrap();
    s.kill();
    let r = within(Duration::from_secs(30), {
        let q = q.clone();
        move || q.get_timeout(Duration::from_millis(200))
    });
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    let r = within(Duration::from_secs(30), move || q.put(2));
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
}

fn get_one_then_hang((q, ready): (Queue<u32>, Queue<u32>)) {
    let x = q.get().unwrap();
    ready.put(x).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn plain_queue_item_returned_by_get_is_gone_even_if_the_getter_dies_at_once() {
    let Some(s) = server() else { return };
    let opts = Options::new().lease(Duration::from_millis(300));
    let q: Queue<u32> = Queue::open_with(&s.url(), "gone", &opts).unwrap();
    let ready: Queue<u32> = Queue::open(&s.url(), "gone-ready").unwrap();
    q.put_many([1, 2]).unwrap();
    let mut victim = Process::spawn((q.clone(), ready.clone()), get_one_then_hang).unwrap();
    assert_eq!(ready.get_timeout(Duration::from_secs(60)).unwrap(), 1);
    victim.kill().unwrap();
    victim.join().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // The dead getter's lease has lapsed and been reaped: item 1 must not come back.
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 2);
    assert!(matches!(q.get_timeout(Duration::from_millis(300)), Err(Error::Empty)));
    q.destroy().unwrap();
    ready.destroy().unwrap();
}

#[test]
fn handles_are_clone_send_sync_and_cross_into_children() {
    fn assert_handle<H: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_handle::<Queue<String>>();
    assert_handle::<JoinableQueue<Vec<u8>>>();
    // A handle passed to a child works there as in the parent: put, get, task_done, join.
    let Some(s) = server() else { return };
    let q: JoinableQueue<u32> = JoinableQueue::open(&s.url(), "cross").unwrap();
    let mut p = Process::spawn(q.clone(), |q: JoinableQueue<u32>| {
        q.put(5).unwrap();
        assert_eq!(q.get().unwrap(), 5);
        q.task_done().unwrap();
    })
    .unwrap();
    assert_eq!(p.join().unwrap(), 0);
    q.join_timeout(Duration::from_secs(30)).unwrap();
    q.destroy().unwrap();
}
