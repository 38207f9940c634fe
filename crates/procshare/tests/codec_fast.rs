//! The native codec's one-copy path for byte sequences (`codec/fast.rs`): every value encodes to
//! exactly postcard's bytes and decodes from them (so old and new peers read each other), the
//! fast path keeps the depth limit's count and the allocation bound, and a user's own visitor
//! that builds a `Vec<u8>` some other way is left alone.

use procshare::codec::{decode, encode};
use procshare::{pipe, Process, Queue};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Counts the bytes this thread asks the allocator for, so a test can bound what a decode
/// allocates (other test threads count on their own).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; the counter is a const-initialised
// thread-local `Cell`, which needs no allocation itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout` (the caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + new_size));
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while `f` runs.
fn allocated_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATED.with(Cell::get);
    let r = f();
    (r, ALLOCATED.with(Cell::get) - before)
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Record {
    id: u64,
    name: String,
    data: Vec<u8>,
    tail: Option<Box<[u8]>>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum Msg {
    Ping,
    Bytes(Vec<u8>),
    Pair(u32, Vec<u8>),
    Named { key: String, value: Vec<u8> },
}

/// Our encoding is postcard's, byte for byte, and each side decodes the other's.
fn same_as_postcard<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let ours = encode(v).unwrap();
    let theirs = postcard::to_allocvec(v).unwrap();
    assert_eq!(ours, theirs, "{v:?}");
    assert_eq!(&decode::<T>(&theirs).unwrap(), v);
    assert_eq!(&postcard::from_bytes::<T>(&ours).unwrap(), v);
}

fn record() -> impl Strategy<Value = Record> {
    (any::<u64>(), ".{0,20}", prop::collection::vec(any::<u8>(), 0..300), any::<Option<Vec<u8>>>())
        .prop_map(|(id, name, data, tail)| Record {
            id,
            name,
            data,
            tail: tail.map(Vec::into_boxed_slice),
        })
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        Just(Msg::Ping),
        any::<Vec<u8>>().prop_map(Msg::Bytes),
        (any::<u32>(), any::<Vec<u8>>()).prop_map(|(a, b)| Msg::Pair(a, b)),
        (".{0,8}", any::<Vec<u8>>()).prop_map(|(key, value)| Msg::Named { key, value }),
    ]
}

proptest! {
    // Under Miri: a few cases (each is ~1000x slower), and no failure file (proptest finds it
    // through `getcwd`, which Miri's isolation refuses).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 128 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn byte_sequences_encode_as_postcard(v in prop::collection::vec(any::<u8>(), 0..2000)) {
        same_as_postcard(&v);
        same_as_postcard(&v.clone().into_boxed_slice());
        same_as_postcard(&(v.len() as u64, v.clone()));
        same_as_postcard(&vec![v.clone(), Vec::new(), v.clone()]);
        same_as_postcard(&Some(v.clone()));
        // A sequence of `u8` and a byte string are one wire form (the fast path's premise).
        prop_assert_eq!(encode(&v).unwrap(), encode(&serde_bytes::ByteBuf::from(v)).unwrap());
    }

    #[test]
    fn the_other_natural_types_encode_as_postcard(
        s in ".{0,100}",
        words in any::<Vec<u64>>(),
        signed in any::<Vec<i8>>(),
        map in any::<BTreeMap<String, Vec<u8>>>(),
        r in record(),
        m in prop::collection::vec(msg(), 0..8),
    ) {
        same_as_postcard(&s);
        same_as_postcard(&words);
        same_as_postcard(&signed);
        same_as_postcard(&map);
        same_as_postcard(&r);
        same_as_postcard(&m);
        same_as_postcard(&(s, words, r, [1u8, 2, 3]));
    }

    #[test]
    fn garbage_decodes_like_postcard(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        // Same verdict (value or error) as postcard itself, for the fast path's types.
        fn check<T: DeserializeOwned + PartialEq + Debug>(b: &[u8]) {
            match (decode::<T>(b), postcard::take_from_bytes::<T>(b)) {
                (Ok(ours), Ok((theirs, []))) => assert_eq!(ours, theirs),
                (Ok(ours), other) => panic!("{b:?}: we decoded {ours:?}, postcard {other:?}"),
                (Err(_), Ok((v, rest))) => assert!(!rest.is_empty(), "{b:?}: postcard {v:?}"),
                (Err(_), Err(_)) => {}
            }
        }
        check::<Vec<u8>>(&bytes);
        check::<(u8, Vec<u8>)>(&bytes);
        check::<Box<[u8]>>(&bytes);
        check::<Vec<Vec<u8>>>(&bytes);
        check::<Msg>(&bytes);
    }
}

/// A field that is a `Vec<u8>` built by the user's own visitor from a sequence of `u16`s (each
/// halved): the fast path must only take serde's own `Vec<u8>` visitor, or this would read the
/// varint-encoded `u16`s as raw bytes.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Halved {
    #[serde(deserialize_with = "halves")]
    v: Vec<u16>,
}

fn halves<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("u16s")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = a.next_element::<u16>()? {
                out.push((x / 2) as u8);
            }
            Ok(out)
        }
    }
    Ok(d.deserialize_seq(V)?.into_iter().map(u16::from).collect())
}

#[test]
fn a_users_own_vec_u8_visitor_reads_its_own_way() {
    let b = encode(&Halved { v: vec![300, 2, 510] }).unwrap();
    assert_eq!(decode::<Halved>(&b).unwrap(), Halved { v: vec![150, 1, 255] });
}

#[test]
fn a_lying_byte_length_allocates_nothing() {
    // A `Vec<u8>` claiming 2^32 - 1 bytes, with 3 there; and one claiming 2^63.
    let lies: [&[u8]; 2] = [
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ];
    for lie in lies {
        let (r, bytes) = allocated_by(|| decode::<Vec<u8>>(lie));
        assert!(r.is_err());
        // The error's message, nothing the length asked for.
        assert!(bytes < 1024, "{bytes} bytes allocated");
        let (r, bytes) = allocated_by(|| decode::<(String, Vec<u8>)>(&[&[0][..], lie].concat()));
        assert!(r.is_err());
        assert!(bytes < 1024, "{bytes} bytes allocated");
    }
    // An honest one allocates its bytes once.
    let b = encode(&vec![5u8; 100_000]).unwrap();
    let (r, bytes) = allocated_by(|| decode::<Vec<u8>>(&b));
    assert_eq!(r.unwrap().len(), 100_000);
    assert!(bytes < 101_000, "{bytes} bytes allocated");
}

/// `links` links, then a `Vec<u8>`: links + 2 levels (each link an enum level, the end an enum
/// level and the sequence).
#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum Chain {
    End(Vec<u8>),
    Link(Box<Chain>),
}

fn chain(links: usize) -> Chain {
    (0..links).fold(Chain::End(vec![1, 2, 3]), |c, _| Chain::Link(Box::new(c)))
}

#[test]
fn a_byte_sequence_still_counts_one_level() {
    let ok = chain(254);
    assert_eq!(decode::<Chain>(&encode(&ok).unwrap()).unwrap(), ok);
    match decode::<Chain>(&encode(&chain(255)).unwrap()) {
        Err(procshare::Error::Codec(m)) => assert!(m.contains("nested deeper than 256"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Lengths around the varint's byte boundaries and the queue's small/large item paths.
const LENS: [usize; 7] = [0, 1, 64, 127, 128, 5000, 70_000];

fn put_byte_vectors(q: Queue<Vec<u8>>) {
    for n in LENS {
        q.put(vec![n as u8; n]).unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore)] // spawns a process, maps shared memory
fn queue_and_pipe_carry_byte_vectors_between_processes() {
    let q = Queue::<Vec<u8>>::new().unwrap();
    let mut child = Process::spawn(q.clone(), put_byte_vectors).unwrap();
    for n in LENS {
        assert_eq!(q.get().unwrap(), vec![n as u8; n]);
    }
    assert_eq!(child.join().unwrap(), 0);

    // Bytes of plain postcard's encoder through a pipe decode with ours, and ours are postcard's.
    let (a, b) = pipe().unwrap();
    let v: Vec<u8> = (0..=255).collect();
    a.send_bytes(&postcard::to_allocvec(&v).unwrap()).unwrap();
    assert_eq!(b.recv::<Vec<u8>>().unwrap(), v);
    a.send(&v).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), postcard::to_allocvec(&v).unwrap());
}

/// An element that takes no bytes on the wire but is not zero-sized.
#[derive(Serialize, Deserialize, PartialEq, Debug, Default)]
struct Skipped {
    #[serde(skip)]
    _n: u64,
}

/// Decodes 10 bytes claiming 2^63 elements that take no bytes; exits 0 if that is an error.
fn decode_endless(kind: u8) {
    let lie = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let ok = match kind {
        0 => decode::<Vec<()>>(&lie).is_err(),
        1 => decode::<Vec<Skipped>>(&lie).is_err(),
        _ => decode::<BTreeMap<(), ()>>(&lie).is_err(),
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// Found while reading postcard's sequence path for the fast path: a sequence's length is
/// checked against the bytes left only through its size hint, so a hostile 10-byte message
/// claiming 2^63 elements of a type that takes no bytes looped the receiver for ever (`Vec<()>`,
/// a map) or allocated until it was killed (a struct of skipped fields). Each decode now fails.
#[test]
#[cfg_attr(miri, ignore)] // spawns processes
fn elements_that_take_no_bytes_cannot_be_claimed_endlessly() {
    for kind in 0..3u8 {
        let mut child = Process::spawn(kind, decode_endless).unwrap();
        match child.join_timeout(std::time::Duration::from_secs(120)).unwrap() {
            Some(code) => assert_eq!(code, 0, "kind {kind}: the lie decoded"),
            None => {
                child.kill().unwrap();
                panic!("kind {kind}: the receiver was still decoding after 2 minutes");
            }
        }
    }
    // Honest values of them, within the budget, still decode.
    let units = vec![(); 1 << 19];
    assert_eq!(decode::<Vec<()>>(&encode(&units).unwrap()).unwrap(), units);
    let m: BTreeMap<(), ()> = [((), ())].into();
    assert_eq!(decode::<BTreeMap<(), ()>>(&encode(&m).unwrap()).unwrap(), m);
    match decode::<Vec<()>>(&encode(&vec![(); 1 << 21]).unwrap()) {
        Err(procshare::Error::Codec(m)) => assert!(m.contains("elements"), "{m}"),
        other => panic!("{other:?}"),
    }
}
