//! A nesting limit for the native codec. postcard decodes by recursion (each container in the
//! value is a stack frame or more of postcard and of the type's `Deserialize`), and it has no
//! depth limit of its own: a recursive type such as `enum Tree { Leaf, Node(Vec<Tree>) }` fed a
//! 2 MB message nested a million levels deep runs the receiver out of stack, which kills the
//! whole process (SIGSEGV), not just the call.
//!
//! [`Depth`] wraps any serde `Deserializer` and forwards every call to it, wrapping the visitor
//! it passes on, so that each container the visitor is handed — a sequence, a map, an enum, an
//! option's `Some`, a newtype struct — counts one level, and the element/key/value/variant seeds
//! of that container receive a `Depth` one level deeper. Past the limit the visitor is not
//! called; the decode answers an error instead, and a thread-local flag records that the limit
//! (not some other custom error, which postcard flattens to one message) was the cause.
//!
//! The same wrappers keep a second budget, of elements: a sequence whose claimed length exceeds
//! the bytes left (postcard then gives no size hint) and every map charge each element to a
//! per-decode count, so that elements taking no bytes cannot be claimed 2^63 times (`Access`'s
//! `charged`). And `deserialize_seq` is where serde's `Vec<u8>` visitor is served a byte string
//! in one copy (the `fast` module); that still counts its one level.
//!
//! The wrappers hold only the inner value, the level left and a flag; every method is
//! `#[inline]` so that, monomorphised over postcard and the user's type, the counting is a
//! decrement and a compare per container and nothing per scalar.

use super::fast;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

thread_local! {
    /// Which limit (if any) a decode on this thread stopped at: [`NONE`], [`DEPTH`] or
    /// [`ELEMENTS`]; read and cleared by [`take_hit`]. Thread-local rather than carried by the
    /// wrappers so that they stay a deserializer and a counter (the flag is touched only on the
    /// cold path).
    static HIT: Cell<u8> = const { Cell::new(NONE) };
    /// How many more elements this decode may take from sequences that claim more elements than
    /// bytes are left, and from maps (see [`Access::charged`]).
    static BUDGET: Cell<u64> = const { Cell::new(0) };
}

/// No limit was hit.
pub(super) const NONE: u8 = 0;
/// The nesting limit was hit.
pub(super) const DEPTH: u8 = 1;
/// The element budget ran out.
pub(super) const ELEMENTS: u8 = 2;

/// Starts a decode: forgets a hit whose error a type's `Deserialize` swallowed (e.g. a
/// default-on-error field), so that it cannot label a later, unrelated failure, and sets the
/// element budget to `budget`.
#[inline]
pub(super) fn start(budget: u64) {
    HIT.with(|h| h.set(NONE));
    BUDGET.with(|b| b.set(budget));
}

/// Which limit the failed decode on this thread stopped at.
pub(super) fn take_hit() -> u8 {
    HIT.with(|h| h.replace(NONE))
}

/// A deserializer that lets values nest at most `left` more containers deep.
pub(super) struct Depth<D> {
    de: D,
    left: u32,
}

impl<D> Depth<D> {
    #[inline]
    pub(super) fn new(de: D, limit: u32) -> Self {
        Depth { de, left: limit }
    }

    #[inline]
    fn wrap<V>(&self, visitor: V) -> Wrap<V> {
        Wrap { inner: visitor, left: self.left }
    }
}

/// A visitor that is one container deeper each time it is handed one.
struct Wrap<V> {
    inner: V,
    left: u32,
}

impl<V> Wrap<V> {
    /// The level left inside the container about to be visited, or the limit's error.
    #[inline]
    fn enter<E: de::Error>(&self) -> Result<u32, E> {
        match self.left.checked_sub(1) {
            Some(left) => Ok(left),
            None => Err(too_deep()),
        }
    }
}

/// The limit's error, out of line: it is reached only by hostile or broken input, and keeping
/// it out of every container's inlined path keeps that path a decrement and a branch.
#[cold]
#[inline(never)]
fn too_deep<E: de::Error>() -> E {
    HIT.with(|h| h.set(DEPTH));
    E::custom("native value nested too deep")
}

/// Takes one element from the budget, or the budget's error.
#[inline]
fn charge<E: de::Error>() -> Result<(), E> {
    BUDGET.with(|b| match b.get().checked_sub(1) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(too_many()),
    })
}

/// The element budget's error, out of line like [`too_deep`].
#[cold]
#[inline(never)]
fn too_many<E: de::Error>() -> E {
    HIT.with(|h| h.set(ELEMENTS));
    E::custom("native value has too many elements for its size")
}

/// A seed (of an element, key, value, variant) whose deserializer is limited to `left` levels.
struct Seed<S> {
    inner: S,
    left: u32,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Depth { de, left: self.left })
    }
}

/// A container's contents (`SeqAccess`, `MapAccess`, `EnumAccess`, `VariantAccess`), whose
/// seeds and visitors are limited to `left` levels.
struct Access<A> {
    inner: A,
    left: u32,
    /// Whether each element is charged to the decode's element budget. An element that takes
    /// no bytes (`()`, a unit struct, a struct of skipped fields) lets a sequence's length run
    /// unchecked by the input: 10 bytes claiming 2^63 of them would loop (or, for a type that
    /// is not zero-sized, allocate) until the receiver is killed. postcard says when a sequence
    /// claims more elements than bytes are left (no size hint), and only those are charged;
    /// its maps always give their claimed length, so every map entry is charged.
    charged: bool,
}

impl<A> Access<A> {
    #[inline]
    fn seed<S>(&self, seed: S) -> Seed<S> {
        Seed { inner: seed, left: self.left }
    }

    #[inline]
    fn wrap<V>(&self, visitor: V) -> Wrap<V> {
        Wrap { inner: visitor, left: self.left }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        if self.charged {
            charge()?;
        }
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        charge()?;
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    #[inline]
    fn next_entry_seed<K: DeserializeSeed<'de>, V: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: V,
    ) -> Result<Option<(K::Value, V::Value)>, A::Error> {
        charge()?;
        let (key, value) = (self.seed(key), self.seed(value));
        self.inner.next_entry_seed(key, value)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
    type Error = A::Error;
    type Variant = Access<A::Variant>;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let left = self.left;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, left })?;
        Ok((value, Access { inner: variant, left, charged: false }))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.wrap(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.wrap(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}

/// Forwards `visit_*` methods that carry no nested value.
macro_rules! visit_scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit_scalars! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char), visit_str(&str),
        visit_borrowed_str(&'de str), visit_string(String), visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>),
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let left = self.enter()?;
        self.inner.visit_some(Depth { de, left })
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let left = self.enter()?;
        self.inner.visit_newtype_struct(Depth { de, left })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let left = self.enter()?;
        let charged = seq.size_hint().is_none();
        self.inner.visit_seq(Access { inner: seq, left, charged })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let left = self.enter()?;
        self.inner.visit_map(Access { inner: map, left, charged: true })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let left = self.enter()?;
        self.inner.visit_enum(Access { inner: data, left, charged: false })
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward {
    ($($method:ident),* $(,)?) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.de.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Depth<D> {
    type Error = D::Error;

    forward! {
        deserialize_any, deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32,
        deserialize_i64, deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32,
        deserialize_u64, deserialize_u128, deserialize_f32, deserialize_f64, deserialize_char,
        deserialize_str, deserialize_string, deserialize_bytes, deserialize_byte_buf,
        deserialize_option, deserialize_unit, deserialize_map,
        deserialize_identifier, deserialize_ignored_any,
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if fast::is_vec_u8_visitor::<V>() && fast::is_postcard::<D>() {
            // The same container, so the same level as the sequence would take.
            self.wrap(()).enter::<D::Error>()?;
            let bytes = self.de.deserialize_byte_buf(fast::ByteVec)?;
            // `is_vec_u8_visitor` said `V::Value` is `Vec<u8>`.
            return fast::vec_as(bytes).ok_or_else(|| de::Error::custom("not a Vec<u8>"));
        }
        let visitor = self.wrap(visitor);
        self.de.deserialize_seq(visitor)
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_unit_struct(name, visitor)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_newtype_struct(name, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_tuple_struct(name, len, visitor)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_struct(name, fields, visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.de.deserialize_enum(name, variants, visitor)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}
