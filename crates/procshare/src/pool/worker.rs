//! The worker: a procshare process that runs its initializer, then takes batches from its
//! inbox and runs them task by task, recording each in the task table before it runs and
//! reporting each result on its own before the next starts (so a death costs one task).
//!
//! # Safety
//! Tasks name their function and its trampoline as code offsets; [`Code::resolve`] accepts
//! only addresses inside this program's code, and the owner computed both from a `fn(A) -> R`
//! and `run::<A, R>` of this same executable (the spawn boot checked the executable's identity),
//! so the transmutes below turn them back into the functions they were made from. A peer that
//! writes other offsets into the inbox can make us call another function of our own code with
//! wrong types: the inbox is shared only with our owner, which runs this program and is
//! trusted with our code (as the spawn record is).
#![allow(unsafe_code)]

use super::table::Table;
use super::wire::{self, Batch, Report};
use crate::codec;
use crate::crash::crash_point;
use crate::error::{Error, Result};
use crate::process::Code;
use crate::queue::Queue;
use crate::shared::handles::{self, RecvFd, SendFd};
use crate::sys::{deadline, socket};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};

/// Runs one task: decodes `args` (with `fds` for the handles in them) as `A`, calls the
/// `fn(A) -> R` at `f`, and encodes its result into `out`. `Err((kind, message))`: a
/// [`wire::PANICKED`] or [`wire::CODEC`] report.
pub(crate) type Trampoline = fn(
    args: &[u8],
    fds: Vec<OwnedFd>,
    f: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<(), (u32, String)>;

pub(crate) fn run<A: DeserializeOwned, R: Serialize>(
    args: &[u8],
    fds: Vec<OwnedFd>,
    f: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<(), (u32, String)> {
    let a: A = handles::import(fds, || codec::decode(args))
        .map_err(|e| (wire::CODEC, format!("the argument did not decode: {e}")))?;
    // SAFETY: see the module doc: `f` was made from a `fn(A) -> R` of this executable with
    // this same `A` and `R` (the owner paired `run::<A, R>` with it), and lies in our code.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(a)))
        .map_err(|p| (wire::PANICKED, panic_message(p)))?;
    out.clear();
    codec::encode_into(&r, out)
        .map_err(|e| (wire::CODEC, format!("the result did not encode: {e}")))
}

thread_local! {
    /// Where the last panic of this thread happened (the worker's hook writes it).
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    };
    match PANIC_AT.with(|p| p.borrow_mut().take()) {
        Some(at) => format!("{msg} (at {at})"),
        None => msg,
    }
}

/// A descriptor as a `Process` argument.
pub(crate) struct FdArg(pub OwnedFd);

impl Serialize for FdArg {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        SendFd(self.0.as_fd()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for FdArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(FdArg(RecvFd::deserialize(d)?.0))
    }
}

/// What a worker process is started with: its task loop's record and its initializer.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerStart<IA> {
    pub tasks: Tasks,
    /// The initializer (a code offset of a `fn(IA)`) and its argument.
    pub init: Option<(isize, IA)>,
}

/// The worker process's target.
pub(crate) fn worker_main<IA: DeserializeOwned>(start: WorkerStart<IA>) {
    crash_point!("pool.worker_started");
    if let Err(e) = serve(start) {
        eprintln!("procshare pool worker: {e}");
        std::process::exit(2);
    }
}

fn serve<IA: DeserializeOwned>(start: WorkerStart<IA>) -> Result<()> {
    let WorkerStart { tasks, init } = start;
    let code = Code::load()?;
    if let Some((f, a)) = init {
        let f = code
            .resolve(f)
            .ok_or_else(|| Error::invalid("the initializer lies outside this program's code"))?;
        // SAFETY: see the module doc: made from a `fn(IA)` of this executable by the pool's
        // builder, which paired it with `worker_main::<IA>`; it lies in our code.
        let f: fn(IA) = unsafe { std::mem::transmute::<usize, fn(IA)>(f) };
        // A panic here ends the process with status 1 (printed as usual): an initializer death.
        f(a);
    }
    // From here on a task's panic is reported to its caller, not printed.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
    // A batch's tasks share their function: resolve it once per change, not per task.
    // (the offsets, and their addresses if they lie in our code)
    type Resolved = ((isize, isize), Option<(usize, usize)>);
    let mut resolved: Option<Resolved> = None;
    let mut run = |tramp: isize, f: isize, args: &[u8], fds: Vec<OwnedFd>, out: &mut Vec<u8>| {
        let key = (tramp, f);
        let addrs = match resolved {
            Some((k, a)) if k == key => a,
            _ => {
                let a = code.resolve(tramp).zip(code.resolve(f));
                resolved = Some((key, a));
                a
            }
        };
        match addrs {
            Some((tramp, f)) => {
                // SAFETY: see the module doc: made from `run::<A, R>` as a `Trampoline`.
                let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
                tramp(args, fds, f, out)
            }
            None => {
                Err((wire::CODEC, "the task's function lies outside this program's code".into()))
            }
        }
    };
    tasks.serve(&mut run)
}

/// Runs one task of a batch: `(tramp, f, args, fds, out)`; `Ok`: `out` holds the result's
/// encoding; `Err((kind, message))`.
pub(crate) type RunTask<'a> = dyn FnMut(isize, isize, &[u8], Vec<OwnedFd>, &mut Vec<u8>) -> std::result::Result<(), (u32, String)>
    + 'a;

/// What a worker's task loop needs, Rust or foreign: made by the owner for one slot's
/// generation, sent to the worker as (part of) its start record.
#[derive(Serialize, Deserialize)]
pub(crate) struct Tasks {
    slot: u32,
    gen: u64,
    inbox: Queue<()>,
    results: Queue<()>,
    table: Table,
    /// The worker's end of the socket that carries the descriptors of handles in task args.
    sock: FdArg,
    /// Exit after this many tasks (0: never).
    max_tasks: u64,
    /// Whether to stamp each task's start time (only `task_timeout` needs it).
    timed: bool,
}

impl Tasks {
    /// The record for the worker of `slot`, generation `gen`, of the pool `core`.
    pub(crate) fn for_slot(
        core: &super::core::Core,
        slot: usize,
        gen: u64,
        inbox: Queue<()>,
        sock: FdArg,
    ) -> Tasks {
        Tasks {
            slot: slot as u32,
            gen,
            inbox,
            results: core.results.clone(),
            table: core.table.clone(),
            sock,
            max_tasks: core.cfg.max_tasks.unwrap_or(0),
            timed: core.cfg.task_timeout.is_some(),
        }
    }

    /// The worker slot (0-based) this record fills.
    pub(crate) fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Reports READY, then takes batches and runs their tasks one by one with `run`, each
    /// recorded in the table before it runs and reported before the next is recorded.
    pub(crate) fn serve(self, run: &mut RunTask<'_>) -> Result<()> {
        let Tasks { slot, gen, inbox, results, table, sock, max_tasks, timed } = self;
        let mut report = Vec::new();
        let header = |kind, id, ns| Report { kind, slot, gen, id, ns };
        header(wire::READY, 0, 0).encode_into(&[], &mut report);
        crash_point!("pool.initialized");
        results.put_bytes(&report)?;
        let mut out = Vec::new();
        let mut done = 0u64;
        loop {
            let msg = match inbox.get_bytes() {
                Ok(m) => m,
                // The pool closed this inbox: nothing more will come.
                Err(Error::ShutDown) | Err(Error::Eof) => return Ok(()),
                Err(e) => return Err(e),
            };
            crash_point!("pool.batch_taken");
            let mut batch = Batch::decode(&msg)?;
            let fds =
                if batch.nfds == 0 { Vec::new() } else { receive_fds(sock.0.as_fd(), batch.nfds)? };
            let mut fds = Some(fds);
            // Run times go to the owner (it sizes our window from them) as an average over up
            // to TIME_EVERY tasks, so most tasks read no clock.
            let (mut since, mut untimed) = (std::time::Instant::now(), 0u64);
            let mut k = 0u32;
            while let Some(item) = batch.next_item() {
                k += 1;
                let (id, args) = item?;
                let started = if timed { deadline::now().as_nanos() as u64 } else { 0 };
                table.record(slot as usize, id, started);
                crash_point!("pool.task_recorded");
                out.clear();
                let outcome =
                    run(batch.tramp, batch.f, args, fds.take().unwrap_or_default(), &mut out);
                crash_point!("pool.task_ran");
                untimed += 1;
                let ns = if untimed >= TIME_EVERY || k == batch.count {
                    let now = std::time::Instant::now();
                    let avg = (now - since).as_nanos() as u64 / untimed;
                    (since, untimed) = (now, 0);
                    avg.max(1)
                } else {
                    0
                };
                match outcome {
                    Ok(()) => header(wire::OK, id, ns).encode_into(&out, &mut report),
                    Err((kind, msg)) => {
                        header(kind, id, ns).encode_into(msg.as_bytes(), &mut report)
                    }
                }
                results.put_bytes(&report)?;
                crash_point!("pool.result_sent");
                done += 1;
                if max_tasks != 0 && done >= max_tasks {
                    // Retiring: the owner sent us no more than this.
                    return Ok(());
                }
            }
            let _ = batch.count;
        }
    }
}

/// A task's report carries the average run time of the tasks since the last one that did, every
/// this many tasks (and at a batch's end); 0 in the others.
const TIME_EVERY: u64 = 16;

/// Takes the `n` descriptors that precede a batch on the worker's socket.
fn receive_fds(sock: std::os::fd::BorrowedFd<'_>, n: u32) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    let mut buf = [0u8; 8];
    while fds.len() < n as usize {
        let (len, got) = socket::recv_record(sock, &mut buf)?;
        if len == 0 && got.is_empty() {
            return Err(Error::Codec("the pool's descriptor socket closed mid-task".into()));
        }
        fds.extend(got);
    }
    if fds.len() != n as usize {
        return Err(Error::Codec("more descriptors than the task named".into()));
    }
    Ok(fds)
}
