//! The byte-level engine under `Queue` and `JoinableQueue`: connections, retries, leases and
//! the server-side waits. Items here are already-encoded bytes.
//!
//! # Connections
//! A handle (and its clones in one process) keeps a small pool of connections: a put takes one,
//! a get another, so a thread blocked in `get` never holds up a `put`. Each pooled *slot* has
//! an id that outlives reconnects; with a per-handle sequence number it names every state
//! change, so a step re-sent after a lost reply is applied once (see `scripts`).
//!
//! # Waiting
//! Nothing polls. A get blocks in `BLMOVE items → proc`, a full put in `BLPOP space`, a join in
//! `BLPOP done`. The server times blocked clients out only every `1000/hz` ms (100 ms by
//! default), so a wait that must end at a deadline reads its reply with a socket timeout at that
//! deadline, then ends the server-side wait with `CLIENT UNBLOCK` from another connection and
//! puts back anything the wait moved (`RECOVER`) before the connection is used again.

use crate::scripts::scripts;
use procshare::{Error, Format, Result};
use redis::{Connection, ConnectionLike, RedisError, Value};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a connection attempt may take when the call itself has no deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a consumer's items stay its own after it stops renewing (it died).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// A connection attempt gets at least this long, even for a `*_nowait` call.
const MIN_CONNECT: Duration = Duration::from_millis(100);
/// How much later than its deadline a reply may come before the server counts as hung.
const REPLY_MARGIN: Duration = Duration::from_millis(500);
/// Longest a server-side wait runs before the waiter looks around (reaps dead consumers).
const MAX_SLICE: Duration = Duration::from_secs(5);
/// Pause between reconnect attempts while the server is away (doubling up to the maximum).
const RETRY_PAUSE: Duration = Duration::from_millis(20);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What a handle was opened with; also what crosses into a child process.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub url: String,
    pub name: String,
    pub format: Format,
    pub maxsize: usize,
    pub joinable: bool,
    pub lease: Duration,
    pub connect_timeout: Duration,
}

/// The names of one queue's keys; see the crate docs for the layout.
pub(crate) struct Keys {
    pub prefix: String,
    pub meta: String,
    pub items: String,
    pub space: String,
    pub unfinished: String,
    pub done: String,
    pub consumers: String,
    pub proc: String,
    pub lease: String,
}

impl Keys {
    fn new(name: &str, consumer: &str) -> Keys {
        let prefix = format!("procshare:{{{name}}}:");
        let k = |s: &str| format!("{prefix}{s}");
        Keys {
            meta: k("meta"),
            items: k("items"),
            space: k("space"),
            unfinished: k("unfinished"),
            done: k("done"),
            consumers: k("consumers"),
            proc: k(&format!("proc:{consumer}")),
            lease: k(&format!("lease:{consumer}")),
            prefix,
        }
    }

    fn last(&self, consumer: &str, slot: u64) -> String {
        format!("{}last:{consumer}:{slot}", self.prefix)
    }
}

/// One connection slot; `id` survives reconnects so de-duplication does too.
pub(crate) struct Slot {
    id: u64,
    conn: Option<Connection>,
    /// The server's `CLIENT ID` for `conn`, to unblock it.
    client_id: Option<i64>,
    /// De-duplicated commands whose replies are read later, each with whether it was sent on
    /// the current connection (after a reconnect it is sent again, and applied once).
    deferred: Vec<Deferred>,
    /// This connection has run the deferred script, so the server holds it in its script
    /// cache and `EVALSHA` cannot fail with NOSCRIPT (the cache goes only with the server,
    /// and then so does the connection). Until then the full `EVAL` is sent: a process that
    /// dies right after sending must not leave a NOSCRIPT behind.
    script_cached: bool,
}

/// A script sent without waiting, as `EVALSHA` (short); kept as `EVAL` for when the server
/// lost its script cache (restarted) or the command must be sent again.
pub(crate) struct Deferred {
    eval: Vec<u8>,
    sent: bool,
}

impl Slot {
    fn new(id: u64) -> Slot {
        Slot { id, conn: None, client_id: None, deferred: Vec::new(), script_cached: false }
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

/// What a timed server-side wait came back with.
pub(crate) enum Waited {
    /// The command's reply.
    Reply(Value),
    /// The deadline passed; the server-side wait was ended.
    TimedOut,
}

pub(crate) struct Core {
    pub cfg: Config,
    pub keys: Keys,
    client: redis::Client,
    consumer: String,
    pool: Mutex<Vec<Slot>>,
    next_slot: AtomicU64,
    next_seq: AtomicU64,
    /// Gets run one at a time per handle, on this one connection, so `proc` holds exactly
    /// `held` items between them and a get's deferred settlement reaches the server before
    /// anything else this handle does to `proc`.
    pub get_slot: parking_lot::Mutex<Slot>,
    /// Items got by a joinable handle and not yet `task_done` (the head of `proc`).
    pub held: AtomicUsize,
    /// A get lost its connection midway: `proc` may hold items nobody returned.
    dirty: AtomicBool,
    /// The lease and the consumer-set entry exist (this handle has got something).
    registered: AtomicBool,
    last_reap: Mutex<Option<Instant>>,
    /// Dropping it stops the lease thread at once.
    lease_stop: Mutex<Option<mpsc::Sender<()>>>,
}

/// Where a call must be done by; `None` waits as long as it takes.
pub(crate) type Deadline = Option<Instant>;

pub(crate) fn deadline(timeout: Duration) -> Deadline {
    Instant::now().checked_add(timeout)
}

fn remaining(d: Deadline) -> Option<Duration> {
    d.map(|d| d.saturating_duration_since(Instant::now()))
}

/// An error that a fresh connection may cure: the server went away, restarts, or still loads.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("LOADING" | "MASTERDOWN" | "TRYAGAIN"))
}

/// Whether the connection that returned `e` must be dropped.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_unrecoverable_error()
}

impl Core {
    pub fn new(cfg: Config) -> Result<Arc<Core>> {
        validate_name(&cfg.name)?;
        if cfg.lease < Duration::from_millis(100) {
            return Err(Error::InvalidArgument("the lease must be at least 100 ms".into()));
        }
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| Error::InvalidArgument(format!("bad Redis URL {:?}: {e}", cfg.url)))?;
        let consumer = random_id()?;
        Ok(Arc::new(Core {
            keys: Keys::new(&cfg.name, &consumer),
            cfg,
            client,
            consumer,
            pool: Mutex::new(Vec::new()),
            next_slot: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            get_slot: parking_lot::Mutex::new(Slot::new(u64::MAX)),
            held: AtomicUsize::new(0),
            dirty: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            last_reap: Mutex::new(None),
            lease_stop: Mutex::new(None),
        }))
    }

    /// Creates the queue on the server if missing and checks that it is the queue this handle
    /// expects; returns the maxsize in force.
    pub fn open(&self, strict_maxsize: bool) -> Result<usize> {
        let kind = if self.cfg.joinable { "joinable" } else { "queue" };
        let format = format_name(self.cfg.format);
        let stored: Vec<Option<String>> = self.run(None, false, |_, c| {
            scripts()
                .open
                .key(&self.keys.meta)
                .arg(self.cfg.maxsize)
                .arg(kind)
                .arg(format)
                .invoke(c)
        })?;
        let field = |i: usize| stored.get(i).cloned().flatten().unwrap_or_default();
        let bad = |what: String| {
            Error::InvalidArgument(format!("queue {:?} on {}: {what}", self.cfg.name, self.cfg.url))
        };
        let maxsize: usize = field(0)
            .parse()
            .map_err(|_| bad(format!("its stored maxsize {:?} is not a number", field(0))))?;
        if field(3) != "1" {
            return Err(bad(format!("unknown layout version {:?}", field(3))));
        }
        if field(1) != kind {
            return Err(bad(format!("it exists as a {}, not a {kind}", field(1))));
        }
        if field(2) != format {
            return Err(bad(format!("it holds {} items, not {format}", field(2))));
        }
        if strict_maxsize && maxsize != self.cfg.maxsize {
            return Err(bad(format!("it exists with maxsize {maxsize}, not {}", self.cfg.maxsize)));
        }
        Ok(maxsize)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn last_key(&self, slot: u64) -> String {
        self.keys.last(&self.consumer, slot)
    }

    fn take_slot(&self) -> Slot {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.unwrap_or_else(|| Slot::new(self.next_slot.fetch_add(1, Ordering::Relaxed)))
    }

    fn put_slot(&self, slot: Slot) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
    }

    fn connect(&self, slot: &mut Slot, d: Deadline) -> std::result::Result<(), RedisError> {
        if slot.conn.is_some() {
            return Ok(());
        }
        let budget = match remaining(d) {
            Some(r) => r.max(MIN_CONNECT).min(self.cfg.connect_timeout),
            None => self.cfg.connect_timeout,
        };
        let conn = self.client.get_connection_with_timeout(budget)?;
        conn.set_write_timeout(Some(self.cfg.connect_timeout))?;
        slot.conn = Some(conn);
        slot.client_id = None;
        slot.script_cached = false;
        for d in &mut slot.deferred {
            d.sent = false;
        }
        Ok(())
    }

    /// Runs `op` on a pooled connection, reconnecting and re-running it while the server is
    /// away, until `d` (or, without a deadline, for `connect_timeout` after the failure).
    /// `op` must be safe to re-run: every state change it makes is de-duplicated or recovered.
    /// A get (`is_get`) that loses its connection marks `proc` for recovery.
    pub fn run<R>(
        &self,
        d: Deadline,
        is_get: bool,
        op: impl FnMut(&mut SlotRef, &mut Connection) -> std::result::Result<R, RedisError>,
    ) -> Result<R> {
        let mut slot = self.take_slot();
        let out = self.run_on(&mut slot, d, is_get, op);
        self.put_slot(slot);
        out
    }

    /// As `run`, on a given slot (the get slot).
    pub fn run_on<R>(
        &self,
        slot: &mut Slot,
        d: Deadline,
        is_get: bool,
        mut op: impl FnMut(&mut SlotRef, &mut Connection) -> std::result::Result<R, RedisError>,
    ) -> Result<R> {
        let mut failing_since: Option<Instant> = None;
        let mut pause = RETRY_PAUSE;
        loop {
            // A pooled connection may have died while idle (a server restart): its failure
            // earns an immediate retry on a fresh one, whatever the deadline.
            let reused = slot.conn.is_some();
            let attempt = self.connect(slot, d).and_then(|()| {
                let mut r = SlotRef { slot_id: slot.id, client_id: slot.client_id };
                let conn = slot.conn.as_mut().expect("connected just above");
                let reply_by = remaining(d).map_or(self.cfg.connect_timeout, |r| r + REPLY_MARGIN);
                conn.set_read_timeout(Some(reply_by))?;
                drain(conn, &mut slot.deferred, &mut slot.script_cached)?;
                let out = op(&mut r, conn);
                slot.client_id = r.client_id;
                out
            });
            let e = match attempt {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if breaks_connection(&e) {
                slot.conn = None;
                if is_get {
                    self.dirty.store(true, Ordering::Release);
                }
            }
            if reused && slot.conn.is_none() {
                continue;
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            let give_up_at = d.unwrap_or(since + self.cfg.connect_timeout);
            if !is_transient(&e) || Instant::now() + pause >= give_up_at {
                return Err(self.error(e));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Sends `cmd` (de-duplicated, so safe to send again) without waiting for its reply; the
    /// next use of `slot` reads the reply first, or re-sends it after a reconnect. The bytes
    /// are in the kernel's hands when this returns, so they reach the server even if this
    /// process dies right after.
    pub fn send_deferred(&self, slot: &mut Slot, evalsha: Vec<u8>, eval: Vec<u8>) {
        let first = if slot.script_cached { &evalsha } else { &eval };
        let sent = match slot.conn.as_mut() {
            Some(c) => c.send_packed_command(first).is_ok(),
            None => false,
        };
        if !sent {
            slot.conn = None;
        }
        slot.deferred.push(Deferred { eval, sent });
    }

    /// procshare's error for a Redis one.
    pub fn error(&self, e: RedisError) -> Error {
        if e.code() == Some("WRONGTYPE") {
            return Error::Codec(format!(
                "a key of queue {:?} holds a value of the wrong type: {e}",
                self.cfg.name
            ));
        }
        let kind = if e.is_timeout() {
            io::ErrorKind::TimedOut
        } else if e.is_connection_refusal() {
            io::ErrorKind::ConnectionRefused
        } else if e.is_connection_dropped() {
            io::ErrorKind::ConnectionReset
        } else {
            io::ErrorKind::Other
        };
        Error::Io(io::Error::new(kind, format!("Redis at {}: {e}", self.cfg.url)))
    }

    /// Before a get: put back what an interrupted get left in `proc`, make sure this consumer
    /// holds a lease, and now and then hand the items of dead consumers back.
    pub fn before_get(
        self: &Arc<Self>,
        conn: &mut Connection,
    ) -> std::result::Result<(), RedisError> {
        if !self.registered.load(Ordering::Acquire) {
            self.renew(conn)?;
            self.registered.store(true, Ordering::Release);
            self.start_lease_thread();
        }
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.recover(conn) {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        let due = {
            let last = self.last_reap.lock().unwrap_or_else(|p| p.into_inner());
            last.map_or(true, |t| t.elapsed() >= self.cfg.lease / 2)
        };
        if due {
            self.reap(conn)?;
        }
        Ok(())
    }

    pub fn recover(&self, conn: &mut Connection) -> std::result::Result<(), RedisError> {
        scripts()
            .recover
            .key(&self.keys.proc)
            .key(&self.keys.items)
            .arg(self.held.load(Ordering::Acquire))
            .invoke::<i64>(conn)
            .map(drop)
    }

    pub fn reap(&self, conn: &mut Connection) -> std::result::Result<(), RedisError> {
        scripts()
            .reap
            .key(&self.keys.consumers)
            .key(&self.keys.items)
            .arg(&self.keys.prefix)
            .invoke::<i64>(conn)?;
        *self.last_reap.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    fn renew(&self, conn: &mut Connection) -> std::result::Result<(), RedisError> {
        scripts()
            .renew
            .key(&self.keys.meta)
            .key(&self.keys.lease)
            .key(&self.keys.consumers)
            .arg(self.cfg.lease.as_millis() as u64)
            .arg(&self.consumer)
            .invoke::<i64>(conn)
            .map(drop)
    }

    /// Stops renewing and forgets the lease (the queue is being destroyed).
    pub fn deregister(&self) {
        drop(self.lease_stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.registered.store(false, Ordering::Release);
    }

    /// A thread renews the lease every third of its length while this handle lives; it stops
    /// when the handle is dropped (its channel closes), or its process dies (then the lease
    /// expires and another consumer's reap gives the items back).
    fn start_lease_thread(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel::<()>();
        *self.lease_stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let weak: Weak<Core> = Arc::downgrade(self);
        let period = self.cfg.lease / 3;
        let spawned =
            std::thread::Builder::new().name("procshare-redis-lease".into()).spawn(move || {
                let mut conn: Option<Connection> = None;
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                    let Some(core) = weak.upgrade() else { return };
                    if conn.is_none() {
                        conn = core
                            .client
                            .get_connection_with_timeout(core.cfg.connect_timeout.min(period))
                            .ok();
                        if let Some(c) = &conn {
                            let _ = c.set_read_timeout(Some(period));
                            let _ = c.set_write_timeout(Some(period));
                        }
                    }
                    if let Some(c) = conn.as_mut() {
                        if core.renew(c).is_err() {
                            conn = None;
                        }
                    }
                }
            });
        // Without the thread the lease lapses and our items go to other consumers (at least
        // once still holds); a process that cannot start a thread has bigger trouble.
        drop(spawned);
    }

    /// A server-side wait (`BLMOVE`, `BLPOP`) built by `cmd(seconds)`, ended at `d`.
    ///
    /// The wait runs at most `slice` (so a blocked getter looks for dead consumers now and then);
    /// `Reply(Nil)` means the slice ran out with time left. At the deadline the server-side
    /// wait is cut with `CLIENT UNBLOCK`; the caller must then run `after_cut` on the same
    /// connection, which the redis crate starts by skipping the cut command's reply.
    pub fn wait(
        &self,
        r: &mut SlotRef,
        conn: &mut Connection,
        d: Deadline,
        slice: Duration,
        cmd: impl Fn(f64) -> redis::Cmd,
    ) -> std::result::Result<Waited, RedisError> {
        let slice = slice.clamp(Duration::from_millis(10), MAX_SLICE);
        let rem = remaining(d);
        let precise = matches!(rem, Some(rem) if rem <= slice);
        let server_wait = rem.map_or(slice, |rem| rem.min(slice)).max(Duration::from_millis(1));
        if precise && r.client_id.is_none() {
            r.client_id = Some(redis::cmd("CLIENT").arg("ID").query(conn)?);
        }
        let packed = cmd(server_wait.as_secs_f64()).get_packed_command();
        let read_for = if precise {
            remaining(d).unwrap_or_default().max(Duration::from_millis(1))
        } else {
            server_wait + Duration::from_secs(1) + REPLY_MARGIN
        };
        conn.set_read_timeout(Some(read_for))?;
        conn.send_packed_command(&packed)?;
        let reply = conn.recv_response();
        // The next command resets the timeout it needs; leave a sane one meanwhile.
        conn.set_read_timeout(Some(self.cfg.connect_timeout))?;
        match reply {
            Ok(v) => Ok(Waited::Reply(v)),
            Err(e) if precise && e.is_timeout() => {
                self.unblock(r.client_id)?;
                Ok(Waited::TimedOut)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends the server-side wait of connection `client_id` from another connection.
    fn unblock(&self, client_id: Option<i64>) -> std::result::Result<(), RedisError> {
        let Some(id) = client_id else { return Ok(()) };
        let mut other = self.take_slot();
        let out = self.connect(&mut other, None).and_then(|()| {
            let c = other.conn.as_mut().expect("connected just above");
            c.set_read_timeout(Some(self.cfg.connect_timeout))?;
            redis::cmd("CLIENT").arg("UNBLOCK").arg(id).arg("TIMEOUT").query::<i64>(c)
        });
        match out {
            Ok(_) => {
                self.put_slot(other);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Marks `proc` as possibly holding items no caller got; the next get puts them back.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub fn slice(&self) -> Duration {
        self.cfg.lease / 2
    }
}

/// Reads the replies of deferred commands (re-sending those the current connection never
/// carried). Server-side errors in them are dropped: the step they settle is then redone by
/// recovery or a reaper, never lost.
fn drain(
    conn: &mut Connection,
    deferred: &mut Vec<Deferred>,
    script_cached: &mut bool,
) -> std::result::Result<(), RedisError> {
    while let Some(d) = deferred.first() {
        let reply = if d.sent { conn.recv_response() } else { conn.req_packed_command(&d.eval) };
        // An error reply arrives as a value; only NOSCRIPT (a restarted server) needs acting on.
        let mut reply = reply.and_then(Value::extract_error);
        if matches!(&reply, Err(e) if e.code() == Some("NOSCRIPT")) {
            reply = conn.req_packed_command(&d.eval).and_then(Value::extract_error);
        }
        match reply {
            Err(e) if breaks_connection(&e) => return Err(e),
            r => {
                *script_cached |= r.is_ok();
                deferred.remove(0);
            }
        }
    }
    Ok(())
}

/// What an operation closure may know about its slot.
pub(crate) struct SlotRef {
    pub slot_id: u64,
    client_id: Option<i64>,
}

impl Drop for Core {
    /// A handle going away gives back what it holds: its unacknowledged items return to the
    /// head of the queue at once instead of after the lease.
    fn drop(&mut self) {
        drop(self.lease_stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        if !self.registered.load(Ordering::Acquire) {
            return;
        }
        self.held.store(0, Ordering::Release);
        let mut slot = std::mem::replace(self.get_slot.get_mut(), Slot::new(u64::MAX));
        let slot = &mut slot;
        if self.connect(slot, Some(Instant::now() + Duration::from_secs(1))).is_err() {
            return;
        }
        if let Some(conn) = slot.conn.as_mut() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
            // The last get's settlement first, on the same connection, so it is not undone.
            if drain(conn, &mut slot.deferred, &mut slot.script_cached).is_err() {
                return;
            }
            let _ = self.recover(conn);
            let _ = redis::pipe()
                .cmd("DEL")
                .arg(&self.keys.lease)
                .ignore()
                .cmd("SREM")
                .arg(&self.keys.consumers)
                .arg(&self.consumer)
                .ignore()
                .query::<()>(conn);
        }
    }
}

pub(crate) fn format_name(f: Format) -> &'static str {
    match f {
        Format::Pickle => "pickle",
        _ => "native",
    }
}

pub(crate) fn parse_format(s: &str) -> Option<Format> {
    match s {
        "native" => Some(Format::Native),
        "pickle" => Some(Format::Pickle),
        _ => None,
    }
}

/// Queue names become part of key names and of a `SCAN MATCH` pattern: keep them plain.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "queue name {name:?}: use 1 to 200 of A-Z a-z 0-9 - _ . : / @ + ="
        )))
    }
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
