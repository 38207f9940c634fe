//! Byte sequences in one copy: the native codec's fast path for `Vec<u8>`, `[u8]`, `Box<[u8]>`
//! and everything holding them, with no wrapper type asked of the user.
//!
//! serde hands a `Vec<u8>` to a format as a sequence of `u8`, one call per byte each way:
//! postcard writes a varint length and then pushes each byte on its own, and reads it back
//! through serde's `Vec` visitor, a `next_element` call (and a push into a growing `Vec`) per
//! byte. For 64 bytes that was most of a queue's put + get. The *wire form* of a sequence of `u8`
//! in postcard, though, is exactly that of a byte string (varint length, then the raw bytes), so
//! both ends can take the byte string's one-copy path without changing a single byte on the
//! wire — old and new peers read each other's messages, and the pickle format is not involved.
//!
//! serde gives a format no type information, so the two ends recognise the byte sequence by
//! type identity (`typeid::of`, which unlike `TypeId::of` does not need `'static`; the types
//! compared here have no lifetime parameters, so "one type up to lifetimes" is "one type"):
//!
//! * **encode** — [`Ser`] wraps postcard's serializer and forwards everything, except that
//!   `collect_seq` of a `&Vec<u8>` or `&[u8]` (what serde's `Serialize` for `Vec<u8>`, `[u8]`,
//!   `Box<[u8]>`, `Arc<[u8]>`, `Cow<[u8]>` calls) becomes one `serialize_bytes`. Compound values
//!   (structs, tuples, enums, options, maps) serialize their parts through `Ser` again, so a
//!   `Vec<u8>` anywhere inside a value takes the fast path.
//! * **decode** — the depth limit's wrapper (`depth.rs`) asks [`is_vec_u8_visitor`] at each
//!   `deserialize_seq`: if the visitor is serde's own `Vec<u8>` visitor — not merely one whose
//!   value is a `Vec<u8>`: a custom visitor may read the sequence its own way — the sequence is
//!   read as postcard's byte string and handed back as that visitor's value. postcard checks the
//!   length against the bytes left before it lends them, so a lying length allocates nothing.
//!
//! # Safety
//! The two `unsafe` blocks are reinterpretations between types that `typeid::of` has just
//! found identical; each says why lifetimes cannot be stretched by it.
#![allow(unsafe_code)]

use serde::de::{self, Deserialize, Visitor};
use serde::ser::{self, Serialize};
use std::any::TypeId;
use std::sync::OnceLock;

/// `iter` as a byte slice, when it is a `&Vec<u8>` or a `&[u8]` (what serde's byte-sequence
/// `Serialize` impls hand to `collect_seq`).
#[inline(always)]
fn as_bytes<I>(iter: &I) -> Option<&[u8]> {
    if typeid::of::<I>() == typeid::of::<&Vec<u8>>() {
        // SAFETY: `I` is `&'a Vec<u8>` for some `'a` (type ids equal up to lifetimes, and
        // `Vec<u8>` has none), so the pointer casts to a same-layout, same-type reference. The
        // result borrows `iter`, which cannot outlive `'a`, so no lifetime is lengthened.
        let v: &&Vec<u8> = unsafe { &*(iter as *const I).cast::<&Vec<u8>>() };
        Some(v.as_slice())
    } else if typeid::of::<I>() == typeid::of::<&[u8]>() {
        // SAFETY: as above, with `I` = `&'a [u8]` (a fat pointer: the pointee type, and so the
        // layout, is the same one).
        let v: &&[u8] = unsafe { &*(iter as *const I).cast::<&[u8]>() };
        Some(v)
    } else {
        None
    }
}

/// `v` as a `T`, when `T` is `Vec<u8>`.
#[inline(always)]
pub(super) fn vec_as<T>(v: Vec<u8>) -> Option<T> {
    if typeid::of::<T>() != typeid::of::<Vec<u8>>() {
        return None;
    }
    let v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `T` is `Vec<u8>` (type ids equal up to lifetimes, and `Vec<u8>` has none), so
    // this reads a `Vec<u8>` as itself; `ManuallyDrop` keeps the original from being dropped
    // too, so the buffer has exactly one owner, the returned value.
    Some(unsafe { std::ptr::read((&*v as *const Vec<u8>).cast::<T>()) })
}

/// Whether `V` is serde's visitor for `Vec<u8>` (which `Box<[u8]>` uses too): it collects the
/// sequence's elements as `u8`s, in order, and nothing else, so a byte string of the same wire
/// form gives it the same value.
#[inline(always)]
pub(super) fn is_vec_u8_visitor<'de, V: Visitor<'de>>() -> bool {
    // Constant for each `V`: only visitors building a `Vec<u8>` reach the look-up.
    typeid::of::<V::Value>() == typeid::of::<Vec<u8>>() && Some(typeid::of::<V>()) == vec_visitor()
}

/// Whether `D` is postcard's deserializer over a slice, the one format whose sequence of `u8`
/// is known to be a byte string on the wire.
#[inline(always)]
pub(super) fn is_postcard<D>() -> bool {
    typeid::of::<D>() == typeid::of::<&mut postcard::Deserializer<postcard::de_flavors::Slice>>()
}

/// The type id of the visitor serde's `Vec<u8>::deserialize` passes to `deserialize_seq`, found
/// once by asking it to deserialize from a probe; `None` if a serde version does it otherwise
/// (then there is no fast path, only the general one).
fn vec_visitor() -> Option<TypeId> {
    static ID: OnceLock<Option<TypeId>> = OnceLock::new();
    *ID.get_or_init(|| {
        let mut probe = Probe(None);
        let _ = Vec::<u8>::deserialize(&mut probe);
        probe.0
    })
}

/// A deserializer that records the visitor of a `deserialize_seq` and fails every call.
struct Probe(Option<TypeId>);

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("probe"))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        self.0 = Some(typeid::of::<V>());
        Err(de::Error::custom("probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// The one visitor of a byte string the decode fast path uses: the bytes, copied once.
pub(super) struct ByteVec;

impl<'de> Visitor<'de> for ByteVec {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence of bytes")
    }

    #[inline]
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
}

/// postcard's serializer with byte sequences written in one copy (module docs). Every other
/// call is forwarded to postcard unchanged, so the bytes written are postcard's.
pub(super) struct Ser<'a, F: postcard::ser_flavors::Flavor>(
    pub(super) &'a mut postcard::Serializer<F>,
);

impl<'a, F: postcard::ser_flavors::Flavor> Ser<'a, F> {
    #[inline]
    fn again(&mut self) -> Ser<'_, F> {
        Ser(&mut *self.0)
    }
}

/// Forwards `serialize_*` methods that take one scalar argument.
macro_rules! scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        #[inline]
        fn $method(self, v: $ty) -> postcard::Result<()> {
            self.0.$method(v)
        }
    )*};
}

impl<'a, F: postcard::ser_flavors::Flavor> ser::Serializer for Ser<'a, F> {
    type Ok = ();
    type Error = postcard::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    scalars! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_i128(i128), serialize_u8(u8), serialize_u16(u16),
        serialize_u32(u32), serialize_u64(u64), serialize_u128(u128), serialize_f32(f32),
        serialize_f64(f64), serialize_char(char), serialize_str(&str), serialize_bytes(&[u8]),
    }

    #[inline]
    fn serialize_none(self) -> postcard::Result<()> {
        self.0.serialize_none()
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(mut self, value: &T) -> postcard::Result<()> {
        // postcard's `Some` is the tag byte 1 and then the value.
        ser::Serializer::serialize_u8(&mut *self.0, 1)?;
        value.serialize(self.again())
    }

    #[inline]
    fn serialize_unit(self) -> postcard::Result<()> {
        self.0.serialize_unit()
    }

    #[inline]
    fn serialize_unit_struct(self, name: &'static str) -> postcard::Result<()> {
        self.0.serialize_unit_struct(name)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> postcard::Result<()> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        // postcard writes a newtype struct as its content.
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        // postcard's newtype variant is the variant index (as a unit variant's) and the value.
        ser::Serializer::serialize_unit_variant(&mut *self.0, name, index, variant)?;
        value.serialize(self.again())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> postcard::Result<Self> {
        ser::Serializer::serialize_seq(&mut *self.0, len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> postcard::Result<Self> {
        // A tuple (and a struct) has no framing in postcard, only its fields.
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> postcard::Result<Self> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> postcard::Result<Self> {
        ser::Serializer::serialize_unit_variant(&mut *self.0, name, index, variant)?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> postcard::Result<Self> {
        ser::Serializer::serialize_map(&mut *self.0, len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> postcard::Result<Self> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> postcard::Result<Self> {
        ser::Serializer::serialize_unit_variant(&mut *self.0, name, index, variant)?;
        Ok(self)
    }

    #[inline]
    fn collect_seq<I>(self, iter: I) -> postcard::Result<()>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if let Some(bytes) = as_bytes(&iter) {
            // The same bytes as a sequence of `u8`: varint length, then each byte raw.
            return self.0.serialize_bytes(bytes);
        }
        let iter = iter.into_iter();
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo),
            _ => None,
        };
        let mut seq = ser::Serializer::serialize_seq(self, len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }

    #[inline]
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> postcard::Result<()> {
        self.0.collect_str(value)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Implements the compound traits: each part through `Ser` again, no closing bytes (postcard
/// writes none).
macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl<F: postcard::ser_flavors::Flavor> ser::$trait for Ser<'_, F> {
            type Ok = ();
            type Error = postcard::Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> postcard::Result<()> {
                value.serialize(self.again())
            }

            #[inline]
            fn end(self) -> postcard::Result<()> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq::serialize_element, SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field, SerializeTupleVariant::serialize_field,
}

impl<F: postcard::ser_flavors::Flavor> ser::SerializeMap for Ser<'_, F> {
    type Ok = ();
    type Error = postcard::Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> postcard::Result<()> {
        key.serialize(self.again())
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> postcard::Result<()> {
        value.serialize(self.again())
    }

    #[inline]
    fn end(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Implements the struct traits: a field is its value (postcard writes no names).
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {$(
        impl<F: postcard::ser_flavors::Flavor> ser::$trait for Ser<'_, F> {
            type Ok = ();
            type Error = postcard::Error;

            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                value: &T,
            ) -> postcard::Result<()> {
                value.serialize(self.again())
            }

            #[inline]
            fn end(self) -> postcard::Result<()> {
                Ok(())
            }
        }
    )*};
}

fields! { SerializeStruct, SerializeStructVariant }
