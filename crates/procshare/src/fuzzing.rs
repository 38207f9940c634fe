//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not part of the API).
//!
//! Each function feeds arbitrary bytes to one decoder the way a hostile peer would reach it: a
//! socket whose other end the input writes (records with descriptors, a byte stream, a
//! handshake), shared memory whose bytes the input is (a queue's ring, a `ShareableList`), or
//! the text of a file (the tracker's `meta`). The only property checked here is the house rule:
//! bad input gives an `Err`, never a panic, an out-of-bounds access, a hang or an allocation
//! out of proportion — so every function returns nothing and panics only on a broken invariant
//! that is worth a report.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use crate::codec;
use crate::error::Error;
use crate::pipe::auth::{Handshake, Role};
use crate::queue::ring::{Ring, LINKS_BASE, SEGS_BASE, SEG_SIZE};
use crate::sys::deadline::Deadline;
use crate::sys::{memfd, socket};
use crate::Connection;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
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
/// Link words the input controls (segments 0..16).
const RING_LINKS: usize = 16 * 4;
/// Segment bytes the input controls (segments 0 and 1).
const RING_SEGS: usize = 2 * SEG_SIZE;

thread_local! {
    /// One queue reused by every run of [`ring`], wiped before each: creating and unmapping its
    /// 64 GiB of address space per run made the target ~50 times slower.
    static RING: Ring = Ring::create(0).expect("a queue for the ring fuzz target");
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
    let (hdr, rest) = data.split_at(data.len().min(RING_HDR));
    let (links, segs) = rest.split_at(rest.len().min(RING_LINKS));
    let segs = &segs[..segs.len().min(RING_SEGS)];
    let region = ring.region();
    assert!(SEGS_BASE + RING_SEGS <= region.payload_len());
    // SAFETY: every range written lies inside the payload (the header and the whole link table
    // end at SEGS_BASE, the two segments after it fit: asserted above); the queue was created by
    // this thread's `RING` and no other process or thread maps it, so nothing else accesses
    // those bytes meanwhile. The previous run's writes (a get can write the header, any link
    // word, and punch segments) are all inside the zeroed ranges.
    unsafe {
        let p = region.payload();
        std::ptr::write_bytes(p, 0, SEGS_BASE + RING_SEGS);
        std::ptr::copy_nonoverlapping(hdr.as_ptr(), p, hdr.len());
        std::ptr::copy_nonoverlapping(links.as_ptr(), p.add(LINKS_BASE), links.len());
        std::ptr::copy_nonoverlapping(segs.as_ptr(), p.add(SEGS_BASE), segs.len());
    }
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

/// The SEQPACKET record / out-of-band decoder (`pipe/connection.rs`): the input is a list of
/// records (with or without memfds of various seals) a hostile peer sends, then closes; the
/// connection receives with a mix of calls until end-of-file.
///
/// Input: `[limit][record]*`, record = `[op][len: u16 LE][bytes]`, then for an op with a memfd
/// `[memfd len: u16 LE, in KiB/16][memfd bytes: u8 count][bytes]`.
pub fn seqpacket(data: &[u8]) {
    let mut r = Reader(data);
    let Some(limit) = r.u8() else { return };
    let Ok((conn, peer)) = crate::pipe() else { return };
    conn.set_max_message_size(((limit as usize) << 16).max(1));
    let raw = peer.raw_fd();
    let mut ops = Vec::new();
    while ops.len() < 64 {
        let Some(op) = r.u8() else { break };
        let Some(len) = r.u16() else { break };
        let body = r.take(len as usize);
        let mut fds: Vec<OwnedFd> = Vec::new();
        if op & 0x04 != 0 {
            let Ok(f) = memfd::create("procshare-fuzz") else { break };
            let size = r.u16().unwrap_or(0) as u64 * 64;
            let fill = r.u8().unwrap_or(0) as usize;
            let bytes = r.take(fill);
            let _ = memfd::set_len(f.as_fd(), size.max(bytes.len() as u64));
            let _ = memfd::write_all_at(f.as_fd(), bytes, 0);
            let seals = match (op >> 3) & 3 {
                0 => memfd::SEAL_ALL,
                1 => 0,
                2 => libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
                _ => libc::F_SEAL_WRITE,
            };
            if seals != 0 {
                let _ = memfd::add_seals(f.as_fd(), seals);
            }
            if op & 0x20 != 0 {
                if let Ok(d) = f.try_clone() {
                    fds.push(d);
                }
            }
            fds.push(f);
        }
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        if socket::send_record(raw, &[body], &borrowed, true).is_err() {
            break;
        }
        ops.push(op >> 6);
    }
    drop(peer);
    let mut into = [0u8; 16];
    for i in 0..ops.len() + 4 {
        let how = ops.get(i).copied().unwrap_or(0);
        let res = match how {
            0 => conn.recv_bytes().map(drop),
            1 => conn.recv_bytes_max(8).map(drop),
            2 => conn.recv::<Shape>().map(drop),
            _ => match i % 3 {
                0 => conn.recv_pickle::<Any>().map(drop),
                1 => conn.recv_bytes_into(&mut into).map(drop),
                _ => conn.poll(Some(Duration::ZERO)).map(drop),
            },
        };
        if matches!(res, Err(Error::Eof)) {
            break;
        }
    }
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
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2);
        (b.len() == 2).then(|| u16::from_le_bytes([b[0], b[1]]))
    }
}
