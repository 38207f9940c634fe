//! `Barrier` — an arrival count and a generation in one [`WaitWord`], plus a table of the
//! processes that use the barrier so that waiters can tell when a party has died.
//!
//! ```text
//!  0        8          12            16                       16 + 16*64
//!  +--------+----------+-------------+------------------------+
//!  | state  | parties  | reset_gen   | slots[64]: { pid, arrived, start } |
//!  +--------+----------+-------------+------------------------+
//!  state word: { broken:1 | generation:15 | count:16 }
//! ```
//!
//! A party arrives with one CAS (`count + 1`); the last one instead moves to the next
//! generation with `count = 0` and wakes everyone. Waiters sleep until the generation moves or
//! `broken` is set, and every [`CHECK_EVERY`] look at the slot table: a process that uses the
//! barrier (it received it as a `Process` argument, or waited on it), is dead, and had not
//! arrived in this generation will never arrive, so the barrier is broken (CAS that keeps the
//! generation: it fails if the generation completed meanwhile) and every waiter, now and later,
//! gets `Err(PeerDied)`, like Python's `BrokenBarrierError`.
//!
//! Crash table:
//! | killed ...                          | leaves                                  | repaired by            |
//! |-------------------------------------|-----------------------------------------|------------------------|
//! | before its arrival CAS              | a party that will never come            | waiters: slot check -> broken |
//! | after the CAS, before `arrived` is written | the arrival counted, slot says not arrived | waiters: broken (a false "broken" rather than a hang) |
//! | as the last arrival, before the wake | generation moved, sleepers asleep      | their next check sees the new generation |
//! | registering (slot `pid` set, `start` not yet) | a slot never checked           | nobody: that process's death is not detected |
#![allow(unsafe_code)]
//! # Safety
//! Two `unsafe` blocks view parts of the region as [`BarrierWords`] and [`Slot`]s: atomics only,
//! valid for any bit pattern; `Region::at` checks bounds and alignment; slot indices are below
//! [`SLOTS`].

use super::raw::CHECK_EVERY;
use super::wait::{self, WaitWord};
use super::{check_region, magic};
use crate::error::{Error, Result};
use crate::shm::region::Region;
use crate::sys::{owner, proc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

const BROKEN: u32 = 1 << 31;
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u32 = 0x7fff;
const COUNT_MASK: u32 = 0xffff;
/// Processes whose death a barrier can detect.
pub(crate) const SLOTS: usize = 64;

#[repr(C)]
struct BarrierWords {
    /// `{ broken:1 | generation:15 | count:16 }`; AcqRel CAS by arrivals.
    state: WaitWord,
    parties: AtomicU32,
    /// `generation + 1` of the generation last ended by `reset` (0: none), written while the
    /// state is broken (so no arrival can complete that generation) and before the Release
    /// store of the next generation; waiters read it after seeing the generation move.
    reset_gen: AtomicU32,
}

#[repr(C)]
struct Slot {
    /// The process, 0 = free slot; claimed by CAS.
    pid: AtomicU32,
    /// `generation + 1` of this process's latest arrival (0: none yet).
    arrived: AtomicU32,
    /// The process's start time (0 until written: the slot is not checked).
    start: AtomicU64,
}

const SLOTS_AT: usize = std::mem::size_of::<BarrierWords>();
const SIZE: usize = SLOTS_AT + SLOTS * std::mem::size_of::<Slot>();

fn generation(s: u32) -> u32 {
    (s >> GEN_SHIFT) & GEN_MASK
}

/// A meeting point for a fixed number of parties (`multiprocessing.Barrier`): each
/// [`wait`](Barrier::wait) blocks until `parties` threads or processes have called it, then all
/// go on; the barrier can be used again.
///
/// If a process that uses the barrier dies before arriving, the others are not left waiting:
/// the barrier breaks, and `wait` returns `Err(PeerDied)` to everyone (now and later). A process
/// "uses" the barrier once it has received it as a [`Process`](crate::Process) argument or called
/// `wait`; so a process that received the barrier but is not a party, and exits while others
/// wait, also breaks it. At most 64 processes per barrier are watched.
///
/// ```no_run
/// use procshare::{Barrier, Process};
/// procshare::init();
/// let barrier = Barrier::new(3)?;
/// let mut kids: Vec<Process> = (0..2)
///     .map(|_| Process::spawn(barrier.clone(), |b| { b.wait().unwrap(); }))
///     .collect::<procshare::Result<_>>()?;
/// let index = barrier.wait()?; // 0, 1 or 2: the order of arrival
/// assert!(index < 3);
/// for k in &mut kids { k.join()?; }
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    region: Region,
    /// `(pid << 32) | slot + 1` of this process's registration (0: none), shared by clones.
    registered: Arc<AtomicU64>,
}

impl Barrier {
    /// A barrier for `parties` parties (1 to 65535, else `InvalidArgument`).
    pub fn new(parties: usize) -> Result<Barrier> {
        if parties == 0 || parties > COUNT_MASK as usize {
            return Err(Error::invalid(format!(
                "a barrier needs 1 to {COUNT_MASK} parties, not {parties}"
            )));
        }
        let region = Region::create(magic::BARRIER, SIZE, |_| {})?;
        let b = Barrier { region, registered: Arc::default() };
        b.words().parties.store(parties as u32, Ordering::Relaxed);
        Ok(b)
    }

    fn words(&self) -> &BarrierWords {
        // SAFETY: see the module's Safety section.
        unsafe { self.region.at::<BarrierWords>(0) }
    }

    fn slot(&self, i: usize) -> &Slot {
        debug_assert!(i < SLOTS);
        // SAFETY: see the module's Safety section.
        unsafe { self.region.at::<Slot>(SLOTS_AT + i * std::mem::size_of::<Slot>()) }
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        // Untrusted: a peer could write anything; clamp to the valid range.
        self.words().parties.load(Ordering::Relaxed).clamp(1, COUNT_MASK) as usize
    }

    /// How many parties wait right now (a snapshot).
    pub fn n_waiting(&self) -> usize {
        (self.words().state.word().load(Ordering::Relaxed) & COUNT_MASK) as usize
    }

    /// Whether the barrier is broken (a party died, or [`abort`](Barrier::abort) was called).
    pub fn broken(&self) -> bool {
        self.words().state.word().load(Ordering::Acquire) & BROKEN != 0
    }

    /// Breaks the barrier: current and later waiters get `Err(PeerDied)` (Python's `abort`).
    pub fn abort(&self) {
        self.words().state.word().fetch_or(BROKEN, Ordering::AcqRel);
        self.words().state.wake_all();
    }

    /// Returns the barrier to its empty state (Python's `reset`): parties waiting now get
    /// `Err(PeerDied)`, later waits start a new round. Makes a broken barrier usable again.
    pub fn reset(&self) {
        let w = self.words().state.word();
        // First break it, so that no arrival can complete the current generation meanwhile.
        let s = w.fetch_or(BROKEN, Ordering::AcqRel);
        let gen = generation(s);
        self.words().reset_gen.store(gen + 1, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of the waiters; makes `reset_gen` visible.
        w.store(((gen + 1) & GEN_MASK) << GEN_SHIFT, Ordering::Release);
        self.words().state.wake_all();
    }

    /// Records this process in the slot table (once per process).
    fn register(&self) -> Option<usize> {
        let pid = proc::current_pid();
        let r = self.registered.load(Ordering::Relaxed);
        if r != 0 && (r >> 32) as u32 == pid {
            return Some((r & 0xffff_ffff) as usize - 1);
        }
        let start = owner::thread_start_time(pid).ok().flatten().unwrap_or(0);
        let mut found = None;
        for i in 0..SLOTS {
            let s = self.slot(i);
            let p = s.pid.load(Ordering::Acquire);
            if p == pid && (s.start.load(Ordering::Relaxed) == start || start == 0) {
                found = Some(i);
                break;
            }
            if p == 0 && s.pid.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                s.arrived.store(0, Ordering::Relaxed);
                s.start.store(start, Ordering::Release);
                found = Some(i);
                break;
            }
        }
        if let Some(i) = found {
            self.registered.store(((pid as u64) << 32) | (i as u64 + 1), Ordering::Relaxed);
        }
        found
    }

    /// Whether a registered process is dead without having arrived in generation `gen`.
    fn party_died(&self, gen: u32) -> bool {
        (0..SLOTS).any(|i| {
            let s = self.slot(i);
            let pid = s.pid.load(Ordering::Acquire);
            let start = s.start.load(Ordering::Acquire);
            if pid == 0 || start == 0 || s.arrived.load(Ordering::Acquire) == gen + 1 {
                return false;
            }
            match owner::thread_start_time(pid) {
                Ok(None) => true,
                Ok(Some(t)) => t != start,
                Err(_) => false, // unknown: assume alive
            }
        })
    }

    /// Waits until all parties have arrived; returns this party's arrival index (0 for the
    /// first, `parties - 1` for the last). `Err(PeerDied)` if the barrier is or becomes broken.
    pub fn wait(&self) -> Result<usize> {
        let slot = self.register();
        let parties = self.parties() as u32;
        let w = self.words().state.word();
        let mut s = w.load(Ordering::Acquire);
        let (gen, index) = loop {
            if s & BROKEN != 0 {
                return Err(Error::PeerDied);
            }
            let gen = generation(s);
            let count = s & COUNT_MASK;
            let next =
                if count + 1 >= parties { ((gen + 1) & GEN_MASK) << GEN_SHIFT } else { s + 1 };
            match w.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break (gen, count),
                Err(now) => s = now,
            }
        };
        if let Some(i) = slot {
            self.slot(i).arrived.store(gen + 1, Ordering::Release);
        }
        if index + 1 >= parties {
            self.words().state.wake_all();
            return Ok(index as usize);
        }
        loop {
            let until = wait::slice(None, CHECK_EVERY);
            let done =
                self.words().state.wait_until(until, |v| v & BROKEN != 0 || generation(v) != gen);
            let s = w.load(Ordering::Acquire);
            if generation(s) != gen {
                if self.words().reset_gen.load(Ordering::Relaxed) == gen + 1 {
                    return Err(Error::PeerDied); // ended by `reset`, not completed
                }
                return Ok(index as usize);
            }
            if s & BROKEN != 0 {
                return Err(Error::PeerDied);
            }
            if !done
                && self.party_died(gen)
                && w.compare_exchange(s, s | BROKEN, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                self.words().state.wake_all();
                return Err(Error::PeerDied);
            }
        }
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let region = Region::deserialize(d)?;
        let region =
            check_region(region, magic::BARRIER, SIZE).map_err(serde::de::Error::custom)?;
        let b = Barrier { region, registered: Arc::default() };
        // The receiving process is presumably a party: watch it from now on.
        b.register();
        Ok(b)
    }
}
