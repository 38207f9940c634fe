//! `procshare demo shm`: a `ShareableList` and a `SharedMemory` shared by several processes.
//!
//! Each worker gets both as `Process` arguments (their descriptors travel with them), fills its
//! own quarter of the segment and its own slots of the list, and the parent adds it all up. A
//! `SharedMemoryManager` unlinks both at the end (and the tracker would, had anything crashed).

use procshare::{Item, Process, ShareableList, SharedMemory, SharedMemoryManager};

const WORKERS: usize = 4;
const CHUNK: usize = 1024;

fn worker((sl, shm, k): (ShareableList, SharedMemory, usize)) {
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
    let smm = SharedMemoryManager::new()?;
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
        procs.push(Process::spawn((sl.clone(), shm.clone(), k), worker)?);
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
    println!(
        "shm demo: {WORKERS} processes filled {filled}/{WORKERS} chunks ({counted} bytes) and a shared list; \
         sum 1/n^2 over {} terms = {sum:.6} (pi^2/6 = {:.6}); segments unlinked",
        WORKERS * 1000,
        std::f64::consts::PI.powi(2) / 6.0
    );
    Ok(())
}
