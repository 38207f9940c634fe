//! The book's Queue program: one adder process puts 0..500 on a Queue, two getter processes
//! take them and print each with their name; a summary line checks that nothing was lost or
//! delivered twice. As in the book, a shared `Lock` is held around each get and print.

use procshare::{current_process, Lock, Process, Queue};

const N: u32 = 500;
const READERS: usize = 2;

fn add_count(q: Queue<Option<u32>>) {
    for i in 0..N {
        if q.put(Some(i)).is_err() {
            return;
        }
    }
}

fn get_count((q, lock, results): (Queue<Option<u32>>, Lock, Queue<Vec<u32>>)) {
    let name = current_process().name().to_string();
    let mut got = Vec::new();
    loop {
        // The book: `with l: print(q.get(), current_process().name)`.
        let _held = lock.lock().expect("lock");
        // `None` is the sentinel: one per reader, put after the adder has finished.
        let Ok(Some(i)) = q.get() else { break };
        println!("{i} {name}");
        got.push(i);
    }
    let _ = results.put(got);
}

/// Runs the demo; `Ok` only if every number arrived exactly once.
pub fn run() -> procshare::Result<()> {
    println!("== demo queue: 1 adder, 2 getters on a Queue, a Lock around each get and print");
    let q: Queue<Option<u32>> = Queue::new()?;
    let results: Queue<Vec<u32>> = Queue::new()?;
    let lock = Lock::new()?;
    let mut adder = Process::builder().name("adder").spawn(q.clone(), add_count)?;
    let mut readers = (0..READERS)
        .map(|i| {
            Process::builder()
                .name(format!("reader-{}", i + 1))
                .spawn((q.clone(), lock.clone(), results.clone()), get_count)
        })
        .collect::<procshare::Result<Vec<_>>>()?;
    adder.join()?;
    for _ in 0..READERS {
        q.put(None)?;
    }
    let mut all = Vec::new();
    for _ in 0..READERS {
        all.extend(results.get()?);
    }
    for r in &mut readers {
        r.join()?;
    }
    let received = all.len();
    all.sort_unstable();
    all.dedup();
    let twice = received - all.len();
    let lost = N as usize - all.len();
    let none = |n: usize| {
        if n == 0 {
            "none".to_string()
        } else {
            n.to_string()
        }
    };
    println!(
        "{N} sent, {received} received by {READERS} readers, {} lost, {} twice",
        none(lost),
        none(twice)
    );
    if lost + twice > 0 {
        return Err(procshare::Error::InvalidArgument("the queue lost or duplicated items".into()));
    }
    Ok(())
}
