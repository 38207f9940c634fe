//! [`Backoff`] — the one spinning policy: how long a waiter looks before it sleeps.
//!
//! Every waiter in the crate that spins on memory (the lock word,
//! [`WaitWord`](super::wait::WaitWord), the queue's spin phase, the thread queues) steps
//! through the same schedule: look, then busy-spin `2^step` pause hints (`step` ≤ [`SPIN_LIMIT`]), then give the
//! core away with `yield` (the peer we wait for may need it: two cores, many processes), and
//! after [`YIELD_LIMIT`] steps tell the caller to sleep. It is crossbeam's `Backoff` schedule,
//! kept here so that one type, with one tuning, serves the shared-memory waiters as well as
//! the thread queues.
//!
//! Tuning: a looker that stops after `is_completed` makes 11 looks over about 380 pause hints —
//! the lock word's old 10 rounds of `2 << i` hints (the most contended spinner) within one
//! round, and crossbeam's schedule exactly (the thread queues). A connection's receive keeps
//! its own count of tries (`pipe/connection.rs`): each of its looks is a system call.

use std::cell::Cell;

/// Steps that busy-spin (`2^step` hints each); later steps yield.
const SPIN_LIMIT: u32 = 6;
/// Looks of a [`Backoff::polling`] schedule before it yields.
const POLL_STEPS: u32 = 64;
/// After this many steps the caller should sleep instead.
const YIELD_LIMIT: u32 = 10;

/// One waiter's position in the spinning schedule (not shared: each wait makes its own).
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Cell<u32>,
    /// Busy-spins are `2^min(step, max_exp)` hints ...
    max_exp: u32,
    /// ... for steps up to this one; later steps of `snooze` yield.
    spin_steps: u32,
}

impl Backoff {
    /// A fresh schedule (crossbeam's).
    pub(crate) fn new() -> Backoff {
        Backoff { step: Cell::new(0), max_exp: SPIN_LIMIT, spin_steps: SPIN_LIMIT }
    }

    /// A fresh schedule for a waiter whose peer answers within microseconds (the queue's
    /// ping-pong): one hint between looks for [`POLL_STEPS`] looks, then yields, so an answer is
    /// seen at once instead of after up to 64 hints. The caller bounds it in time. Measured
    /// (`procshare bench --quick`, Queue ping-pong median RTT, 3 alternating runs in one
    /// session): 10.1–10.2 µs with crossbeam's schedule, 9.5–9.6 µs with this one.
    pub(crate) fn polling() -> Backoff {
        Backoff { step: Cell::new(0), max_exp: 0, spin_steps: POLL_STEPS }
    }

    fn advance(&self, step: u32) {
        if step <= YIELD_LIMIT.max(self.spin_steps) {
            self.step.set(step + 1);
        }
    }

    /// Busy-spins one step (for a waiter that only looks at memory, never needs a yield: the
    /// holder it waits for is running).
    pub(crate) fn spin(&self) {
        let step = self.step.get();
        for _ in 0..1u32 << step.min(self.max_exp) {
            std::hint::spin_loop();
        }
        self.advance(step);
    }

    /// Spins one step, or yields the core once spinning is done (for a waiter whose peer may be
    /// waiting for this core).
    pub(crate) fn snooze(&self) {
        let step = self.step.get();
        if step <= self.spin_steps {
            for _ in 0..1u32 << step.min(self.max_exp) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        self.advance(step);
    }

    /// Whether the schedule is over: the caller should sleep (futex, condvar, blocking call).
    pub(crate) fn is_completed(&self) -> bool {
        self.step.get() > YIELD_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_ends_after_yield_limit_steps_and_stays_ended() {
        for step in [Backoff::spin as fn(&Backoff), Backoff::snooze] {
            let b = Backoff::new();
            let mut looks = 0;
            while !b.is_completed() {
                looks += 1;
                step(&b);
            }
            assert_eq!(looks, YIELD_LIMIT + 1);
            step(&b);
            assert!(b.is_completed());
        }
    }
}
