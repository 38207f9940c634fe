//! The two serde formats procshare speaks, public so that sibling crates (`procshare-redis`,
//! `procshare-py`) encode items exactly as the local queues do.
//!
//! * **native** — postcard: compact, allocation-free to write, and data-only to read. Used
//!   between Rust processes (`send`/`recv`, queues, process arguments). Decoding hostile bytes
//!   gives `Err(Codec)`; sequence lengths read from the wire only cap pre-allocation (serde's
//!   cautious size hints), so a lying length cannot make us allocate much. postcard has no
//!   nesting limit and decodes by recursion, so [`decode`] counts containers (the `depth` module)
//!   and a value nested deeper than 256 is `Err(Codec)`, not a stack overflow. Nor does it
//!   bound a length against elements that take no bytes (a `Vec<()>` claiming 2^63), so
//!   `decode` also counts those, beyond one per input byte, up to 2^20.
//!   Byte sequences (`Vec<u8>`, `[u8]`, `Box<[u8]>`, inside any value) are written and read in
//!   one copy, not a serde call per byte, on postcard's unchanged wire form (the `fast` module).
//! * **pickle** — for CPython peers (`send_pickle`/`recv_pickle`, `Format::Pickle` queues).
//!   Written by `serde-pickle` (protocol 3); read by our own data-only decoder ([`pickle`]
//!   module docs): protocols 0–5, a pickle that asks to import or call anything is an error,
//!   never executed, and decoding has budgets (size, nesting) so hostile bytes get `Err(Codec)`,
//!   never an abort or a stack overflow.

mod depth;
mod fast;
mod pickle;

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a queue's items are encoded; stored with a named queue and fixed at creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// procshare's native codec (postcard): the fastest, between Rust processes.
    #[default]
    Native,
    /// Python pickles (written with protocol <= 5, read data-only), shared with Python peers.
    Pickle,
}

impl Format {
    /// Appends the encoding of `value` in this format to `buf`.
    pub fn encode_into<T: Serialize + ?Sized>(self, value: &T, buf: &mut Vec<u8>) -> Result<()> {
        match self {
            Format::Native => encode_into(value, buf),
            Format::Pickle => {
                buf.extend_from_slice(&pickle_encode(value)?);
                Ok(())
            }
        }
    }

    /// Decodes one value in this format that fills `bytes` exactly.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        match self {
            Format::Native => decode(bytes),
            Format::Pickle => pickle_decode(bytes),
        }
    }
}

/// Appends the native encoding of `value` to `buf`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    /// Takes everything, at the end of the buffer.
    struct Append<'a>(&'a mut Vec<u8>);
    impl Sink for Append<'_> {
        #[inline]
        fn write(&mut self, data: &[u8]) -> std::result::Result<(), Refused> {
            self.0.extend_from_slice(data);
            Ok(())
        }
    }
    encode_to(value, Append(buf)).map(drop)
}

/// The native encoding of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf)?;
    Ok(buf)
}

/// Where [`encode_to`] puts the bytes it produces: the codec decides what the bytes are, a sink
/// only where they go (a queue's slot, a capped buffer, nowhere at all).
pub(crate) trait Sink {
    /// Takes the next piece of the encoding, or refuses it (no room), which ends the encoding
    /// with `Err(Codec)`.
    fn write(&mut self, data: &[u8]) -> std::result::Result<(), Refused>;
}

/// A [`Sink`]'s refusal of more bytes.
#[derive(Debug)]
pub(crate) struct Refused;

/// postcard's output type over a [`Sink`]; its output is the sink, handed back.
struct ToSink<S>(S);

impl<S: Sink> postcard::ser_flavors::Flavor for ToSink<S> {
    type Output = S;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.try_extend(&[b])
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.write(data).map_err(|Refused| postcard::Error::SerializeBufferFull)
    }

    fn finalize(self) -> postcard::Result<S> {
        Ok(self.0)
    }
}

/// [`encode_to`] with postcard's own error, so that a refusal can be told from a bad value.
#[inline]
fn serialize_to<T: Serialize + ?Sized, S: Sink>(value: &T, sink: S) -> postcard::Result<S> {
    use postcard::ser_flavors::Flavor;
    let mut ser = postcard::Serializer { output: ToSink(sink) };
    value.serialize(fast::Ser(&mut ser))?;
    ser.output.finalize()
}

/// Encodes `value` (native) into `sink` and hands the sink back (to say, e.g., how much of its
/// room is left). A refusal by the sink is `Err(Codec)`; what it took before stays written.
#[inline]
pub(crate) fn encode_to<T: Serialize + ?Sized, S: Sink>(value: &T, sink: S) -> Result<S> {
    serialize_to(value, sink).map_err(|e| Error::Codec(e.to_string()))
}

/// The length of `value`'s native encoding, without writing it anywhere.
#[inline]
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    struct Count(usize);
    impl Sink for Count {
        #[inline]
        fn write(&mut self, data: &[u8]) -> std::result::Result<(), Refused> {
            self.0 += data.len();
            Ok(())
        }
    }
    Ok(encode_to(value, Count(0))?.0)
}

/// Appends the native encoding of `value` to `buf` while `buf` stays within `cap` bytes:
/// `Ok(true)` when it all fit, `Ok(false)` when it would not (`buf` then holds part of it), so a
/// caller tries a small buffer first without encoding a large value whole.
#[inline]
pub(crate) fn encode_capped<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    cap: usize,
) -> Result<bool> {
    struct Capped<'a> {
        buf: &'a mut Vec<u8>,
        cap: usize,
    }
    impl Sink for Capped<'_> {
        #[inline]
        fn write(&mut self, data: &[u8]) -> std::result::Result<(), Refused> {
            if self.buf.len() + data.len() > self.cap {
                return Err(Refused);
            }
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }
    match serialize_to(value, Capped { buf, cap }) {
        Ok(_) => Ok(true),
        Err(postcard::Error::SerializeBufferFull) => Ok(false),
        Err(e) => Err(Error::Codec(e.to_string())),
    }
}

/// How many containers (sequences, maps, enums, options' `Some`, newtype structs; a struct or
/// tuple is a sequence) a native value may nest, like serde_json's 128 but doubled, because a
/// linked type (`struct Node { next: Option<Box<Node>> }`) spends two levels per link. Each level
/// costs postcard and the type's `Deserialize` well under 1 KiB of stack even unoptimised, so
/// 256 levels fit with room in a 2 MiB thread stack, the smallest Rust gives a thread by default.
const NATIVE_MAX_DEPTH: u32 = 256;

/// How many elements that take no bytes (`()`, unit structs, structs of skipped fields) a
/// native value may hold beyond one per input byte: a hostile length must not loop the receiver
/// for ever (`depth` module, `Access::charged`), and an honest value rarely holds more than a
/// few. Decoding a million of them takes a few milliseconds.
const NATIVE_EMPTY_ELEMENTS: u64 = 1 << 20;

/// Decodes one native-encoded value that fills `bytes` exactly. A value nested deeper than 256
/// containers is `Err(Codec)`, never a stack overflow, and so is one with more elements than
/// one per byte plus 2^20 (only elements that take no bytes can be that many).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    depth::start(bytes.len() as u64 + NATIVE_EMPTY_ELEMENTS);
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(depth::Depth::new(&mut de, NATIVE_MAX_DEPTH)).map_err(|e| {
        // postcard keeps no custom error's message, so the flag says which limit it was.
        match depth::take_hit() {
            depth::DEPTH => {
                Error::Codec(format!("native value nested deeper than {NATIVE_MAX_DEPTH} levels"))
            }
            depth::ELEMENTS => Error::Codec(format!(
                "native value of {} bytes claims more than {NATIVE_EMPTY_ELEMENTS} elements \
                 that take no bytes",
                bytes.len()
            )),
            _ => Error::Codec(e.to_string()),
        }
    })?;
    let rest = de.finalize().map_err(|e| Error::Codec(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Codec(format!("{} unexpected bytes after the value", rest.len())));
    }
    Ok(value)
}

/// Pickles `value` (protocol 3, readable by any Python 3).
pub fn pickle_encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    /// serde-pickle wants a sized value; this forwards to an unsized one.
    struct Sized<'a, T: ?std::marker::Sized>(&'a T);
    impl<T: Serialize + ?std::marker::Sized> Serialize for Sized<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            self.0.serialize(s)
        }
    }
    serde_pickle::to_vec(&Sized(value), serde_pickle::SerOptions::new())
        .map_err(|e| Error::Codec(e.to_string()))
}

/// Unpickles one data-only pickle that fills `bytes` exactly (nothing in it is imported or
/// called). Shared references are decoded as copies within a budget of a few times the input
/// size; see [`pickle_decode_limited`].
pub fn pickle_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    pickle_decode_limited(bytes, usize::MAX)
}

/// [`pickle_decode`] with the decoded `str`/`bytes` contents capped at `limit` bytes as well
/// (a connection passes its `max_message_size`). Decoded values and contents are each capped at
/// `EXPANSION` (8) times the input plus 4 KiB, nesting at 256 containers; a pickle over any
/// budget is `Err(Codec)`.
pub fn pickle_decode_limited<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T> {
    pickle::decode(bytes, limit).map_err(Error::Codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_round_trip_and_garbage() {
        let v = (1u32, String::from("héllo"), vec![1.5f64, -2.0]);
        let b = encode(&v).unwrap();
        assert_eq!(decode::<(u32, String, Vec<f64>)>(&b).unwrap(), v);
        assert!(matches!(decode::<(u32, String)>(&[0xff, 0xff, 0xff]), Err(Error::Codec(_))));
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(decode::<(u32, String, Vec<f64>)>(&long), Err(Error::Codec(_))));
    }

    #[test]
    fn lying_length_does_not_allocate() {
        // A Vec<u8> claiming u32::MAX elements, then nothing.
        let b = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode::<Vec<u64>>(&b), Err(Error::Codec(_))));
    }

    #[test]
    fn length_capped_and_sink_encoders_agree_with_encode() {
        let v = (7u64, String::from("a string"), vec![3u8; 300]);
        let whole = encode(&v).unwrap();
        assert_eq!(encoded_len(&v).unwrap(), whole.len());

        let mut buf = Vec::new();
        assert!(encode_capped(&v, &mut buf, whole.len()).unwrap());
        assert_eq!(buf, whole);
        buf.clear();
        assert!(!encode_capped(&v, &mut buf, whole.len() - 1).unwrap());
        assert!(buf.len() < whole.len());

        /// Takes at most `room` bytes, like a reserved slot.
        struct Room(Vec<u8>, usize);
        impl Sink for Room {
            fn write(&mut self, data: &[u8]) -> std::result::Result<(), Refused> {
                if data.len() > self.1 - self.0.len() {
                    return Err(Refused);
                }
                self.0.extend_from_slice(data);
                Ok(())
            }
        }
        assert_eq!(encode_to(&v, Room(Vec::new(), whole.len())).unwrap().0, whole);
        assert!(matches!(encode_to(&v, Room(Vec::new(), 10)), Err(Error::Codec(_))));
    }

    /// Counts the pieces an encoding is handed to a sink in.
    struct Pieces(usize);
    impl Sink for Pieces {
        fn write(&mut self, _: &[u8]) -> std::result::Result<(), Refused> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn byte_sequences_reach_the_sink_in_one_piece() {
        // serde hands postcard a `Vec<u8>` byte by byte: 1 + 64 pieces before the fast path.
        let v = vec![9u8; 64];
        assert_eq!(encode_to(&v, Pieces(0)).unwrap().0, 2);
        assert_eq!(encode_to(&v.clone().into_boxed_slice(), Pieces(0)).unwrap().0, 2);
        assert_eq!(encode_to(&&v[..], Pieces(0)).unwrap().0, 2);
        assert_eq!(encode_to(&(1u8, Some(v.clone())), Pieces(0)).unwrap().0, 4);
        // Other sequences are still written element by element.
        assert_eq!(encode_to(&vec![9u16; 64], Pieces(0)).unwrap().0, 65);
    }

    #[test]
    fn serdes_vec_u8_visitor_and_only_it_is_recognised() {
        use serde::de::{self, Deserialize, Visitor};
        /// Says whether its `deserialize_seq` got the fast path's visitor.
        struct Ask(Option<bool>);
        impl<'de> de::Deserializer<'de> for &mut Ask {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(
                self,
                _: V,
            ) -> std::result::Result<V::Value, Self::Error> {
                Err(de::Error::custom("ask"))
            }
            fn deserialize_seq<V: Visitor<'de>>(
                self,
                _: V,
            ) -> std::result::Result<V::Value, Self::Error> {
                self.0 = Some(fast::is_vec_u8_visitor::<V>());
                Err(de::Error::custom("ask"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct tuple tuple_struct map struct
                enum identifier ignored_any
            }
        }
        fn ask<'de, T: Deserialize<'de>>() -> Option<bool> {
            let mut a = Ask(None);
            let _ = T::deserialize(&mut a);
            a.0
        }
        assert_eq!(ask::<Vec<u8>>(), Some(true));
        assert_eq!(ask::<Box<[u8]>>(), Some(true));
        assert_eq!(ask::<Vec<i8>>(), Some(false));
        assert_eq!(ask::<Vec<u16>>(), Some(false));
        assert_eq!(ask::<std::collections::VecDeque<u8>>(), Some(false));
    }

    /// Whether `value`'s encoding decodes back, or the error if not (asserting it is the depth
    /// limit's).
    fn nests<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> bool {
        match decode::<T>(&encode(value).unwrap()) {
            Ok(back) => {
                assert_eq!(&back, value);
                true
            }
            Err(Error::Codec(m)) => {
                assert!(m.contains("nested deeper than 256 levels"), "{m}");
                false
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// One level per link: each is an enum (`Box` adds none).
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    enum Chain {
        End,
        Link(Box<Chain>),
    }

    fn chain(links: usize) -> Chain {
        (0..links).fold(Chain::End, |c, _| Chain::Link(Box::new(c)))
    }

    #[test]
    fn depth_limit_is_exact_for_enums() {
        // `links` links and the end: links + 1 levels.
        assert!(nests(&chain(NATIVE_MAX_DEPTH as usize - 1)));
        assert!(!nests(&chain(NATIVE_MAX_DEPTH as usize)));
        assert!(!nests(&chain(5000)));
    }

    /// Two levels per link: the newtype struct and the option's `Some`.
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct OptList(Option<Box<OptList>>);

    /// Two levels per level: the newtype struct and the map.
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct MapTree(std::collections::BTreeMap<u8, MapTree>);

    /// Two levels per link: the tuple struct and the option's `Some`.
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct TupleList(u8, Option<Box<TupleList>>);

    /// A struct variant holding a sequence: the enum and the variant's fields, then the `Vec`.
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    enum StructTree {
        Leaf,
        Node { name: String, kids: Vec<StructTree> },
    }

    #[test]
    fn depth_limit_for_options_maps_tuples_and_struct_variants() {
        let opt = |n| (0..n).fold(OptList(None), |l, _| OptList(Some(Box::new(l))));
        // n links: 2n + 1 levels.
        assert!(nests(&opt(127)));
        assert!(!nests(&opt(128)));

        let map =
            |n| (0..n).fold(MapTree(Default::default()), |t, i| MapTree([(i as u8, t)].into()));
        // n levels above the empty one: 2n + 2 levels.
        assert!(nests(&map(127)));
        assert!(!nests(&map(128)));

        let tup = |n| (0..n).fold(TupleList(0, None), |l, i| TupleList(i as u8, Some(Box::new(l))));
        // n links: 2n + 1 levels.
        assert!(nests(&tup(127)));
        assert!(!nests(&tup(128)));

        let tree = |n| {
            (0..n).fold(StructTree::Leaf, |t, _| StructTree::Node {
                name: "n".into(),
                kids: vec![t, StructTree::Leaf],
            })
        };
        // n nodes (enum, struct fields, Vec) and the leaf: 3n + 1 levels.
        assert!(nests(&tree(85)));
        assert!(!nests(&tree(86)));
    }

    #[test]
    fn ordinary_nested_values_decode_and_other_errors_keep_their_message() {
        use std::collections::HashMap;
        type Deep = Vec<HashMap<String, (Option<Vec<Option<(u8, String)>>>, [u16; 3])>>;
        let v: Deep = vec![
            HashMap::from([("a".into(), (Some(vec![None, Some((1, "x".into()))]), [1, 2, 3]))]),
            HashMap::new(),
        ];
        assert!(nests(&v));
        // An invalid UTF-8 string in a nested value is postcard's error, not the limit's.
        let b = [encode(&chain(3)).unwrap(), vec![1, 0xff]].concat();
        match decode::<(Chain, String)>(&b) {
            Err(Error::Codec(m)) => assert!(!m.contains("nested"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pickle_round_trip() {
        let v = vec![(1i64, String::from("a")), (2, String::from("b"))];
        let b = pickle_encode(&v).unwrap();
        assert_eq!(pickle_decode::<Vec<(i64, String)>>(&b).unwrap(), v);
    }
}
