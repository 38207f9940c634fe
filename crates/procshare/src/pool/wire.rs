//! The pool's messages: task batches (owner → a worker's inbox) and reports (workers and the
//! owner's threads → the results queue). Little-endian, fixed headers, every length checked:
//! a message is untrusted input on both sides (it lives in shared memory).
//!
//! ```text
//! batch:  | tramp: i64 | f: i64 | nfds: u32 | count: u32 | count × ( id: u64 | len: u32 | args ) |
//! report: | kind: u32 | slot: u32 | gen: u64 | id: u64 | ns: u64 | payload ... |
//! ```
//! `tramp`/`f` are code offsets (`process::code_offset`). `nfds` descriptors for the batch's one
//! task travel on the worker's socket just before the batch. Report kinds: [`OK`] (payload: the
//! result's encoding), [`PANICKED`] and [`CODEC`] (payload: a UTF-8 message), [`READY`] (the
//! worker's initializer returned), [`DIED`] (posted by the owner's reaper; `id` holds the exit
//! code as an `i64`, `ns` the pid), [`STOP`] (ends the collector).

use crate::error::{Error, Result};

pub(crate) const OK: u32 = 1;
pub(crate) const PANICKED: u32 = 2;
pub(crate) const CODEC: u32 = 3;
pub(crate) const READY: u32 = 4;
pub(crate) const DIED: u32 = 5;
pub(crate) const STOP: u32 = 6;

pub(crate) const BATCH_HEADER: usize = 24;
pub(crate) const ITEM_HEADER: usize = 12;
pub(crate) const REPORT_HEADER: usize = 32;

/// A report's fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    pub kind: u32,
    pub slot: u32,
    pub gen: u64,
    pub id: u64,
    pub ns: u64,
}

impl Report {
    pub(crate) fn encode_into(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(REPORT_HEADER + payload.len());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.slot.to_le_bytes());
        out.extend_from_slice(&self.gen.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.ns.to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// The header and the payload of a report; `None` for one too short to be a report.
    pub(crate) fn decode(msg: &[u8]) -> Option<(Report, &[u8])> {
        if msg.len() < REPORT_HEADER {
            return None;
        }
        let r = Report {
            kind: u32_at(msg, 0),
            slot: u32_at(msg, 4),
            gen: u64_at(msg, 8),
            id: u64_at(msg, 16),
            ns: u64_at(msg, 24),
        };
        Some((r, &msg[REPORT_HEADER..]))
    }
}

/// Starts a batch; items follow with [`push_item`].
pub(crate) fn start_batch(tramp: isize, f: isize, nfds: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(tramp as i64).to_le_bytes());
    out.extend_from_slice(&(f as i64).to_le_bytes());
    out.extend_from_slice(&nfds.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Appends one task to a batch started by [`start_batch`].
pub(crate) fn push_item(id: u64, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(args.len())
        .map_err(|_| Error::invalid("a task's arguments encode to more than 4 GiB"))?;
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(args);
    let count = u32_at(out, 20) + 1;
    out[20..24].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

/// A batch as a worker reads it.
pub(crate) struct Batch<'a> {
    pub tramp: isize,
    pub f: isize,
    pub nfds: u32,
    pub count: u32,
    rest: &'a [u8],
}

impl<'a> Batch<'a> {
    pub(crate) fn decode(msg: &'a [u8]) -> Result<Batch<'a>> {
        if msg.len() < BATCH_HEADER {
            return Err(Error::Codec("a pool batch shorter than its header".into()));
        }
        Ok(Batch {
            tramp: u64_at(msg, 0) as i64 as isize,
            f: u64_at(msg, 8) as i64 as isize,
            nfds: u32_at(msg, 16),
            count: u32_at(msg, 20),
            rest: &msg[BATCH_HEADER..],
        })
    }

    /// The next task: `(id, args)`; `None` at the end; `Err` for a batch that lies.
    pub(crate) fn next_item(&mut self) -> Option<Result<(u64, &'a [u8])>> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < ITEM_HEADER {
            return Some(Err(Error::Codec("a pool batch item cut short".into())));
        }
        let id = u64_at(self.rest, 0);
        let len = u32_at(self.rest, 8) as usize;
        let body = &self.rest[ITEM_HEADER..];
        if len > body.len() {
            return Some(Err(Error::Codec("a pool batch item longer than the batch".into())));
        }
        let (args, rest) = body.split_at(len);
        self.rest = rest;
        Some(Ok((id, args)))
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_and_a_lying_one_is_an_error() {
        let mut b = Vec::new();
        start_batch(-5, 7, 0, &mut b);
        push_item(1, b"ab", &mut b).unwrap();
        push_item(2, b"", &mut b).unwrap();
        let mut r = Batch::decode(&b).unwrap();
        assert_eq!((r.tramp, r.f, r.count), (-5, 7, 2));
        assert_eq!(r.next_item().unwrap().unwrap(), (1, &b"ab"[..]));
        assert_eq!(r.next_item().unwrap().unwrap(), (2, &b""[..]));
        assert!(r.next_item().is_none());
        // A length past the end, and a cut header.
        let mut bad = b.clone();
        bad[BATCH_HEADER + 8] = 200;
        assert!(Batch::decode(&bad).unwrap().next_item().unwrap().is_err());
        assert!(Batch::decode(&b[..BATCH_HEADER + 3]).unwrap().next_item().unwrap().is_err());
        assert!(Batch::decode(&b[..5]).is_err());
    }

    #[test]
    fn a_report_reads_back() {
        let r = Report { kind: OK, slot: 3, gen: 9, id: 77, ns: 5 };
        let mut out = Vec::new();
        r.encode_into(b"xyz", &mut out);
        assert_eq!(Report::decode(&out), Some((r, &b"xyz"[..])));
        assert_eq!(Report::decode(&out[..10]), None);
    }
}
