//! The controller's books: which item of which producer incarnation every consumer took.
//!
//! Checked as reports arrive: no item twice (exactly once), and each consumer incarnation sees
//! each producer incarnation's items in increasing seq order. Checked once a producer's
//! incarnation has ended: nothing beyond its recorded seq + 1 (the one a kill may have caught
//! between `put` returning and the record). Checked at the end: every recorded item was
//! received, except at most one per consumer killed inside a get (counted from the board, not
//! guessed), after adding the items that killed consumers had taken but not yet reported.

use super::item;
use super::worker::{DONE, IN_GET};
use std::collections::HashMap;

/// The controller's own slot in reports (it drains what is left at the end).
pub const CONTROLLER: u8 = 255;

#[derive(Default)]
struct Producer {
    seen: Vec<u64>, // a bit per seq
    max_seen: u64,
    committed: Option<u64>,
}

impl Producer {
    fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        let fresh = self.seen[w] & (1 << b) == 0;
        self.seen[w] |= 1 << b;
        self.max_seen = self.max_seen.max(seq);
        fresh
    }
    fn has(&self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        w < self.seen.len() && self.seen[w] & (1 << (seq % 64)) != 0
    }
}

#[derive(Default)]
pub struct Flow {
    producers: HashMap<(usize, u32), Producer>,
    /// (consumer slot, consumer inc, producer slot, producer inc) -> last seq that consumer saw.
    order: HashMap<(u8, u32, usize, u32), u64>,
    last_reported: HashMap<(u8, u32), u64>,
    /// Consumer incarnations that ended with a bare id in their word: maybe not reported.
    unreported: Vec<((u8, u32), u64)>,
    /// Consumers that ended inside a get: each may have taken one item nobody saw. Each keeps
    /// what every producer of the flow had recorded when it died: it can only have taken an
    /// item committed by then.
    windows: Vec<HashMap<(usize, u32), u64>>,
    /// Producer incarnation -> how many windows there were when it ended.
    ended_at: HashMap<(usize, u32), usize>,
    pub lost_window: u64,
    pub missing: u64,
    /// JoinableQueue: consumers that ended before `task_done` of their item was recorded.
    pub maybe_not_done: u64,
    pub received: u64,
    pub committed_total: u64,
    pub reconciled: u64,
}

impl Flow {
    /// One item reported by a consumer; `Err` on a duplicate or an order violation.
    pub fn receive(&mut self, cslot: u8, cinc: u32, id: u64) -> Result<(), String> {
        let (ps, pi, seq) = item::unpack(id);
        if cslot != CONTROLLER {
            self.last_reported.insert((cslot, cinc), id);
        }
        self.received += 1;
        let p = self.producers.entry((ps, pi)).or_default();
        if !p.insert(seq) {
            return Err(format!("item {ps}.{pi}#{seq} received twice (now by {cslot}.{cinc})"));
        }
        if let Some(c) = p.committed {
            if seq > c + 1 {
                return Err(format!(
                    "item {ps}.{pi}#{seq} received, but that producer ended at #{c}"
                ));
            }
        }
        let last = self.order.entry((cslot, cinc, ps, pi)).or_insert(0);
        if seq <= *last {
            return Err(format!(
                "consumer {cslot}.{cinc} got {ps}.{pi}#{seq} after #{} (per-producer order)",
                *last
            ));
        }
        *last = seq;
        Ok(())
    }

    /// A producer incarnation ended (killed or finished) with `committed` recorded.
    pub fn producer_ended(&mut self, slot: usize, inc: u32, committed: u64) -> Result<(), String> {
        self.committed_total += committed;
        self.ended_at.insert((slot, inc), self.windows.len());
        let p = self.producers.entry((slot, inc)).or_default();
        p.committed = Some(committed);
        if p.max_seen > committed + 1 {
            return Err(format!(
                "producer {slot}.{inc} ended at #{committed}, but #{} was received",
                p.max_seen
            ));
        }
        Ok(())
    }

    /// A consumer incarnation ended (killed or finished) leaving `word` on the board; `live` is
    /// what the flow's running producers have recorded now.
    pub fn consumer_ended(
        &mut self,
        slot: u8,
        inc: u32,
        word: u64,
        joinable: bool,
        live: HashMap<(usize, u32), u64>,
    ) {
        if word & IN_GET != 0 {
            self.lost_window += 1;
            self.windows.push(live);
            if joinable {
                self.maybe_not_done += 1;
            }
        } else if word & item::ID_MASK != 0 {
            self.unreported.push(((slot, inc), word & item::ID_MASK));
            if joinable && word & DONE == 0 {
                self.maybe_not_done += 1;
            }
        }
    }

    /// The end-of-run check; call after every report and every item left was received.
    /// Returns the problems found (empty: every invariant held).
    pub fn finish(&mut self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for ((cs, ci), id) in std::mem::take(&mut self.unreported) {
            if self.last_reported.get(&(cs, ci)) != Some(&id) {
                // Taken by a consumer that died before its report went out: counted, and
                // still subject to the exactly-once check.
                self.reconciled += 1;
                let (ps, pi, seq) = item::unpack(id);
                let p = self.producers.entry((ps, pi)).or_default();
                if !p.insert(seq) {
                    out.push(format!(
                        "{name}: item {ps}.{pi}#{seq}, held by killed consumer {cs}.{ci}, was also received elsewhere"
                    ));
                }
            }
        }
        let mut missing = Vec::new();
        for (&(ps, pi), p) in &self.producers {
            let Some(c) = p.committed else {
                out.push(format!("{name}: producer {ps}.{pi} has no recorded end"));
                continue;
            };
            if p.max_seen > c + 1 {
                out.push(format!(
                    "{name}: producer {ps}.{pi} ended at #{c}, #{} received",
                    p.max_seen
                ));
            }
            for seq in 1..=c {
                if !p.has(seq) {
                    missing.push((ps, pi, seq));
                }
            }
        }
        self.missing = missing.len() as u64;
        missing.sort_unstable();
        let first: Vec<String> =
            missing.iter().take(10).map(|(s, i, q)| format!("{s}.{i}#{q}")).collect();
        if missing.len() as u64 > self.lost_window {
            out.push(format!(
                "{name}: {} committed items never received, but only {} consumers died inside a get; first: {}",
                missing.len(),
                self.lost_window,
                first.join(" ")
            ));
        } else if !self.windows_explain(&missing) {
            out.push(format!(
                "{name}: {} committed items never received, and not each one can be matched to a \
                 different consumer that died inside a get after it was put; first: {}",
                missing.len(),
                first.join(" ")
            ));
        }
        out
    }

    /// Whether each missing item can be given its own window opened after the item was put.
    /// Window k can explain item x iff x's producer had ended by then or had recorded at least
    /// x's seq - 1 (the next put may have been caught mid-way). That holds for every window from
    /// some first one e(x) on, so the windows each item may use are nested suffixes, and a
    /// matching exists iff, taking items by decreasing e(x), the i-th has at least i + 1
    /// windows from its e(x) on (Hall's condition for nested sets).
    fn windows_explain(&self, missing: &[(usize, u32, u64)]) -> bool {
        let n = self.windows.len();
        let mut firsts: Vec<usize> = missing
            .iter()
            .map(|&(ps, pi, seq)| {
                let ended = self.ended_at.get(&(ps, pi)).copied().unwrap_or(usize::MAX);
                (0..n)
                    .find(|&k| {
                        k >= ended || self.windows[k].get(&(ps, pi)).is_some_and(|&c| seq <= c + 1)
                    })
                    .unwrap_or(n)
            })
            .collect();
        firsts.sort_unstable_by(|a, b| b.cmp(a));
        firsts.iter().enumerate().all(|(i, &e)| n - e.min(n) > i)
    }

    /// Items known committed but not yet seen (for throttling; approximate while running).
    pub fn backlog(&self, live_committed: u64) -> u64 {
        (self.committed_total + live_committed).saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_order_and_phantoms_are_caught() {
        let mut f = Flow::default();
        let id = |seq| item::pack(1, 0, seq);
        assert!(f.receive(2, 0, id(1)).is_ok());
        assert!(f.receive(2, 0, id(3)).is_ok());
        assert!(f.receive(3, 0, id(2)).is_ok(), "another consumer may see an earlier seq");
        assert!(f.receive(3, 0, id(2)).is_err(), "duplicate");
        assert!(f.receive(2, 0, id(2)).is_err(), "duplicate and out of order");
        assert!(f.receive(4, 0, id(5)).is_ok());
        assert!(f.receive(4, 0, id(4)).is_err(), "order at one consumer");
        assert!(f.producer_ended(1, 0, 3).is_err(), "#5 seen, only #3 committed (+1 maybe)");
    }

    #[test]
    fn missing_items_need_a_window_each() {
        let mut f = Flow::default();
        let id = |seq| item::pack(1, 0, seq);
        f.receive(2, 0, id(1)).unwrap();
        f.receive(2, 0, id(3)).unwrap();
        f.producer_ended(1, 0, 4).unwrap();
        // #2 and #4 missing; one killed consumer had #4 on its board, unreported.
        f.consumer_ended(3, 0, id(4), false, HashMap::new());
        assert_eq!(f.clone_problems(), 1, "#2 missing with no window");
        let mut g = Flow::default();
        g.receive(2, 0, id(1)).unwrap();
        g.receive(2, 0, id(3)).unwrap();
        g.producer_ended(1, 0, 4).unwrap();
        g.consumer_ended(3, 0, id(4), false, HashMap::new());
        g.consumer_ended(5, 0, id(9) | IN_GET, false, HashMap::from([((1, 0), 2)]));
        assert!(g.finish("q").is_empty());
        assert_eq!(g.reconciled, 1);
    }

    #[test]
    fn a_window_only_explains_items_put_before_it() {
        let id = |seq| item::pack(1, 0, seq);
        let run = |snap: u64| {
            let mut f = Flow::default();
            f.receive(2, 0, id(1)).unwrap();
            // One consumer died inside a get when the producer had recorded #snap.
            f.consumer_ended(5, 0, IN_GET, false, HashMap::from([((1, 0), snap)]));
            f.receive(2, 0, id(3)).unwrap();
            f.producer_ended(1, 0, 3).unwrap();
            f.finish("q")
        };
        assert!(run(1).is_empty(), "#2 may have been in flight (recorded #1)");
        assert_eq!(run(0).len(), 1, "#2 was not put yet when the consumer died");
        // Two missing items, two windows, but both windows before the second item.
        let mut f = Flow::default();
        f.consumer_ended(5, 0, IN_GET, false, HashMap::from([((1, 0), 1)]));
        f.consumer_ended(6, 0, IN_GET, false, HashMap::from([((1, 0), 1)]));
        f.receive(2, 0, id(2)).unwrap();
        f.producer_ended(1, 0, 3).unwrap();
        assert_eq!(f.finish("q").len(), 1, "#1 and #3 missing; #3 came after both windows");
    }

    impl Flow {
        fn clone_problems(&mut self) -> usize {
            self.finish("q").len()
        }
    }
}
