//! `ShareableList`: CPython's layout and behaviour (ported from `test_shared_memory_ShareableList_basics`),
//! byte-sized slots, trailing NULs, sharing across processes, and corrupted headers (proptest).

use procshare::{Error, Item, Process, ShareableList, SharedMemory};
use proptest::prelude::*;

mod common;
use common::shareable_list_basics as basics;

#[test]
fn cpython_basics() {
    let sl = ShareableList::new(&basics()).unwrap();
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
    assert_eq!(sl.len(), 7);
    assert_eq!(sl.to_vec().unwrap(), basics());
    assert_eq!(sl.index(&Item::Str("howdy".into())), Some(0));
    assert_eq!(sl.index(&Item::Str("100".into())), None);
    assert_eq!(sl.index(&Item::Int(100)), Some(3));

    sl.set(3, Item::Int(42)).unwrap();
    assert_eq!(sl.count(&Item::Int(42)), 2);
    assert_eq!(sl.count(&Item::Bytes(b"HoWdY".to_vec())), 1);
    assert_eq!(sl.count(&Item::Bytes(b"adios".to_vec())), 0);

    // A str into the old None slot; types may change.
    sl.set(4, Item::Str("some".into())).unwrap();
    assert_eq!(sl.format().unwrap(), "8s8sdq8sxxxxxxx?q");
    assert_eq!(sl.get(4).unwrap(), Item::Str("some".into()));
    sl.set(2, Item::Int(1)).unwrap();
    assert_eq!(sl.get(2).unwrap(), Item::Int(1));

    // Exactly the slot size fits, one more byte does not, and the list is unchanged.
    sl.set(0, Item::Str("encodés".into())).unwrap(); // 8 UTF-8 bytes
    assert_eq!(sl.get(0).unwrap(), Item::Str("encodés".into()));
    assert_eq!(sl.get(1).unwrap(), Item::Bytes(b"HoWdY".to_vec()), "neighbour untouched");
    let e = sl.set(0, Item::Str("encodées".into())).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("exceeds available storage")));
    assert_eq!(sl.get(0).unwrap(), Item::Str("encodés".into()));

    assert!(matches!(sl.get(7), Err(Error::InvalidArgument(_))));
    assert!(matches!(sl.set(7, Item::None), Err(Error::InvalidArgument(_))));

    // Attach: writes are visible both ways.
    let other = ShareableList::open(sl.name()).unwrap();
    other.set(6, Item::Float(1.5)).unwrap();
    assert_eq!(sl.get(6).unwrap(), Item::Float(1.5));
    assert_eq!(other.shm().name(), sl.shm().name());
    sl.shm().unlink().unwrap();
}

#[test]
fn empty_list() {
    let sl = ShareableList::new(&[]).unwrap();
    assert_eq!(sl.len(), 0);
    assert!(sl.is_empty());
    assert_eq!(sl.format().unwrap(), "");
    assert_eq!(sl.count(&Item::None), 0);
    assert_eq!(sl.index(&Item::None), None);
    assert_eq!(ShareableList::open(sl.name()).unwrap().len(), 0);
    sl.shm().unlink().unwrap();
}

#[test]
fn multibyte_text_is_sized_in_bytes() {
    // 4 characters, 16 bytes: CPython would give it an 8-byte slot and cut it.
    let text = "😀😀😀😀";
    let sl = ShareableList::new(&[Item::Str(text.into()), Item::Str("ünïcödé".into())]).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Str(text.into()));
    assert_eq!(sl.get(1).unwrap(), Item::Str("ünïcödé".into()));
    assert_eq!(sl.format().unwrap(), "24s16s");
    sl.shm().unlink().unwrap();
}

#[test]
fn trailing_nuls_are_kept() {
    let sl =
        ShareableList::new(&[Item::Bytes(b"ab\0\0".to_vec()), Item::Str("x\0".into())]).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Bytes(b"ab\0\0".to_vec()));
    assert_eq!(sl.get(1).unwrap(), Item::Str("x\0".into()));
    sl.set(0, Item::Bytes(b"\0\0\0\0\0\0\0\0".to_vec())).unwrap(); // a full slot of NULs
    assert_eq!(sl.get(0).unwrap(), Item::Bytes(vec![0; 8]));
    sl.set(0, Item::Bytes(b"plain".to_vec())).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Bytes(b"plain".to_vec()));
    assert_eq!(sl.format().unwrap(), "8s2sx");
    sl.shm().unlink().unwrap();
}

#[test]
fn extreme_numbers_round_trip() {
    let items =
        [Item::Int(i64::MIN), Item::Int(i64::MAX), Item::Float(f64::INFINITY), Item::Bool(false)];
    let sl = ShareableList::new(&items).unwrap();
    assert_eq!(sl.to_vec().unwrap(), items);
    sl.set(2, Item::Float(f64::NAN)).unwrap();
    assert!(matches!(sl.get(2).unwrap(), Item::Float(f) if f.is_nan()));
    sl.shm().unlink().unwrap();
}

#[test]
fn shared_with_children_by_handle_and_by_name() {
    let sl = ShareableList::new(&[Item::Int(0), Item::Str("........".into())]).unwrap();
    let mut kids = Vec::new();
    for k in 0..3i64 {
        let arg = (sl.clone(), sl.name().to_owned(), k);
        kids.push(
            Process::spawn(arg, |(sl, name, k): (ShareableList, String, i64)| {
                let by_name = ShareableList::open(&name).unwrap();
                assert_eq!(by_name.len(), 2);
                if k == 0 {
                    sl.set(1, Item::Str("child".into())).unwrap();
                }
                // Each child sets a distinct bit pattern in turn; the last write wins.
                by_name.set(0, Item::Int(k + 1)).unwrap();
            })
            .unwrap(),
        );
    }
    for mut k in kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert!(matches!(sl.get(0).unwrap(), Item::Int(1..=3)));
    assert_eq!(sl.get(1).unwrap(), Item::Str("child".into()));
    sl.shm().unlink().unwrap();
}

#[test]
fn not_a_list_is_an_error() {
    let shm = SharedMemory::create(4).unwrap();
    assert!(matches!(ShareableList::open(shm.name()), Err(Error::InvalidArgument(_))));
    shm.unlink().unwrap();
    let shm = SharedMemory::create(64).unwrap();
    shm.write(0, &i64::MAX.to_ne_bytes()).unwrap();
    assert!(matches!(ShareableList::open(shm.name()), Err(Error::InvalidArgument(_))));
    shm.write(0, &(-1i64).to_ne_bytes()).unwrap();
    assert!(matches!(ShareableList::open(shm.name()), Err(Error::InvalidArgument(_))));
    shm.unlink().unwrap();
    assert!(matches!(ShareableList::open("psm_nosuchlist"), Err(Error::NotFound(_))));
}

fn exercise(sl: &ShareableList) {
    let _ = sl.format();
    let _ = sl.count(&Item::Int(1));
    let _ = sl.index(&Item::Str("x".into()));
    for i in 0..sl.len().min(64) + 1 {
        let _ = sl.get(i);
        let _ = sl.set(i, Item::Str("abc".into()));
        let _ = sl.get(i);
        let _ = sl.set(i, Item::Float(2.0));
    }
    let _ = format!("{sl:?}");
}

fn arb_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        Just(Item::None),
        any::<bool>().prop_map(Item::Bool),
        any::<i64>().prop_map(Item::Int),
        any::<f64>().prop_map(Item::Float),
        ".{0,12}".prop_map(Item::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Item::Bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1..512), n in 0i64..8) {
        let shm = SharedMemory::create(bytes.len().max(8)).unwrap();
        shm.write(0, &bytes).unwrap();
        if bytes.len() >= 8 && n > 0 {
            shm.write(0, &n.to_ne_bytes()).unwrap(); // a plausible length, random rest
        }
        if let Ok(sl) = ShareableList::open(shm.name()) {
            exercise(&sl);
        }
        shm.unlink().unwrap();
    }

    #[test]
    fn corrupted_lists_never_panic(
        items in proptest::collection::vec(arb_item(), 0..6),
        hits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let sl = ShareableList::new(&items).unwrap();
        let got = sl.to_vec().unwrap();
        for (a, b) in got.iter().zip(&items) {
            match (a, b) {
                (Item::Float(x), Item::Float(y)) if x.is_nan() => prop_assert!(y.is_nan()),
                _ => prop_assert_eq!(a, b),
            }
        }
        let size = sl.shm().size();
        for (at, byte) in hits {
            sl.shm().write(at.index(size), &[byte]).unwrap();
        }
        exercise(&sl); // stale cached header over corrupted formats/codes
        if let Ok(again) = ShareableList::open(sl.name()) {
            exercise(&again);
        }
        sl.shm().unlink().unwrap();
    }
}
