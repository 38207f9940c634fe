//! `recv_pickle` against hostile and real pickles: reference bombs, deep nesting, lying lengths
//! and class/callable opcodes from a hostile peer process must be `Err(Codec)` with the
//! connection still usable; what CPython's pickler writes (protocols 0–5, CPython's own
//! `pickletester` corpus) must decode, and round-trip both ways through `python3`.

use procshare::codec::{pickle_decode, pickle_encode};
use procshare::{pipe, Address, Connection, Error, Listener, Process};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

mod common;

fn python() -> Option<Command> {
    common::python3("multiprocessing.connection", "the CPython part of this test")
}

/// Runs a python3 script and returns its stdout lines, `None` without python3.
fn run_python(script: &str, stdin: &[u8]) -> Option<Vec<String>> {
    let mut py = python()?;
    let mut child =
        py.arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    Some(String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Any Python data value, as serde sees it (sets and tuples are sequences).
#[derive(Debug, Clone, PartialEq)]
enum Py {
    None,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Seq(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl<'de> Deserialize<'de> for Py {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Py, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Py;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Python value")
            }
            fn visit_unit<E>(self) -> Result<Py, E> {
                Ok(Py::None)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Py, E> {
                Ok(Py::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Py, E> {
                Ok(Py::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Py, E> {
                Ok(i64::try_from(v).map_or(Py::UInt(v), Py::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Py, E> {
                Ok(Py::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Py, E> {
                Ok(Py::Str(v.into()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Py, E> {
                Ok(Py::Bytes(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Py, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Py::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Py, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(Py::Dict(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn s(x: &str) -> Py {
    Py::Str(x.into())
}
fn i(x: i64) -> Py {
    Py::Int(x)
}
fn seq(v: Vec<Py>) -> Py {
    Py::Seq(v)
}
fn dict(v: Vec<(&str, Py)>) -> Py {
    Py::Dict(v.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn codec_err<T: std::fmt::Debug>(r: procshare::Result<T>) -> String {
    match r {
        Err(Error::Codec(e)) => e,
        other => panic!("expected Err(Codec), got {other:?}"),
    }
}

fn dup_bomb() -> Vec<u8> {
    let mut b = b"\x80\x02N".to_vec();
    for _ in 0..30 {
        b.extend_from_slice(b"2\x86");
    }
    b.push(b'.');
    b
}

fn deep_lists(depth: usize) -> Vec<u8> {
    let mut b = vec![b'('; depth];
    b.extend(std::iter::repeat(b'l').take(depth));
    b.push(b'.');
    b
}

fn huge_unicode8() -> Vec<u8> {
    let mut b = vec![0x80, 4, 0x8d];
    b.extend_from_slice(&(1u64 << 60).to_le_bytes());
    b.extend_from_slice(b"abc.");
    b
}

/// Python's `pickle.loads` of this runs `os.system`; ours must refuse it.
fn os_system(marker: &std::path::Path) -> Vec<u8> {
    format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display()).into_bytes()
}

#[test]
fn hostile_pickles_are_codec_errors() {
    assert!(codec_err(pickle_decode::<Py>(&dup_bomb())).contains("values"));
    assert!(codec_err(pickle_decode::<Py>(&deep_lists(1_000_000))).contains("deeper"));
    let mut marks = vec![b'('; 1_000_000];
    marks.extend_from_slice(b"l.");
    pickle_decode::<Py>(&marks).unwrap();
    assert!(codec_err(pickle_decode::<Py>(&huge_unicode8())).contains("BINUNICODE8"));
    assert!(codec_err(pickle_decode::<Py>(b"\x80\x02h\x07.")).contains("never PUT"));
    for (p, op) in [
        (&b"cos\nsystem\n(S'id'\ntR."[..], "GLOBAL"),
        (b"\x80\x04\x8c\x02os\x8c\x06system\x93.", "STACK_GLOBAL"),
        (b"N)R.", "REDUCE"),
        (b"}}b.", "BUILD"),
        (b"(i__main__\nC\n(dp0\nb.", "INST"),
        (b"(N)o.", "OBJ"),
        (b"\x80\x02N)\x81.", "NEWOBJ"),
        (b"\x80\x04N)}\x92.", "NEWOBJ_EX"),
        (b"\x80\x02\x82\x01.", "EXT1"),
        (b"\x80\x02\x83\x01\x00.", "EXT2"),
        (b"\x80\x02\x84\x01\x00\x00\x00.", "EXT4"),
        (b"Pabc\n.", "PERSID"),
        (b"NQ.", "BINPERSID"),
        (b"\x80\x05\x97.", "NEXT_BUFFER"),
        (b"\x80\x05N\x98.", "READONLY_BUFFER"),
    ] {
        let e = codec_err(pickle_decode::<Py>(p));
        assert!(e.contains(op), "{op}: {e}");
    }
    let ok = pickle_encode(&(1i64, "two", vec![3.5f64], Some(true))).unwrap();
    for n in 0..ok.len() {
        codec_err(pickle_decode::<Py>(&ok[..n]));
    }
}

/// The victim runs in a child and is judged by its exit status: serde-pickle aborted on the
/// bomb (SIGABRT), which would have killed the whole test binary.
#[test]
fn child_receiving_the_bomb_survives_and_keeps_the_connection() {
    let (ours, theirs) = pipe().unwrap();
    let mut victim = Process::spawn(theirs, |c: Connection| {
        for _ in 0..4 {
            match c.recv_pickle::<Py>() {
                Err(Error::Codec(_)) => {}
                other => panic!("hostile pickle gave {other:?}"),
            }
        }
        let v: Vec<(i64, String)> = c.recv_pickle().unwrap();
        c.send_pickle(&v.len()).unwrap();
    })
    .unwrap();
    for hostile in
        [dup_bomb(), deep_lists(1_000_000), huge_unicode8(), b"(i__main__\nC\n(dp0\nb.".to_vec()]
    {
        ours.send_bytes(&hostile).unwrap();
    }
    ours.send_pickle(&vec![(1i64, "a"), (2, "b")]).unwrap();
    assert_eq!(ours.recv_pickle::<usize>().unwrap(), 2);
    assert_eq!(victim.join().unwrap(), 0);
}

#[test]
fn python_peer_sends_hostile_pickles_to_our_listener() {
    if python().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("procshare-hostile-pickle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("pwned");
    let listener =
        Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"k")).unwrap();
    let Address::Tcp(addr) = listener.address() else { unreachable!() };
    let payloads: Vec<String> = [
        dup_bomb(),
        deep_lists(1_000_000),
        huge_unicode8(),
        os_system(&marker),
        b"(i__main__\nC\n(dp0\nb.".to_vec(),
    ]
    .iter()
    .map(|p| hex(p))
    .collect();
    let script = format!(
        r#"
import sys
from multiprocessing.connection import Client
c = Client(('127.0.0.1', {port}), authkey=b'k')
for line in sys.stdin:
    c.send_bytes(bytes.fromhex(line.strip()))
d = {{'a': [1, 2]}}
c.send({{'x': d, 'y': d}})
big = b'\x07' * 1000
c.send([big, big, big, big])
c.send([big])
print(repr(c.recv()))
"#,
        port = addr.port()
    );
    let mut child = common::spawn_python(&script);
    // Python connects before it reads its stdin, so the writing must not wait for the accept.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(payloads.join("\n").as_bytes()));
    let conn = listener.accept().unwrap();
    for _ in 0..5 {
        codec_err(conn.recv_pickle::<Py>());
    }
    writer.join().unwrap().unwrap();
    assert!(!marker.exists(), "a pickle ran os.system");
    // A dict referenced twice (memo) is data, not recursion.
    let m: BTreeMap<String, HashMap<String, Vec<i64>>> = conn.recv_pickle().unwrap();
    assert_eq!(m["x"], m["y"]);
    assert_eq!(m["y"]["a"], [1, 2]);
    // Four references to one 1000-byte string decode to 4000 bytes: over a 2000-byte limit
    // (the message itself is only ~1 KB).
    conn.set_max_message_size(2000);
    let e = codec_err(conn.recv_pickle::<Vec<serde_bytes::ByteBuf>>());
    assert!(e.contains("max_message_size"), "{e}");
    assert_eq!(conn.recv_pickle::<Vec<serde_bytes::ByteBuf>>().unwrap().len(), 1);
    conn.send_pickle("still usable").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "'still usable'\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Python values and what they decode to; the script below writes the same list.
fn cases() -> Vec<Py> {
    let d = dict(vec![("a", seq(vec![i(1), i(2)]))]);
    let c = dict(vec![("foo", i(1)), ("bar", i(2))]);
    let y = seq(vec![s("abc"), s("abc"), c.clone(), c]);
    let mut testdata = vec![i(0), i(1), Py::Float(2.0)];
    for v in [1, -1, 0xff, -0xff, -0x100, 0xffff, -0xffff, -0x10000, 0x7fff_ffff, -0x7fff_ffff] {
        testdata.push(i(v));
    }
    testdata.extend([i(-0x8000_0000), y.clone(), y, i(5)]);
    vec![
        seq([
            0,
            1,
            -1,
            255,
            256,
            65535,
            65536,
            (1 << 31) - 1,
            -(1 << 31),
            1 << 31,
            i64::MAX,
            i64::MIN,
        ]
        .into_iter()
        .map(i)
        .collect()),
        Py::UInt(u64::MAX),
        seq(vec![
            Py::Float(0.0),
            Py::Float(-2.5),
            Py::Float(1e300),
            Py::Float(f64::INFINITY),
            Py::Float(f64::NEG_INFINITY),
        ]),
        seq(vec![s(""), s("héllo €𝄞"), s("a\\b\n\r\0\x1a \"'")]),
        seq(vec![
            Py::Bytes(vec![]),
            Py::Bytes([0u8, 255].repeat(200)),
            Py::Bytes((0..=255).collect()),
        ]),
        Py::Bytes(b"xy\0".to_vec()),
        seq(vec![i(1), seq(vec![i(2), seq(vec![i(3)])])]),
        seq(vec![i(1), s("a"), Py::None, Py::Bool(true), Py::Bool(false)]),
        seq(vec![seq(vec![]), seq(vec![i(1)])]),
        dict(vec![("k", seq(vec![i(1), i(2)])), ("j", dict(vec![]))]),
        seq(vec![i(1), i(2), i(3)]),
        seq(vec![i(7)]),
        dict(vec![("x", d.clone()), ("y", d.clone()), ("z", seq(vec![d.clone(), d]))]),
        seq(testdata),
    ]
}

const CASES_PY: &str = r#"
import pickle
d = {'a': [1, 2]}
c = {'foo': 1, 'bar': 2}
y = ('abc', 'abc', c, c)
x = [0, 1, 2.0, 1, -1, 0xff, -0xff, -0x100, 0xffff, -0xffff, -0x10000, 0x7fffffff, -0x7fffffff,
     -0x80000000, y, y, 5]
cases = [
    [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, 2**63 - 1, -2**63],
    2**64 - 1,
    [0.0, -2.5, 1e300, float('inf'), float('-inf')],
    ['', 'héllo €𝄞', 'a\\b\n\r\x00\x1a "\''],
    [b'', b'\x00\xff' * 200, bytes(range(256))],
    bytearray(b'xy\x00'),
    [1, [2, [3]]],
    (1, 'a', None, True, False),
    ((), (1,)),
    {'k': [1, 2], 'j': {}},
    {1, 2, 3},
    frozenset([7]),
    {'x': d, 'y': d, 'z': [d, d]},
    x,
]
for proto in range(6):
    for o in cases:
        print(proto, pickle.dumps(o, proto).hex())
"#;

#[test]
fn cpython_pickles_of_every_protocol_decode() {
    let Some(lines) = run_python(CASES_PY, b"") else { return };
    let cases = cases();
    assert_eq!(lines.len(), cases.len() * 6);
    for (n, line) in lines.iter().enumerate() {
        let (proto, p) = line.split_once(' ').unwrap();
        let want = &cases[n % cases.len()];
        let got = pickle_decode::<Py>(&unhex(p))
            .unwrap_or_else(|e| panic!("protocol {proto}, case {}: {e}", n % cases.len()));
        assert_eq!(&got, want, "protocol {proto}, case {}", n % cases.len());
    }
}

#[test]
fn cpython_ints_outside_u64_and_i64_are_errors() {
    let script = "import pickle\nfor p in range(6):\n    for v in (2**64, -2**63 - 1, 2**1000):\n        print(pickle.dumps(v, p).hex())\n";
    let Some(lines) = run_python(script, b"") else { return };
    for line in lines {
        assert!(codec_err(pickle_decode::<Py>(&unhex(&line))).contains("fit"), "{line}");
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Dot,
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Msg {
    id: u64,
    name: String,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    coords: Vec<(i32, i32)>,
    tags: BTreeMap<String, Option<bool>>,
    shapes: Vec<Shape>,
}

/// Rust → Python → Rust: what `send_pickle` writes, Python reads, and what Python writes back
/// (every protocol) we read back to the same value.
#[test]
fn round_trip_through_python_both_ways() {
    let msg = Msg {
        id: u64::MAX,
        name: "naïve ☃".into(),
        blob: vec![0, 1, 254, 255],
        coords: vec![(1, -1), (i32::MAX, i32::MIN)],
        tags: [("on".to_string(), Some(true)), ("off".to_string(), None)].into(),
        shapes: vec![Shape::Dot, Shape::Circle(0.5), Shape::Rect { w: 2, h: 3 }],
    };
    let script = r#"
import pickle, sys
o = pickle.loads(bytes.fromhex(sys.stdin.read().strip()))
print(repr(o))
for p in range(6):
    print(pickle.dumps(o, p).hex())
"#;
    let Some(lines) = run_python(script, hex(&pickle_encode(&msg).unwrap()).as_bytes()) else {
        return;
    };
    assert_eq!(
        lines[0],
        "{'id': 18446744073709551615, 'name': 'naïve ☃', 'blob': b'\\x00\\x01\\xfe\\xff', \
         'coords': [(1, -1), (2147483647, -2147483648)], 'tags': {'off': None, 'on': True}, \
         'shapes': ['Dot', {'Circle': 0.5}, {'Rect': {'w': 2, 'h': 3}}]}"
    );
    for (proto, line) in lines[1..].iter().enumerate() {
        let back: Msg =
            pickle_decode(&unhex(line)).unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
        assert_eq!(back, msg, "protocol {proto}");
    }
}

/// CPython's own test corpus: `DATA0..DATA4` hold a `complex` and a class instance (refused,
/// naming it), `DATA_SET*` are sets written as `set([...])`; and every pickle CPython's
/// `AbstractUnpickleTests` says must fail to unpickle must fail here too.
#[test]
fn cpython_pickletester_corpus() {
    let script = r#"
import io, unittest
import test.pickletester as pt
for name in ('DATA0', 'DATA1', 'DATA2', 'DATA3', 'DATA4', 'DATA_SET', 'DATA_SET2',
             'DATA_XRANGE', 'DATA_COOKIE', 'DATA_UEERR'):
    print(name, getattr(pt, name).hex())
bad = []
class Harvest(pt.AbstractUnpickleTests, unittest.TestCase):
    def check_unpickling_error(self, errors, data):
        bad.append(bytes(data))
    truncated_errors = bad_stack_errors = bad_mark_errors = ()
suite = unittest.TestSuite(Harvest(n) for n in dir(Harvest) if n.startswith('test_'))
unittest.TextTestRunner(stream=io.StringIO()).run(suite)
for b in bad:
    print('BAD', b.hex())
"#;
    let Some(lines) = run_python(script, b"") else { return };
    let mut bad = 0;
    for line in &lines {
        let (name, p) = line.split_once(' ').unwrap();
        let p = unhex(p);
        let r = pickle_decode::<Py>(&p);
        match name {
            "DATA_SET" => assert_eq!(r.unwrap(), seq(vec![i(1), i(2)])),
            "DATA_SET2" => assert_eq!(r.unwrap(), seq(vec![i(3)])),
            "DATA_XRANGE" => assert!(codec_err(r).contains("xrange")),
            "DATA_COOKIE" => assert!(codec_err(r).contains("Cookie")),
            "DATA_UEERR" => assert!(codec_err(r).contains("UnicodeEncodeError")),
            "BAD" => {
                bad += 1;
                assert!(r.is_err(), "CPython refuses {p:?}, we decoded {r:?}");
            }
            _ => {
                let e = codec_err(r);
                assert!(e.contains("complex"), "{name}: {e}");
            }
        }
    }
    // The harvest found the corpus (a changed pickletester would make this test vacuous).
    assert!(bad > 100, "only {bad} bad pickles harvested");
}
