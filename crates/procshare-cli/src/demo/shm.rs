//! `procshare demo shm`: a `ShareableList`, a `SharedMemory` and an `Array` shared by several
//! processes.
//!
//! Each worker gets them as `Process` arguments (their descriptors travel with them), fills its
//! own quarter of the segment and its own slots of the list, and adds into every cell of the
//! array under the array's own lock; the parent adds it all up. A `SharedMemoryManager` unlinks
//! the named segments at the end (and the tracker would, had anything crashed).

use procshare::{Array, Item, Process, ShareableList, SharedMemory, SharedMemoryManager};

const WORKERS: usize = 4;
const CHUNK: usize = 1024;

fn worker((sl, shm, hist, k): (ShareableList, SharedMemory, Array<u64>, usize)) {
    // Everyone adds into every cell: only exact under the array's lock.
    for _ in 0..1000 {
        let mut cells = hist.lock();
        for (i, c) in cells.iter_mut().enumerate() {
            *c += (k * i) as u64 + 1;
        }
    }
    // Fill our chunk of raw shared memory with our id, and count what we wrote.
    let chunk = vec![k as u8 + 1; CHUNK];
    if shm.write(k * CHUNK, &chunk).is_err() {
        std::process::exit(2);
    }
    // Our slots of the list: a count, a partial sum, and a note (1 + k, 1 + W + k, 1 + 2W + k).
    let partial: f64 = (k * 1000..(k + 1) * 1000).map(|i| 1.0 / (i as f64 + 1.0).powi(2)).sum();
    let ok = sl.set(1 + k, Item::Int(CHUNK as i64)).is_ok()
        && sl.set(1 + WORKERS + k, Item::Float(partial)).is_ok()
        && sl.set(1 + 2 * WORKERS + k, Item::Str(format!("worker {k} ✓"))).is_ok();
    if !ok {
        std::process::exit(3);
    }
}

/// Runs the demo.
pub fn run() -> procshare::Result<()> {
    println!("== demo shm: {WORKERS} processes share a SharedMemory, a ShareableList and an Array");
    let smm = SharedMemoryManager::new()?;
    let hist = Array::<u64>::new(8)?;
    let shm = smm.shared_memory(WORKERS * CHUNK)?;
    let mut items = vec![Item::Str("shm demo".into())];
    items.extend((0..WORKERS).map(|_| Item::Int(0)));
    items.extend((0..WORKERS).map(|_| Item::Float(0.0)));
    items.extend((0..WORKERS).map(|_| Item::Str("worker ? pending".into())));
    let sl = smm.shareable_list(&items)?;
    println!(
        "SharedMemory {} ({} bytes), ShareableList {} ({} items)",
        shm.name(),
        shm.size(),
        sl.name(),
        sl.len()
    );

    let mut procs = Vec::new();
    for k in 0..WORKERS {
        procs.push(Process::spawn((sl.clone(), shm.clone(), hist.clone(), k), worker)?);
    }
    for p in &mut procs {
        let code = p.join()?;
        if code != 0 {
            return Err(procshare::Error::InvalidArgument(format!("a worker exited with {code}")));
        }
    }

    let mut bytes = vec![0u8; shm.size()];
    shm.read(0, &mut bytes)?;
    let filled: usize = (0..WORKERS)
        .filter(|&k| bytes[k * CHUNK..(k + 1) * CHUNK].iter().all(|&b| b == k as u8 + 1))
        .count();
    let mut counted = 0i64;
    let mut sum = 0.0f64;
    for k in 0..WORKERS {
        if let Item::Int(n) = sl.get(1 + k)? {
            counted += n;
        }
        if let Item::Float(x) = sl.get(1 + WORKERS + k)? {
            sum += x;
        }
        if let Item::Str(s) = sl.get(1 + 2 * WORKERS + k)? {
            println!("  slot {}: {s}", 1 + 2 * WORKERS + k);
        }
    }
    smm.shutdown()?;
    let cells = hist.to_vec();
    let expected: Vec<u64> =
        (0..cells.len()).map(|i| (0..WORKERS).map(|k| 1000 * ((k * i) as u64 + 1)).sum()).collect();
    println!(
        "  Array<u64> cells after {WORKERS} x 1000 locked updates: {cells:?} ({})",
        if cells == expected { "exact" } else { "WRONG" }
    );
    if cells != expected {
        return Err(procshare::Error::InvalidArgument("the Array lost updates".into()));
    }
    println!(
        "shm demo: {WORKERS} processes filled {filled}/{WORKERS} chunks ({counted} bytes) and a shared list; \
         sum 1/n^2 over {} terms = {sum:.6} (pi^2/6 = {:.6}); segments unlinked",
        WORKERS * 1000,
        std::f64::consts::PI.powi(2) / 6.0
    );
    Ok(())
}
