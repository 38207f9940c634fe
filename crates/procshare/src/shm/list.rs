//! `ShareableList`: Python's `multiprocessing.shared_memory.ShareableList`, in CPython's exact
//! byte layout, so either side reads and writes the other's lists.
//!
//! ```text
//!  0        8              (N+2)*8                      +offsets[N]      +8N
//!  +--------+--------------+----------------------------+---------------+-----------+
//!  | N: i64 | offsets[N+1] | item data (slots)          | formats 8s*N  | codes b*N |
//!  +--------+--------------+----------------------------+---------------+-----------+
//! ```
//! All integers native-endian (little on the machines we run). `offsets` are relative to the
//! data start, `offsets[0] = 0`, slot `i` is `offsets[i]..offsets[i+1]`. A format is a
//! NUL-padded `struct` format: `q` (int), `d` (float), `xxxxxxx?` (bool), `xxxxxx?x` (None),
//! `<n>s` (str/bytes); a code says how to rebuild the value: 0 number/bool, 1 str, 2 bytes,
//! 3 None.
//!
//! Where procshare differs from CPython's own writer (both read each other's lists):
//! * a str/bytes slot is sized from the **UTF-8 byte length** (`8 * (bytes/8 + 1)`), so
//!   multi-byte text is never cut (CPython sizes by characters: gh-145261);
//! * a value too big for its slot is `Err(InvalidArgument)`, never truncated;
//! * trailing NUL bytes are kept: a value ending in NUL is written with the format `<len>sx`
//!   (its exact length, then a pad byte). CPython's reader unpacks that format fine but strips
//!   the NULs as it always does (gh-106939, gh-96779); CPython writing that slot again resets the
//!   format to its usual `<slot>s`. Values of a million bytes or more that end in NUL do not fit
//!   the 8-character format field and are refused.
//!
//! Everything is read from shared memory another process may corrupt, so every format, code,
//! offset and length is checked; a bad one is an `Err`, never a panic or an out-of-bounds read.
//! The header (`N`, offsets) is read and checked once, at `open`, as CPython does.
//!
//! Crash table: there is no lock, as in CPython. `set` writes the value's bytes, then the
//! slot's format, then its type code; a process killed in between leaves the slot mixed.
//! Nothing outside the slot is touched. Guard lists that are written concurrently with a `Lock`.
//! | killed inside `set` ...             | leaves                          | repaired by | point |
//! |-------------------------------------|---------------------------------|-------------|-------|
//! | after the bytes, before the format  | the new bytes read with the old format and code: a value of the old type (a str/bytes value with invalid UTF-8 reads as `Err`) | nobody (no lock, as in CPython) | `list.value_written` |
//! | after the format, before the code   | the new bytes and format with the old code: a value or `Err`, never a panic | nobody | `list.format_written` |
//!
//! Fork vs spawn: as [`SharedMemory`]; a list passed as a `Process` argument travels as its
//! segment's descriptor and the child re-reads and re-checks the header.

use crate::error::{Error, Result};
use crate::shm::SharedMemory;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One value of a [`ShareableList`]: the types CPython's `ShareableList` stores.
///
/// ```
/// use procshare::Item;
/// let items = [Item::from(1), Item::from("howdy"), Item::None, Item::from(2.5)];
/// assert_eq!(items[1], Item::Str("howdy".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (64-bit signed, as CPython's list stores it).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str` (UTF-8).
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
}

impl Item {
    /// Python's `==`: numbers (and bools) compare by value across types (`1 == 1.0 == True`);
    /// `str` never equals `bytes`.
    fn py_eq(&self, other: &Item) -> bool {
        fn num(i: &Item) -> Option<f64> {
            match *i {
                Item::Bool(b) => Some(b as i64 as f64),
                Item::Int(n) => Some(n as f64),
                Item::Float(f) => Some(f),
                _ => None,
            }
        }
        match (self, other) {
            (Item::Int(a), Item::Int(b)) => a == b,
            (Item::Int(a), Item::Bool(b)) | (Item::Bool(b), Item::Int(a)) => *a == *b as i64,
            _ => match (num(self), num(other)) {
                (Some(a), Some(b)) => a == b,
                _ => self == other,
            },
        }
    }
}

impl From<i64> for Item {
    fn from(v: i64) -> Item {
        Item::Int(v)
    }
}
impl From<i32> for Item {
    fn from(v: i32) -> Item {
        Item::Int(v.into())
    }
}
impl From<f64> for Item {
    fn from(v: f64) -> Item {
        Item::Float(v)
    }
}
impl From<bool> for Item {
    fn from(v: bool) -> Item {
        Item::Bool(v)
    }
}
impl From<&str> for Item {
    fn from(v: &str) -> Item {
        Item::Str(v.to_owned())
    }
}
impl From<String> for Item {
    fn from(v: String) -> Item {
        Item::Str(v)
    }
}
impl From<&[u8]> for Item {
    fn from(v: &[u8]) -> Item {
        Item::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Item {
        Item::Bytes(v)
    }
}
impl From<()> for Item {
    fn from(_: ()) -> Item {
        Item::None
    }
}

const CODE_PLAIN: i8 = 0;
const CODE_STR: i8 = 1;
const CODE_BYTES: i8 = 2;
const CODE_NONE: i8 = 3;
const FMT_INT: &[u8] = b"q";
const FMT_FLOAT: &[u8] = b"d";
const FMT_BOOL: &[u8] = b"xxxxxxx?";
/// CPython's limit: a slot's `<n>s` format must fit in 8 characters.
const MAX_SLOT: usize = 9_999_999;

/// A fixed-length list in shared memory, laid out as CPython's `ShareableList`.
///
/// ```
/// use procshare::{Item, ShareableList};
///
/// let sl = ShareableList::new(&["howdy".into(), Item::Bytes(b"HoWdY".to_vec()), (-273.154).into(),
///                               100.into(), Item::None, true.into(), 42.into()])?;
/// // Python: ShareableList(name=sl.name()) sees the same list.
/// sl.set(3, Item::Int(42))?;
/// assert_eq!(sl.count(&Item::Int(42)), 2);
/// assert_eq!(sl.get(0)?, Item::Str("howdy".into()));
/// assert!(sl.set(0, "too long for the slot".into()).is_err());
/// # sl.shm().unlink()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone)]
pub struct ShareableList {
    shm: SharedMemory,
    len: usize,
    /// `N+1` slot bounds relative to `data_start`, checked at open (non-decreasing, in bounds).
    offsets: Vec<usize>,
}

impl std::fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<_> = (0..self.len).map(|i| self.get(i)).collect();
        write!(f, "ShareableList({items:?}, name={:?})", self.shm.name())
    }
}

/// The bytes a str/bytes value is stored as.
fn encoded(item: &Item) -> Option<&[u8]> {
    match item {
        Item::Str(s) => Some(s.as_bytes()),
        Item::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The slot size CPython would give a str/bytes value — but counted in bytes.
fn slot_size(item: &Item) -> Result<usize> {
    let n = match encoded(item) {
        Some(b) => 8 * (b.len() / 8 + 1),
        None => 8,
    };
    if n > MAX_SLOT {
        return Err(Error::invalid(format!(
            "a ShareableList item must be under {MAX_SLOT} bytes (this one has {})",
            n - 8
        )));
    }
    Ok(n)
}

impl ShareableList {
    /// A new list holding `items`, in a fresh segment. Each slot's size is fixed here: a later
    /// str/bytes value must fit in it.
    ///
    /// ```
    /// let sl = procshare::ShareableList::new(&[1.into(), "é".into()])?;
    /// assert_eq!(sl.len(), 2);
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn new(items: &[Item]) -> Result<ShareableList> {
        Self::build(None, items)
    }

    /// Like [`new`](Self::new) but in a segment called `name` (`Err(AlreadyExists)` if taken),
    /// as Python's `ShareableList(seq, name=...)`.
    ///
    /// ```
    /// # let name = format!("psm_ldoc{}", std::process::id());
    /// let sl = procshare::ShareableList::create_named(&name, &[7.into()])?;
    /// assert_eq!(sl.name(), name);
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_named(name: &str, items: &[Item]) -> Result<ShareableList> {
        Self::build(Some(name), items)
    }

    fn build(name: Option<&str>, items: &[Item]) -> Result<ShareableList> {
        let n = items.len();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        let mut data = 0usize;
        for item in items {
            data = data
                .checked_add(slot_size(item)?)
                .ok_or_else(|| Error::invalid("ShareableList too large"))?;
            offsets.push(data);
        }
        let total = (n + 2)
            .checked_mul(8)
            .and_then(|h| h.checked_add(data))
            .and_then(|t| t.checked_add(n.checked_mul(9)?))
            .ok_or_else(|| Error::invalid("ShareableList too large"))?;
        // Every value must be encodable before anything is created.
        for item in items {
            format_for(item, 0)?;
        }
        let shm = match name {
            Some(name) => SharedMemory::create_named(name, total)?,
            None => SharedMemory::create(total)?,
        };
        let mut header = Vec::with_capacity((n + 2) * 8);
        header.extend_from_slice(&(n as i64).to_ne_bytes());
        for &o in &offsets {
            header.extend_from_slice(&(o as i64).to_ne_bytes());
        }
        let list = ShareableList { shm, len: n, offsets };
        let filled = list.shm.write(0, &header).and_then(|()| {
            items.iter().enumerate().try_for_each(|(i, item)| list.set(i, item.clone()))
        });
        if let Err(e) = filled {
            let _ = list.shm.unlink();
            return Err(e);
        }
        Ok(list)
    }

    /// Opens the list in segment `name` (made here or by Python); `Err(NotFound)` if there is
    /// no such segment, `Err(InvalidArgument)` if its header is not a valid list.
    ///
    /// ```
    /// let a = procshare::ShareableList::new(&["x".into()])?;
    /// let b = procshare::ShareableList::open(a.name())?;
    /// b.set(0, "y".into())?;
    /// assert_eq!(a.get(0)?, procshare::Item::Str("y".into()));
    /// # a.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<ShareableList> {
        Self::from_shm(SharedMemory::open(name)?)
    }

    /// Reads and checks the header of a list in `shm`.
    pub(crate) fn from_shm(shm: SharedMemory) -> Result<ShareableList> {
        let (len, offsets) = parse_header(shm.size(), |at| read_i64(&shm, at))?;
        Ok(ShareableList { shm, len, offsets })
    }

    /// The number of items (fixed at creation).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn data_start(&self) -> usize {
        (self.len + 2) * 8
    }

    fn formats_at(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_at(&self) -> usize {
        self.formats_at() + 8 * self.len
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i < self.len {
            Ok(())
        } else {
            Err(Error::invalid(format!("index {i} out of range for a list of {}", self.len)))
        }
    }

    /// Slot `i`: (absolute offset, length).
    fn slot(&self, i: usize) -> (usize, usize) {
        (self.data_start() + self.offsets[i], self.offsets[i + 1] - self.offsets[i])
    }

    /// Item `i`; `Err(InvalidArgument)` out of range or if the slot holds something CPython's
    /// list cannot (a corrupted segment).
    ///
    /// ```
    /// let sl = procshare::ShareableList::new(&[procshare::Item::Float(0.5)])?;
    /// assert_eq!(sl.get(0)?, procshare::Item::Float(0.5));
    /// assert!(sl.get(1).is_err());
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Result<Item> {
        self.check_index(i)?;
        let mut fmt = [0u8; 8];
        self.shm.read(self.formats_at() + 8 * i, &mut fmt)?;
        let mut code = [0u8; 1];
        self.shm.read(self.codes_at() + i, &mut code)?;
        let code = code[0] as i8;
        let fmt = trim_nul(&fmt);
        let (at, slot) = self.slot(i);
        let bad = || Error::invalid(format!("ShareableList item {i} is corrupted"));
        match code {
            CODE_NONE => Ok(Item::None),
            CODE_PLAIN => {
                if slot < 8 {
                    return Err(bad());
                }
                let mut v = [0u8; 8];
                self.shm.read(at, &mut v)?;
                match fmt {
                    FMT_INT => Ok(Item::Int(i64::from_ne_bytes(v))),
                    FMT_FLOAT => Ok(Item::Float(f64::from_ne_bytes(v))),
                    FMT_BOOL => Ok(Item::Bool(v[7] != 0)),
                    _ => Err(bad()),
                }
            }
            CODE_STR | CODE_BYTES => {
                let (n, exact) = parse_str_format(fmt).ok_or_else(bad)?;
                if n > slot {
                    return Err(bad());
                }
                let mut v = vec![0u8; n];
                self.shm.read(at, &mut v)?;
                if !exact {
                    let keep = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                    v.truncate(keep);
                }
                if code == CODE_BYTES {
                    Ok(Item::Bytes(v))
                } else {
                    String::from_utf8(v)
                        .map(Item::Str)
                        .map_err(|_| Error::invalid(format!("ShareableList item {i} is not UTF-8")))
                }
            }
            _ => Err(bad()),
        }
    }

    /// Stores `item` at `i`. Types may change (as in Python); a str/bytes value must fit the
    /// slot's size fixed at creation, else `Err(InvalidArgument)` and the list is unchanged.
    ///
    /// ```
    /// use procshare::Item;
    /// let sl = procshare::ShareableList::new(&[Item::None])?;
    /// sl.set(0, Item::Str("12345678".into()))?;          // 8 bytes fit an 8-byte slot
    /// assert!(sl.set(0, Item::Str("123456789".into())).is_err());
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn set(&self, i: usize, item: Item) -> Result<()> {
        self.check_index(i)?;
        let (at, slot) = self.slot(i);
        let (fmt, code) = format_for(&item, slot)?;
        let mut buf = [0u8; 8];
        match &item {
            Item::None => {}
            Item::Bool(b) => buf[7] = *b as u8,
            Item::Int(n) => buf = n.to_ne_bytes(),
            Item::Float(f) => buf = f.to_ne_bytes(),
            Item::Str(_) | Item::Bytes(_) => {}
        }
        let mut field = [0u8; 8];
        field[..fmt.len()].copy_from_slice(fmt.as_bytes());
        match encoded(&item) {
            Some(b) => {
                self.shm.write(at, b)?;
                // CPython pads the rest of the slot with NULs too.
                const ZEROS: [u8; 64] = [0; 64];
                let mut pos = at + b.len();
                while pos < at + slot {
                    let k = (at + slot - pos).min(ZEROS.len());
                    self.shm.write(pos, &ZEROS[..k])?;
                    pos += k;
                }
            }
            None => {
                if slot < 8 {
                    return Err(Error::invalid(format!("ShareableList slot {i} is corrupted")));
                }
                self.shm.write(at, &buf)?;
            }
        }
        crate::crash::crash_point!("list.value_written");
        self.shm.write(self.formats_at() + 8 * i, &field)?;
        crate::crash::crash_point!("list.format_written");
        self.shm.write(self.codes_at() + i, &[code as u8])?;
        Ok(())
    }

    /// How many items equal `item` (Python's `==`: `Int(1)`, `Float(1.0)` and `Bool(true)` are
    /// equal). Unreadable items count as unequal.
    ///
    /// ```
    /// let sl = procshare::ShareableList::new(&[1.into(), 2.into(), 1.into()])?;
    /// assert_eq!(sl.count(&1.into()), 2);
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn count(&self, item: &Item) -> usize {
        (0..self.len).filter(|&i| self.get(i).is_ok_and(|v| v.py_eq(item))).count()
    }

    /// The first index holding an item equal to `item` (as in [`count`](Self::count)).
    ///
    /// ```
    /// let sl = procshare::ShareableList::new(&["a".into(), 100.into()])?;
    /// assert_eq!(sl.index(&100.into()), Some(1));
    /// assert_eq!(sl.index(&"100".into()), None);
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn index(&self, item: &Item) -> Option<usize> {
        (0..self.len).find(|&i| self.get(i).is_ok_and(|v| v.py_eq(item)))
    }

    /// The name of the segment (what Python's `ShareableList(name=...)` opens).
    pub fn name(&self) -> &str {
        self.shm.name()
    }

    /// The segment holding the list (Python's `.shm`).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Every item, in order (Python's `list(sl)`).
    ///
    /// ```
    /// let sl = procshare::ShareableList::new(&[1.into(), "b".into()])?;
    /// assert_eq!(sl.to_vec()?, vec![1.into(), "b".into()]);
    /// # sl.shm().unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// The concatenated `struct` formats of the items (Python's `.format`).
    pub fn format(&self) -> Result<String> {
        let mut out = String::new();
        for i in 0..self.len {
            let mut fmt = [0u8; 8];
            self.shm.read(self.formats_at() + 8 * i, &mut fmt)?;
            out.push_str(
                std::str::from_utf8(trim_nul(&fmt))
                    .map_err(|_| Error::invalid("ShareableList format is not text"))?,
            );
        }
        Ok(out)
    }
}

/// The format string and code for `item` in a slot of `slot` bytes (`slot` 0: only check that
/// the value is storable at all).
fn format_for(item: &Item, slot: usize) -> Result<(String, i8)> {
    let (fmt, code) = match item {
        Item::None => ("xxxxxx?x".to_owned(), CODE_NONE),
        Item::Bool(_) => ("xxxxxxx?".to_owned(), CODE_PLAIN),
        Item::Int(_) => ("q".to_owned(), CODE_PLAIN),
        Item::Float(_) => ("d".to_owned(), CODE_PLAIN),
        Item::Str(_) | Item::Bytes(_) => {
            let b = encoded(item).unwrap_or_default();
            let code = if matches!(item, Item::Str(_)) { CODE_STR } else { CODE_BYTES };
            if slot != 0 && b.len() > slot {
                return Err(Error::invalid(format!(
                    "bytes/str item exceeds available storage ({} bytes into a {slot}-byte slot)",
                    b.len()
                )));
            }
            if b.last() == Some(&0) {
                let f = format!("{}sx", b.len());
                if f.len() > 8 {
                    return Err(Error::invalid(
                        "a str/bytes value of 1 MB or more must not end in a NUL byte",
                    ));
                }
                (f, code)
            } else {
                (format!("{}s", if slot == 0 { b.len() } else { slot }), code)
            }
        }
    };
    Ok((fmt, code))
}

/// `<n>s` → (n, false); `<n>sx` → (n, true, procshare's exact-length form).
fn parse_str_format(fmt: &[u8]) -> Option<(usize, bool)> {
    let (digits, exact) = match fmt {
        [d @ .., b's'] => (d, false),
        [d @ .., b's', b'x'] => (d, true),
        _ => return None,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, exact))
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    &b[..end]
}

/// Checks the header (`N`, offsets) of a list in a segment of `size` bytes; `read(at)` is the
/// i64 at byte `at`. Returns `N` and the offsets. Separate from `from_shm` so the fuzz target
/// can drive it over arbitrary bytes.
pub(crate) fn parse_header(
    size: usize,
    read: impl Fn(usize) -> Result<i64>,
) -> Result<(usize, Vec<usize>)> {
    let bad = |what: &str| Error::invalid(format!("not a valid ShareableList: {what}"));
    let n = read(0).map_err(|_| bad("too small for its header"))?;
    let n = usize::try_from(n).map_err(|_| bad("negative length"))?;
    let data_start = n
        .checked_add(2)
        .and_then(|k| k.checked_mul(8))
        .filter(|&d| d <= size)
        .ok_or_else(|| bad("length larger than the segment"))?;
    let mut offsets = Vec::with_capacity(n + 1);
    let mut prev = 0usize;
    for i in 0..=n {
        let o = read(8 + 8 * i)?;
        let o = usize::try_from(o).map_err(|_| bad("negative offset"))?;
        if o < prev || (i == 0 && o != 0) {
            return Err(bad("offsets out of order"));
        }
        prev = o;
        offsets.push(o);
    }
    let end = data_start
        .checked_add(prev)
        .and_then(|e| e.checked_add(n.checked_mul(9)?))
        .filter(|&e| e <= size)
        .ok_or_else(|| bad("items extend past the segment"))?;
    debug_assert!(end <= size);
    Ok((n, offsets))
}

fn read_i64(shm: &SharedMemory, at: usize) -> Result<i64> {
    let mut v = [0u8; 8];
    shm.read(at, &mut v)?;
    Ok(i64::from_ne_bytes(v))
}

impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.shm.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let shm = SharedMemory::deserialize(d)?;
        ShareableList::from_shm(shm).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(parse_str_format(b"8s"), Some((8, false)));
        assert_eq!(parse_str_format(b"5sx"), Some((5, true)));
        assert_eq!(parse_str_format(b"s"), None);
        assert_eq!(parse_str_format(b"-1s"), None);
        assert_eq!(parse_str_format(b"q"), None);
    }

    #[test]
    fn python_equality() {
        assert!(Item::Int(1).py_eq(&Item::Bool(true)));
        assert!(Item::Float(1.0).py_eq(&Item::Int(1)));
        assert!(!Item::Str("a".into()).py_eq(&Item::Bytes(b"a".to_vec())));
        assert!(Item::Int(i64::MAX).py_eq(&Item::Int(i64::MAX)));
        assert!(!Item::Int(i64::MAX).py_eq(&Item::Int(i64::MAX - 1)));
    }
}
