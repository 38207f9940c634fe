//! CPython interop with the machine's `python3`: Python creates a `SharedMemory` and a
//! `ShareableList` of every item type, Rust reads and writes them, Python checks — and the
//! reverse. Skipped (with a note) when `python3` is absent.

use procshare::{Item, Process, ShareableList, SharedMemory};
use std::io::{BufRead, BufReader, Write};
use std::process::Command;

mod common;

fn python() -> bool {
    common::python3("multiprocessing.shared_memory", "the interop test").is_some()
}

const PY_CREATES: &str = r#"
import sys
from multiprocessing import shared_memory as sm
shm = sm.SharedMemory(create=True, size=100)
shm.buf[:5] = b'hello'
sl = sm.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42, 'é', 12345678])
print(shm.name, sl.shm.name, flush=True)
sys.stdin.readline()
try:
    assert bytes(shm.buf[5:10]) == b'world', bytes(shm.buf[:10])
    got = list(sl)
    want = ['HOWDY!', b'by\x01tes', 2.5, -7, False, None, '8bytes!!', b'ab', 'ü']
    assert got == want, got
    assert type(got[4]) is bool and type(got[3]) is int, got
    assert sl.format == '8s8sdqxxxxxxx?xxxxxx?x8s3sx8s', sl.format
    sl[7] = b'longer!'   # Python rewrites our exact-length slot in its own form
    sl[0] = 'py'
    print('OK', flush=True)
except AssertionError as e:
    print('FAIL', e, flush=True)
sys.stdin.readline()
shm.close(); shm.unlink()
sl.shm.close(); sl.shm.unlink()
"#;

#[test]
fn python_creates_rust_reads_and_writes() {
    if !python() {
        return;
    }
    let mut py = common::spawn_python(PY_CREATES);
    let mut to_py = py.stdin.take().unwrap();
    let mut from_py = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    from_py.read_line(&mut line).unwrap();
    let mut names = line.split_whitespace().map(str::to_owned);
    let (shm_name, sl_name) = (names.next().unwrap(), names.next().unwrap());

    let shm = SharedMemory::open(&shm_name).unwrap();
    assert_eq!(shm.size(), 100);
    let mut buf = [0u8; 5];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    shm.write(5, b"world").unwrap();

    let sl = ShareableList::open(&sl_name).unwrap();
    assert_eq!(
        sl.to_vec().unwrap(),
        [common::shareable_list_basics(), vec![Item::Str("é".into()), Item::Int(12345678)]]
            .concat()
    );
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q8sq");
    sl.set(0, Item::Str("HOWDY!".into())).unwrap();
    sl.set(1, Item::Bytes(b"by\x01tes".to_vec())).unwrap();
    sl.set(2, Item::Float(2.5)).unwrap();
    sl.set(3, Item::Int(-7)).unwrap();
    sl.set(4, Item::Bool(false)).unwrap();
    sl.set(5, Item::None).unwrap();
    sl.set(6, Item::Str("8bytes!!".into())).unwrap();
    sl.set(7, Item::Bytes(b"ab\0".to_vec())).unwrap();
    sl.set(8, Item::Str("ü".into())).unwrap();
    assert!(sl.set(8, Item::Str("123456789".into())).is_err());

    // A procshare child that opens Python's segment and exits must not unlink it.
    let mut child = Process::spawn(shm_name.clone(), |name: String| {
        let s = SharedMemory::open(&name).unwrap();
        s.write(99, b"!").unwrap();
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 0);
    procshare::shm::clean(false).unwrap();
    assert!(std::path::Path::new("/dev/shm").join(&shm_name).exists());

    writeln!(to_py).unwrap();
    line.clear();
    from_py.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "OK", "python saw: {line}");
    assert_eq!(sl.get(7).unwrap(), Item::Bytes(b"longer!".to_vec()));
    assert_eq!(sl.get(0).unwrap(), Item::Str("py".into()));
    writeln!(to_py).unwrap();
    assert!(py.wait().unwrap().success());
    assert!(!std::path::Path::new("/dev/shm").join(&shm_name).exists());
}

const PY_OPENS: &str = r#"
import sys
from multiprocessing import shared_memory as sm, resource_tracker
shm_name, sl_name = sys.argv[1], sys.argv[2]
shm = sm.SharedMemory(name=shm_name)
sl = sm.ShareableList(name=sl_name)
# Python 3.11 would unlink what it attached at exit (gh-82300); keep our segments ours.
resource_tracker.unregister(shm._name, 'shared_memory')
resource_tracker.unregister(sl.shm._name, 'shared_memory')
assert shm.size == 40, shm.size
assert bytes(shm.buf[:9]) == b'from rust'
got = list(sl)
want = ['😀😀', b'raw', 1.25, -(2**63), None, True, False, b'z', 'x' * 20, 2**63 - 1]
assert got == want, got
shm.buf[:2] = b'PY'
sl[0] = '😀😀😀😀'[:2] + 'ab'   # 10 bytes into the 16-byte slot
sl[1] = None
sl[2] = 7
sl[3] = 0.5
sl[4] = 'four'
sl[7] = b'zz\x00!'
sl[9] = True
shm.close(); sl.shm.close()
print('OK')
"#;

#[test]
fn rust_creates_python_reads_and_writes() {
    if !python() {
        return;
    }
    let shm = SharedMemory::create(40).unwrap();
    shm.write(0, b"from rust").unwrap();
    let sl = ShareableList::new(&[
        Item::Str("😀😀".into()),
        Item::Bytes(b"raw".to_vec()),
        Item::Float(1.25),
        Item::Int(i64::MIN),
        Item::None,
        Item::Bool(true),
        Item::Bool(false),
        Item::Bytes(b"z\0".to_vec()), // Python's reader strips the NUL
        Item::Str("x".repeat(20)),
        Item::Int(i64::MAX),
    ])
    .unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_OPENS)
        .arg(shm.name())
        .arg(sl.name())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.trim() == "OK", "python: {stdout}\n{stderr}");
    assert!(!stderr.contains("leaked"), "python's tracker complained: {stderr}");

    let mut buf = [0u8; 9];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"PYom rust");
    assert_eq!(
        sl.to_vec().unwrap(),
        vec![
            Item::Str("😀😀ab".into()),
            Item::None,
            Item::Int(7),
            Item::Float(0.5),
            Item::Str("four".into()),
            Item::Bool(true),
            Item::Bool(false),
            Item::Bytes(b"zz\0!".to_vec()),
            Item::Str("x".repeat(20)),
            Item::Bool(true),
        ]
    );
    // Both segments are still there: Python did not unlink them.
    let again = ShareableList::open(sl.name()).unwrap();
    assert_eq!(again.len(), 10);
    shm.unlink().unwrap();
    sl.shm().unlink().unwrap();
}
