//! The book's Pipe example ("Programmer's Python: Async", Sharing Data — Pipes & Queues):
//! `addCount` sends 0..500 through one end; two `getCount` processes share the other end and
//! print what they read with their process name, holding a shared lock around each receive and
//! print. Run: `cargo run --example seed_pipe`.

use procshare::{current_process, pipe, Connection, Lock, Process};

fn add_count(con: Connection) {
    for i in 0..500u32 {
        con.send(&i).unwrap();
    }
}

fn get_count((con, lock): (Connection, Lock)) {
    loop {
        let _held = lock.lock().unwrap();
        // The writer's end closes when it returns: recv then reports end-of-file and we stop.
        let Ok(i) = con.recv::<u32>() else { break };
        println!("{i} {}", current_process().name());
    }
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let (con1, con2) = pipe()?;
    let p_lock = Lock::new()?;
    let mut p1 = Process::spawn(con1, add_count)?;
    let mut p2 = Process::spawn((con2.try_clone()?, p_lock.clone()), get_count)?;
    let mut p3 = Process::spawn((con2, p_lock), get_count)?;
    p1.join()?;
    p2.join()?;
    p3.join()?;
    Ok(())
}
