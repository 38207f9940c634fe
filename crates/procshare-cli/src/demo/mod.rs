//! `procshare demo`: the book's programs, end to end.

mod pi;
mod pipe;
mod pool;
mod queue;
pub mod redis;
mod shm;

/// Which demo to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// One writer, two readers sharing one end of a Pipe.
    Pipe,
    /// One adder, two getters on a Queue.
    Queue,
    /// A ShareableList and an Array shared by several processes.
    Shm,
    /// "Computing Pi": workers summing a series into shared memory.
    Pi,
    /// "Computing Pi" on a Pool with retries(1), a worker SIGKILLed midway.
    Pool,
    /// The Queue program with the queue on Redis (`--url`, or a private redis-server).
    Redis,
    /// Every demo, one after another (but `redis`).
    All,
}

type Demo = fn() -> procshare::Result<()>;

const DEMOS: &[(Which, Demo)] = &[
    (Which::Pipe, pipe::run),
    (Which::Queue, queue::run),
    (Which::Shm, shm::run),
    (Which::Pi, pi::run),
    (Which::Pool, pool::run),
];

/// Runs one demo, or all of them.
pub fn run(which: Which) -> procshare::Result<()> {
    for (w, demo) in DEMOS {
        if which == Which::All || which == *w {
            demo()?;
        }
    }
    Ok(())
}
