//! The book's Queue program: one adder process puts 0..500 on a Queue, two getter processes
//! take them and print each with their name. Ends by itself with a summary line.
//!
//! ```text
//! cargo run --example seed_queue
//! ```

use procshare::{current_process, Process, Queue};

const N: u32 = 500;

fn add_count(q: Queue<Option<u32>>) {
    for i in 0..N {
        q.put(Some(i)).unwrap();
    }
}

fn get_count((q, results): (Queue<Option<u32>>, Queue<Vec<u32>>)) {
    let name = current_process().name().to_string();
    let mut got = Vec::new();
    // `None` is the sentinel: one per reader.
    while let Some(i) = q.get().unwrap() {
        println!("{i} {name}");
        got.push(i);
    }
    results.put(got).unwrap();
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let q = Queue::new()?;
    let results = Queue::new()?;
    let mut adder = Process::spawn(q.clone(), add_count)?;
    let mut r1 = Process::spawn((q.clone(), results.clone()), get_count)?;
    let mut r2 = Process::spawn((q.clone(), results.clone()), get_count)?;
    adder.join()?;
    q.put(None)?;
    q.put(None)?;
    let mut all = results.get()?;
    all.extend(results.get()?);
    r1.join()?;
    r2.join()?;
    let received = all.len();
    all.sort_unstable();
    all.dedup();
    let (lost, twice) = (N as usize - all.len(), received - all.len());
    println!(
        "{N} sent, {received} received by 2 readers, {} lost, {} twice",
        if lost == 0 { "none".into() } else { lost.to_string() },
        if twice == 0 { "none".into() } else { twice.to_string() },
    );
    Ok(())
}
