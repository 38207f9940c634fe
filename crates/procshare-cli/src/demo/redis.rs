//! `procshare demo redis`: the book's Queue program (one adder, two getters with a Lock around
//! each get and print) with the queue on a Redis server, across processes. Without `--url` it
//! starts a private `redis-server` (if one is installed) and stops it afterwards.

use procshare::{current_process, Error, Lock, Process};
use procshare_redis::Queue;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: u32 = 500;
const READERS: usize = 2;

fn add_count(q: Queue<Option<u32>>) {
    for i in 0..N {
        if q.put(Some(i)).is_err() {
            return;
        }
    }
}

fn get_count((q, lock, results): (Queue<Option<u32>>, Lock, procshare::Queue<Vec<u32>>)) {
    let name = current_process().name().to_string();
    let mut got = Vec::new();
    loop {
        let _held = lock.lock().expect("lock");
        let Ok(Some(i)) = q.get() else { break };
        println!("{i} {name}");
        got.push(i);
    }
    let _ = results.put(got);
}

/// A private `redis-server` on a free loopback port, killed on drop.
pub struct LocalServer {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a throw-away `redis-server`; `Err` with how to get one if it is not installed.
pub fn local_server() -> procshare::Result<(LocalServer, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("procshare-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "no redis-server to start ({e}): install one (`apt-get install redis-server`) or \
                 pass --url redis://HOST:PORT/"
            ))
        })?;
    let server = LocalServer { child, dir };
    let url = format!("redis://127.0.0.1:{port}/");
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            return Err(Error::Io(std::io::Error::other("redis-server did not start")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, url))
}

/// Runs the demo against `url`, or a private server; `Ok` only if every number arrived once.
pub fn run(url: Option<&str>) -> procshare::Result<()> {
    let (_server, url) = match url {
        Some(u) => (None, u.to_string()),
        None => {
            let (s, u) = local_server()?;
            (Some(s), u)
        }
    };
    println!("== demo redis: 1 adder, 2 getters on a Queue on Redis at {url}, a Lock around each get and print");
    let name = format!("demo-queue-{}", std::process::id());
    let q: Queue<Option<u32>> = Queue::open(&url, &name)?;
    let results: procshare::Queue<Vec<u32>> = procshare::Queue::new()?;
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
    q.destroy()?;
    let received = all.len();
    all.sort_unstable();
    all.dedup();
    let twice = received - all.len();
    let lost = N as usize - all.len();
    println!("{N} sent, {received} received by {READERS} readers, {lost} lost, {twice} twice");
    if lost + twice > 0 {
        return Err(Error::InvalidArgument("the Redis queue lost or duplicated items".into()));
    }
    Ok(())
}
