//! The items that flow through the torture run's queues and pipe, and the ids that name them.
//!
//! ```text
//! item:  0       4      5       8        16        24         32         40
//!        +-------+------+-------+--------+---------+----------+----------+------------------+
//!        | magic | flow | 0 0 0 | id     | len     | sum      | hdr_sum  | payload (len B)  |
//!        +-------+------+-------+--------+---------+----------+----------+------------------+
//! id:    { slot:8 | incarnation:18 | seq:36 }  (seq starts at 1; id 0 is the end-of-run sentinel)
//! ```
//! The payload is a function of the id, `sum` a hash of the payload and `hdr_sum` a hash of the
//! header fields, so a torn, mixed or truncated item fails [`check`] whatever part of it broke.

/// "pTOR": marks a torture item.
const MAGIC: u32 = 0x524f_5470;
pub const HEADER: usize = 40;

const SLOT_SHIFT: u32 = 54;
const INC_SHIFT: u32 = 36;
const INC_MASK: u64 = (1 << 18) - 1;
const SEQ_MASK: u64 = (1 << 36) - 1;
/// Bits of a consumer's record word above the id (see `worker.rs`).
pub const ID_MASK: u64 = (1 << 62) - 1;

pub fn pack(slot: usize, inc: u32, seq: u64) -> u64 {
    ((slot as u64 & 0xff) << SLOT_SHIFT) | ((inc as u64 & INC_MASK) << INC_SHIFT) | (seq & SEQ_MASK)
}

/// `(slot, incarnation, seq)` of an id.
pub fn unpack(id: u64) -> (usize, u32, u64) {
    let id = id & ID_MASK;
    (((id >> SLOT_SHIFT) & 0xff) as usize, ((id >> INC_SHIFT) & INC_MASK) as u32, id & SEQ_MASK)
}

/// The largest incarnation an id can name; the controller stops respawning a slot past it.
pub const MAX_INC: u32 = INC_MASK as u32;

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: every input bit reaches every output bit.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of `data`, eight bytes a step (fast enough for multi-MiB items).
pub fn hash(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ data.len() as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// Fills `out` with the bytes that belong to `key` (a pure function of `key` and the offset).
pub fn fill(key: u64, out: &mut [u8]) {
    let mut chunks = out.chunks_exact_mut(8);
    let mut k = 0u64;
    for c in &mut chunks {
        c.copy_from_slice(&mix(key ^ k.wrapping_mul(0x2545_f491_4f6c_dd1d)).to_le_bytes());
        k += 1;
    }
    let tail = mix(key ^ k.wrapping_mul(0x2545_f491_4f6c_dd1d)).to_le_bytes();
    let rem = chunks.into_remainder();
    let n = rem.len();
    rem.copy_from_slice(&tail[..n]);
}

fn header_sum(flow: u8, id: u64, len: u64, sum: u64) -> u64 {
    mix(mix(mix(id ^ ((flow as u64) << 56)) ^ len) ^ sum)
}

/// A complete item of `len` payload bytes for `flow`.
pub fn make(flow: u8, id: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; HEADER + len];
    fill(id, &mut v[HEADER..]);
    let sum = hash(&v[HEADER..]);
    v[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    v[4] = flow;
    v[8..16].copy_from_slice(&id.to_le_bytes());
    v[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    v[24..32].copy_from_slice(&sum.to_le_bytes());
    v[32..40].copy_from_slice(&header_sum(flow, id, len as u64, sum).to_le_bytes());
    v
}

/// The end-of-run sentinel: wakes a consumer blocked in a call that has no timeout.
pub fn sentinel(flow: u8) -> Vec<u8> {
    make(flow, 0, 0)
}

/// The controller's end-of-drain marker (a sentinel with one payload byte).
pub fn marker(flow: u8) -> Vec<u8> {
    make(flow, 0, 1)
}

fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The id an item's header claims, unverified (`None` if too short to have one).
pub fn claimed_id(b: &[u8]) -> Option<u64> {
    (b.len() >= 16).then(|| word(b, 8))
}

/// The id of a whole, untorn item of `flow` (0 for a sentinel), or what is wrong with it.
pub fn check(flow: u8, b: &[u8]) -> Result<u64, String> {
    if b.len() < HEADER {
        return Err(format!("item of {} bytes is shorter than its {HEADER}-byte header", b.len()));
    }
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if magic != MAGIC || b[4] != flow || b[5..8] != [0, 0, 0] {
        return Err(format!("bad item header {:02x?} (flow {flow})", &b[..8]));
    }
    let (id, len, sum, hsum) = (word(b, 8), word(b, 16), word(b, 24), word(b, 32));
    if header_sum(flow, id, len, sum) != hsum {
        return Err(format!("torn header: id {id:#x} len {len}"));
    }
    if len != (b.len() - HEADER) as u64 {
        return Err(format!("item {id:#x}: header says {len} bytes, got {}", b.len() - HEADER));
    }
    if hash(&b[HEADER..]) != sum {
        return Err(format!("item {id:#x} ({len} bytes): payload checksum mismatch (torn)"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let id = pack(7, 123, 456);
        assert_eq!(unpack(id), (7, 123, 456));
        for len in [0, 1, 7, 8, 9, 1000] {
            let item = make(3, id, len);
            assert_eq!(check(3, &item), Ok(id));
            assert!(check(2, &item).is_err(), "wrong flow accepted");
            for i in 0..item.len() {
                let mut bad = item.clone();
                bad[i] ^= 0x10;
                assert!(check(3, &bad).is_err(), "flip at {i} of {len} not caught");
            }
            assert!(check(3, &item[..item.len().saturating_sub(1)]).is_err() || len == 0);
        }
        assert_eq!(check(1, &sentinel(1)), Ok(0));
    }

    #[test]
    fn two_items_of_one_length_differ() {
        let a = make(0, pack(1, 1, 1), 64);
        let b = make(0, pack(1, 1, 2), 64);
        let mut mixed = a.clone();
        mixed[HEADER + 32..].copy_from_slice(&b[HEADER + 32..]);
        assert!(check(0, &mixed).is_err());
    }
}
