//! The book's Pipe program: one process sends 0..500 through one end of a pipe, two reader
//! processes share the other end and, holding a shared `Lock`, receive and print each number
//! with their process name.

use procshare::{current_process, pipe, Connection, Lock, Process};
use std::collections::HashSet;

const COUNT: u32 = 500;

fn add_count(con: Connection) {
    for i in 0..COUNT {
        con.send(&i).expect("send");
    }
    // Returning closes this end: the readers see end-of-file once the pipe is drained.
}

fn get_count((con, lock, report): (Connection, Lock, Connection)) {
    let mut got = Vec::new();
    loop {
        // As in the book: `with l: print(con.recv(), current_process().name)`.
        let _guard = lock.lock().expect("lock");
        let Ok(i) = con.recv::<u32>() else { break };
        println!("{i} {}", current_process().name());
        got.push(i);
    }
    report.send(&got).expect("report");
}

/// Runs the demo and checks that every number arrived exactly once.
pub fn run() -> procshare::Result<()> {
    println!("== demo pipe: 1 writer, 2 readers sharing one end of a Pipe");
    let (con1, con2) = pipe()?;
    let (results, report) = pipe()?;
    let lock = Lock::new()?;
    let mut writer = Process::spawn(con1, add_count)?;
    let mut r1 = Process::spawn((con2.try_clone()?, lock.clone(), report.try_clone()?), get_count)?;
    let mut r2 = Process::spawn((con2, lock, report), get_count)?;

    let mut seen = HashSet::new();
    let mut received = 0;
    let mut twice = 0;
    let mut per_reader = Vec::new();
    for _ in 0..2 {
        let got: Vec<u32> = results.recv()?;
        per_reader.push(got.len());
        received += got.len();
        for i in got {
            if !seen.insert(i) {
                twice += 1;
            }
        }
    }
    for p in [&mut writer, &mut r1, &mut r2] {
        let code = p.join()?;
        if code != 0 {
            return Err(procshare::Error::InvalidArgument(format!(
                "{} exited with {code}",
                p.name()
            )));
        }
    }
    let lost = (0..COUNT).filter(|i| !seen.contains(i)).count();
    println!(
        "{COUNT} sent, {received} received by 2 readers ({} + {}), {}, {}",
        per_reader[0],
        per_reader[1],
        if lost == 0 { "none lost".to_string() } else { format!("{lost} lost") },
        if twice == 0 { "none twice".to_string() } else { format!("{twice} twice") },
    );
    if lost != 0 || twice != 0 {
        return Err(procshare::Error::InvalidArgument(
            "the pipe lost or duplicated messages".into(),
        ));
    }
    Ok(())
}
