//! The book's Pipe example ("Programmer's Python: Async", Sharing Data — Pipes & Queues):
//! `addCount` sends 0..500 through one end; two `getCount` processes share the other end and
//! print what they read with their process name. Run: `cargo run --example seed_pipe`.

use procshare::{current_process, pipe, Connection, Process};

fn add_count(con: Connection) {
    for i in 0..500u32 {
        con.send(&i).unwrap();
    }
}

fn get_count(con: Connection) {
    // The writer's end closes when it returns: recv then reports end-of-file and we stop.
    while let Ok(i) = con.recv::<u32>() {
        println!("{i} {}", current_process().name());
    }
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let (con1, con2) = pipe()?;
    let mut p1 = Process::spawn(con1, add_count)?;
    let mut p2 = Process::spawn(con2.try_clone()?, get_count)?;
    let mut p3 = Process::spawn(con2, get_count)?;
    p1.join()?;
    p2.join()?;
    p3.join()?;
    Ok(())
}
