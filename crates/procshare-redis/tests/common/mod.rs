//! A private `redis-server` per test: a free loopback port, a temporary directory, killed (and
//! the directory removed) when the guard drops, also on panic.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    aof: bool,
}

/// `None` (after a loud line on stderr) where `redis-server` is not installed.
pub fn server() -> Option<Server> {
    server_with(false)
}

/// A server that logs every write to an append-only file (`appendfsync always`).
pub fn server_aof() -> Option<Server> {
    server_with(true)
}

fn server_with(aof: bool) -> Option<Server> {
    if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: redis-server is not installed; these procshare-redis tests did \
             not run. Install it with `apt-get install redis-server` !!!!!!!!\n"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir =
        std::env::temp_dir().join(format!("procshare-redis-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Server { child: None, port, dir, aof };
    s.start();
    Some(s)
}

impl Server {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again, on the same port and directory) and waits until it answers.
    pub fn start(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--protected-mode", "no", "--logfile", "redis.log"]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn redis-server");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = self.raw_try() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < until, "redis-server did not come up on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn raw_try(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url().as_str())?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    /// A plain connection, to look at or tamper with the keys.
    pub fn raw(&self) -> redis::Connection {
        self.raw_try().expect("connect to the test redis-server")
    }

    /// The number of keys on the server.
    pub fn dbsize(&self) -> usize {
        redis::cmd("DBSIZE").query(&mut self.raw()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fails (instead of hanging) if `f` has not returned after `limit`.
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("the call hung")
}
