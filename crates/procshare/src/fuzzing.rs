//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not part of the API).
//!
//! Each function feeds arbitrary bytes to one decoder the way a hostile peer would reach it: a
//! socket whose other end the input writes (a byte stream, a handshake), shared memory whose
//! bytes the input is (a queue's ring, a pipe's ring, a `ShareableList`), or the text of a file
//! (the tracker's `meta`). The only property checked here is the house rule:
//! bad input gives an `Err`, never a panic, an out-of-bounds access, a hang or an allocation
//! out of proportion — so every function returns nothing and panics only on a broken invariant
//! that is worth a report.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use crate::codec;
use crate::error::Error;
use crate::pipe::auth::{Handshake, Role};
use crate::queue::ring::{Ring, HEADER_SPAN, LINKS_LEN, SEG_SIZE};
use crate::sys::deadline::Deadline;
use crate::Connection;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Any self-describing value (what `deserialize_any` yields), to drive the pickle decoder
/// through every shape it can produce.
#[derive(Debug)]
pub enum Any {
    Unit,
    Bool(bool),
    I64(i64),
    U64(u64),
    I128(i128),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Seq(Vec<Any>),
    Map(Vec<(Any, Any)>),
    Some(Box<Any>),
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Any, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Any;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("anything")
            }
            fn visit_unit<E>(self) -> Result<Any, E> {
                Ok(Any::Unit)
            }
            fn visit_none<E>(self) -> Result<Any, E> {
                Ok(Any::Unit)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Any, E> {
                Ok(Any::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Any, E> {
                Ok(Any::I64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Any, E> {
                Ok(Any::U64(v))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Any, E> {
                Ok(Any::I128(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Any, E> {
                Ok(Any::I128(v as i128))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Any, E> {
                Ok(Any::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Any, E> {
                Ok(Any::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Any, E> {
                Ok(Any::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Any, E> {
                Ok(Any::Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Any, E> {
                Ok(Any::Bytes(v))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
                Ok(Any::Some(Box::new(Any::deserialize(d)?)))
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
                Any::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                // No `size_hint` preallocation: the hint comes from the input.
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Any::Seq(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(Any::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A user type a peer may aim `recv` at: named fields, an enum, options, maps, nesting.
#[derive(Debug, serde::Deserialize)]
pub enum Shape {
    Unit,
    Newtype(u64),
    Tuple(i8, char, f32),
    Struct { name: String, tags: Vec<String>, blob: Vec<u8>, map: HashMap<u16, Option<i128>> },
}

/// The pickle decoder (`codec::pickle_decode_limited`) into a few target types. The first byte
/// picks the content limit a connection would pass (its `max_message_size`).
pub fn pickle(data: &[u8]) {
    let Some((&l, input)) = data.split_first() else { return };
    let limit = if l == 0 { usize::MAX } else { (l as usize) << 8 };
    let _ = codec::pickle_decode_limited::<Any>(input, limit);
    let _ = codec::pickle_decode_limited::<Vec<(i64, String)>>(input, limit);
    let _ = codec::pickle_decode_limited::<HashMap<String, Vec<u8>>>(input, limit);
    let _ = codec::pickle_decode_limited::<(Option<f64>, bool, Vec<Option<u32>>)>(input, limit);
    let _ = codec::pickle_decode_limited::<Shape>(input, limit);
}

/// `recv` of the native codec (`codec::decode`) into a few representative types.
pub fn native(data: &[u8]) {
    let _ = codec::decode::<String>(data);
    let _ = codec::decode::<Vec<u8>>(data);
    let _ = codec::decode::<(u32, String, Vec<f64>)>(data);
    let _ = codec::decode::<Vec<Vec<Option<i64>>>>(data);
    let _ = codec::decode::<HashMap<String, Vec<u16>>>(data);
    let _ = codec::decode::<Shape>(data);
    let _ = codec::decode::<(char, u128, [u8; 3])>(data);
}

/// Nested types a peer can make as deep as its message is long (postcard has no depth limit).
#[derive(Debug, serde::Deserialize)]
pub enum Tree {
    Leaf,
    Node(Vec<Tree>),
}

/// `codec::decode` into a recursive type (kept apart from [`native`]: see the regression test
/// `fuzz_regressions::native_decode_of_a_deep_recursive_type`).
pub fn native_recursive(data: &[u8]) {
    let _ = codec::decode::<Tree>(data);
    let _ = codec::decode::<Box<Option<Box<Tree>>>>(data);
}

/// The tracker's `meta` parser: whatever it accepts renders back to the same record.
pub fn tracker_meta(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(m) = crate::shm::tracker::Meta::parse(text) {
        let again = crate::shm::tracker::Meta::parse(&m.render());
        assert_eq!(again.as_ref(), Some(&m), "meta does not round-trip");
    }
}

thread_local! {
    /// One segment reused by every run of [`shareable_list`]: a named segment per run would cost
    /// a registry round trip each.
    static LIST_SHM: crate::SharedMemory = crate::SharedMemory::create(LIST_SHM_LEN)
        .expect("a shared memory segment for the list fuzz target");
}
const LIST_SHM_LEN: usize = 4096;

/// The ShareableList header parser (`shm::list::parse_header`) over exactly the input, then
/// the whole reader (`from_shm`, `get`, `to_vec`, `format`) over the input in a segment.
pub fn shareable_list(data: &[u8]) {
    let read = |at: usize| {
        data.get(at..at + 8)
            .map(|b| i64::from_ne_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| Error::invalid("past the end"))
    };
    if let Ok((n, offsets)) = crate::shm::list::parse_header(data.len(), read) {
        assert_eq!(offsets.len(), n + 1);
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }
    if data.len() > LIST_SHM_LEN {
        return;
    }
    LIST_SHM.with(|shm| {
        let mut page = vec![0u8; LIST_SHM_LEN];
        page[..data.len()].copy_from_slice(data);
        shm.write(0, &page).expect("write inside the segment");
        if let Ok(list) = crate::ShareableList::from_shm(shm.clone()) {
            for i in 0..=list.len() {
                let _ = list.get(i);
            }
            let _ = list.to_vec();
            let _ = list.format();
            let _ = list.count(&crate::Item::Int(0));
            if !list.is_empty() {
                let _ = list.set(0, crate::Item::Bytes(vec![1; 3]));
                let _ = list.get(0);
            }
        }
    });
}

/// Header bytes of the ring the input controls (the whole queue header and more).
const RING_HDR: usize = 512;
const _: () = assert!(RING_HDR <= HEADER_SPAN);
/// Link words the input controls (segments 0..16).
const RING_LINKS: usize = 16 * 4;
/// Segment bytes the input controls (segments 0 and 1).
const RING_SEGS: usize = 2 * SEG_SIZE;

thread_local! {
    /// One queue reused by every run of [`ring`], wiped before each: creating and unmapping a
    /// queue per run (its 64 GiB of address space, when it was mapped whole) made the target
    /// ~50 times slower.
    static RING: Ring = Ring::create(0).expect("a queue for the ring fuzz target");
}

/// Makes `ring`'s bytes what a hostile peer holding its memory wrote: `bytes` is
/// `[header: RING_HDR][links: RING_LINKS][segment bytes...]`, cut where it ends, and everything
/// else the previous run can have written (header, every link word, the two segments) is zeroed.
fn fill_ring(ring: &Ring, bytes: &[u8]) {
    let (hdr, rest) = bytes.split_at(bytes.len().min(RING_HDR));
    let (links, segs) = rest.split_at(rest.len().min(RING_LINKS));
    let segs = &segs[..segs.len().min(RING_SEGS)];
    let (header, links_at, seg0) =
        ring.raw_parts().expect("the first extent of the fuzzed ring maps");
    // SAFETY: every range written lies inside a mapping of the ring: its header (HEADER_SPAN
    // bytes, of which RING_HDR), its whole link table (LINKS_LEN bytes) and the first extent
    // (segments 0..4, of which the two written here). The queue was created by this thread (the `RING` or
    // `PIPE_RING` thread-local) and no other process maps it; the only other handle on it is
    // that pipe's reader, which runs on this thread and not during this write, so nothing else
    // accesses those bytes meanwhile. The previous run's writes (a get can write the header, any
    // link word, and punch segments) are all inside the zeroed ranges.
    unsafe {
        std::ptr::write_bytes(header, 0, RING_HDR);
        std::ptr::write_bytes(links_at, 0, LINKS_LEN);
        std::ptr::write_bytes(seg0, 0, RING_SEGS);
        std::ptr::copy_nonoverlapping(hdr.as_ptr(), header, hdr.len());
        std::ptr::copy_nonoverlapping(links.as_ptr(), links_at, links.len());
        std::ptr::copy_nonoverlapping(segs.as_ptr(), seg0, segs.len());
    }
    // The lock words are freed: input naming a live thread as holder (without an owner
    // record) is a peer holding the lock, and a locker waiting for a live holder is the lock's
    // promise, not a decoder's fault (fuzz/regressions/pipe_ring-timeout-consumer-lock-held).
    ring.fuzz_free_locks();
}

/// What a writer left in `ring`, in [`fill_ring`]'s layout (trailing zero bytes cut: a shorter
/// input reads as zeros there).
fn ring_bytes(ring: &Ring) -> Vec<u8> {
    let mut out = vec![0u8; RING_HDR + RING_LINKS + RING_SEGS];
    let (header, links, seg0) = ring.raw_parts().expect("the first extent of the fuzzed ring maps");
    // SAFETY: as in `fill_ring`: inside the header, the links and the first extent, and nobody
    // else accesses the ring meanwhile.
    unsafe {
        std::ptr::copy_nonoverlapping(header, out.as_mut_ptr(), RING_HDR);
        std::ptr::copy_nonoverlapping(links, out.as_mut_ptr().add(RING_HDR), RING_LINKS);
        let segs = out.as_mut_ptr().add(RING_HDR + RING_LINKS);
        std::ptr::copy_nonoverlapping(seg0, segs, RING_SEGS);
    }
    let used = out.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    out.truncate(used);
    out
}

/// The ring reader over arbitrary ring bytes: a queue whose header, first links and first
/// segments are the input (everything else zero), then gets until it says empty or errs.
///
/// Layout of the input: `[ctl][header: RING_HDR][links: RING_LINKS][segment bytes...]`.
pub fn ring(data: &[u8]) {
    RING.with(|ring| ring_over(ring, data));
}

fn ring_over(ring: &Ring, data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else { return };
    fill_ring(ring, data);
    let reap = ctl & 1 != 0;
    let max = 1 + ((ctl >> 1) & 7) as usize;
    let mut scratch = Vec::new();
    let _ = ring.len();
    let _ = ring.unfinished();
    for _ in 0..64 {
        let mut sink = |b: &[u8]| {
            let _ = codec::decode::<Vec<u8>>(b);
        };
        let r = ring.try_get(max, reap, Deadline::now(), &mut scratch, &mut sink);
        if !matches!(r, Ok(crate::queue::ring::GetStatus::Took)) {
            break;
        }
    }
    if ctl & 0x10 != 0 {
        let _ = ring.task_done();
    }
    if ctl & 0x20 != 0 {
        // The typed handle's get path on the same bytes.
        if let Ok(q) = crate::Queue::<String>::with_ring(ring.clone()) {
            for _ in 0..8 {
                if q.get_nowait().is_err() {
                    break;
                }
            }
            let _ = (q.qsize(), q.empty(), q.full());
        }
    }
}

/// A simplex pipe's reader and the ring it receives from, mapped a second time as a hostile
/// peer maps it: through the descriptors the reader hands a child (`handles::export`), the
/// one that opens as the pipe's region (its ring 0). The writer is returned too; [`PIPE_RING`] drops it.
fn hostile_pipe() -> crate::Result<(Connection, Ring, Connection)> {
    let (reader, writer) = crate::pipe_simplex()?;
    let (encoded, fds) = crate::shared::handles::export(|| codec::encode(&reader));
    encoded?;
    let ring = fds
        .into_iter()
        .find_map(|fd| {
            let region = crate::shared::region::Region::open(fd, crate::pipe::ring::MAGIC).ok()?;
            crate::pipe::ring::ring_of(&region, 0).ok()
        })
        .ok_or_else(|| Error::invalid("the pipe's reader carries no queue ring"))?;
    Ok((reader, ring, writer))
}

thread_local! {
    /// One pipe reused by every run of [`pipe_ring`] (a pipe per run costs two rings' worth of
    /// address space, as for [`RING`]). Its writer is dropped at once: the peer has closed, so
    /// every receive ends — with a message, an `Err`, or `Err(Eof)` once the ring is drained —
    /// and never waits for a writer that will not come.
    static PIPE_RING: (Connection, Ring) = {
        let (reader, ring, writer) = hostile_pipe().expect("a pipe for the pipe_ring fuzz target");
        drop(writer);
        (reader, ring)
    };
}

/// The pipe's receive path (`pipe/ring.rs` over `queue/ring.rs`) over arbitrary ring bytes: a
/// pipe whose writer wrote the input into the ring's memory (header, links, records) and then
/// closed; the reader receives with a mix of calls until `Err(Eof)`.
///
/// Input: `[limit][how: u32 LE][header: RING_HDR][links: RING_LINKS][segment bytes...]`; `limit`
/// is the reader's `max_message_size` in 64 KiB (0: 1 byte), and `how`, 3 bits a call, picks
/// the first ten calls (the rest are `recv_bytes`).
pub fn pipe_ring(data: &[u8]) {
    let mut r = Reader(data);
    let (Some(limit), Some(how)) = (r.u8(), r.u32()) else { return };
    PIPE_RING.with(|(conn, ring)| {
        fill_ring(ring, r.0);
        conn.set_max_message_size(((limit as usize) << 16).max(1));
        let mut into = [0u8; 16];
        for i in 0..64u32 {
            let pick = if i < 10 { (how >> (3 * i)) & 7 } else { 0 };
            let res = match pick {
                0 | 6 => conn.recv_bytes().map(drop),
                1 => conn.recv_bytes_max(8).map(drop),
                2 => conn.recv_bytes_into(&mut into).map(drop),
                3 => conn.recv::<Shape>().map(drop),
                4 => conn.recv_pickle::<Any>().map(drop),
                _ => conn.poll(Some(Duration::ZERO)).map(drop),
            };
            if matches!(res, Err(Error::Eof)) {
                break;
            }
        }
    });
}

/// A seed for [`pipe_ring`]: what a real writer's `send` calls leave in a fresh pipe's ring, in
/// that target's input layout (`limit` 16 = 1 MiB, every call `recv_bytes`).
pub fn pipe_ring_seed(
    send: impl FnOnce(&Connection) -> crate::Result<()>,
) -> crate::Result<Vec<u8>> {
    let (_reader, ring, writer) = hostile_pipe()?;
    send(&writer)?;
    let mut seed = vec![16, 0, 0, 0, 0];
    seed.extend(ring_bytes(&ring));
    Ok(seed)
}
/// CPython's stream framing (`pipe/stream.rs`) through a stream `Connection`: the input is
/// what the peer writes before it closes.
///
/// Input: `[how][limit][stream bytes...]`.
pub fn stream(data: &[u8]) {
    let mut r = Reader(data);
    let (Some(how), Some(limit)) = (r.u8(), r.u8()) else { return };
    // Small enough to sit whole in the socket's buffer, so writing it first cannot block.
    let bytes = r.take(64 << 10);
    let Ok((ours, mut theirs)) = UnixStream::pair() else { return };
    if theirs.write_all(bytes).is_err() {
        return;
    }
    drop(theirs);
    let conn = Connection::from_stream(OwnedFd::from(ours));
    conn.set_max_message_size(((limit as usize) << 12).max(1));
    let mut into = [0u8; 16];
    for i in 0..64u32 {
        let res = match (how as u32).rotate_right(2 * (i % 4)) & 3 {
            0 => conn.recv_bytes().map(drop),
            1 => conn.recv_bytes_max(16).map(drop),
            2 => conn.recv::<Shape>().map(drop),
            _ => conn.recv_bytes_into(&mut into).map(drop),
        };
        if matches!(res, Err(Error::Eof)) {
            break;
        }
    }
}

/// The authkey handshake (`pipe/auth.rs`), either side: the state machine is driven over a
/// socketpair whose other end the input feeds in chunks; at the end of the input the peer
/// closes. Whatever it sent, the handshake must end (`Ok` or `Err`), never wait on a closed
/// peer.
///
/// Input: `[ctl: bit 0 role, bits 1.. chunk size - 1][peer bytes...]`.
pub fn handshake(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else { return };
    let role = if ctl & 1 == 0 { Role::Server } else { Role::Client };
    let chunk = 1 + (ctl >> 1) as usize;
    let Ok((ours, mut theirs)) = UnixStream::pair() else { return };
    if theirs.set_nonblocking(true).is_err() {
        return;
    }
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut hs = Handshake::new(OwnedFd::from(ours), b"fuzz key", role, deadline);
    let mut fed = 0;
    let mut closed = false;
    let mut sink = [0u8; 1024];
    loop {
        match hs.advance() {
            Ok(true) | Err(_) => return,
            Ok(false) => {}
        }
        // Read what it sent, so its sends never fill the socket.
        while matches!(theirs.read(&mut sink), Ok(n) if n > 0) {}
        if fed < input.len() {
            let end = input.len().min(fed + chunk);
            match theirs.write(&input[fed..end]) {
                Ok(n) => fed += n,
                Err(_) => return,
            }
        } else if !closed {
            let _ = theirs.shutdown(std::net::Shutdown::Write);
            closed = true;
        } else {
            panic!("the handshake waits on a peer that has closed its side");
        }
    }
}

/// Takes bytes off the front of the input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4);
        (b.len() == 4).then(|| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds committed in `fuzz/corpus/pipe_ring`: messages sent by a real writer.
    fn seed_messages() -> Vec<(&'static str, Vec<Vec<u8>>)> {
        let shape = codec::encode(&("name", vec!["a", "b"], vec![1u8, 2, 3])).expect("encode");
        let pickle = codec::pickle_encode(&vec![(1i64, "one".to_string())]).expect("pickle");
        vec![
            ("empty", vec![]),
            ("one_small", vec![b"hello".to_vec()]),
            ("three_mixed", vec![shape, vec![0xab; 100], pickle]),
            ("one_of_10k", vec![(0..10_000u32).map(|i| i as u8).collect()]),
        ]
    }

    /// Each seed, replayed through the target's hostile write into a fresh pipe, reads back as
    /// exactly the messages the writer sent, then `Err(Eof)`: the layout `pipe_ring` writes is
    /// the one the reader reads, so the seeds (and the mutations of them) reach the record
    /// decoder. `PROCSHARE_WRITE_SEEDS=<dir>` also writes them there (to refresh the corpus
    /// after a ring layout change).
    #[test]
    fn pipe_ring_seeds_read_back() {
        let out = std::env::var_os("PROCSHARE_WRITE_SEEDS").map(std::path::PathBuf::from);
        for (name, messages) in seed_messages() {
            let seed = pipe_ring_seed(|w| messages.iter().try_for_each(|m| w.send_bytes(m)))
                .expect("seed");
            if let Some(dir) = &out {
                std::fs::write(dir.join(name), &seed).expect("write seed");
            }
            let (reader, ring, writer) = hostile_pipe().expect("pipe");
            drop(writer);
            fill_ring(&ring, &seed[5..]);
            let mut got = Vec::new();
            loop {
                match reader.recv_bytes() {
                    Ok(m) => got.push(m),
                    Err(Error::Eof) => break,
                    Err(e) => panic!("seed {name}: {e}"),
                }
            }
            assert_eq!(got, messages, "seed {name}");
        }
    }

    /// Every input under `fuzz/regressions/` (named `<target>-<what>`) replayed through its
    /// target, each on its own thread: it must return (not hang, not panic) within 60 s, which
    /// is generous for inputs that finish in milliseconds when fixed.
    #[test]
    fn regressions_finish() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("fuzz/regressions")
            .map(|e| e.expect("entry").file_name().into_string().expect("a UTF-8 name"))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no regression inputs in {}", dir.display());
        for name in names {
            let data = std::fs::read(dir.join(&name)).expect("read a regression input");
            let target: fn(&[u8]) = match name.split('-').next() {
                Some("pipe_ring") => pipe_ring,
                Some("ring") => ring,
                Some("stream") => stream,
                Some("handshake") => handshake,
                Some("pickle") => pickle,
                Some("native") => native,
                Some("shareable_list") => shareable_list,
                Some("tracker_meta") => tracker_meta,
                _ => panic!("{name}: no target of that name"),
            };
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                target(&data);
                let _ = done.send(());
            });
            match finished.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{name}: still running after 60 s")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: panicked"),
            }
        }
    }
}
