//! A serde `Deserializer` over the parsed pickle arena, with the decode budgets.
//!
//! Mapping (the same as serde-pickle's, so `send_pickle`'s output reads back):
//!
//! | Python | serde |
//! |---|---|
//! | `None` | unit, `Option::None`, a unit struct |
//! | `bool`, `int`, `float`, `str` | the same |
//! | `bytes`, `bytearray` | bytes (`serde_bytes`), or a sequence of `u8` (`Vec<u8>`, `[u8; N]`) |
//! | `list`, `tuple`, `set`, `frozenset` | a sequence (Rust tuples, `Vec`, sets); a longer one than the target takes is an error |
//! | `dict` | a map, or a struct with `str` keys |
//! | `'Variant'`, `{'Variant': value}`, `('Variant',)`, `('Variant', value)` | an enum variant |

use super::{Node, MAX_DEPTH};
use serde::de::{self, DeserializeSeed, Visitor};
use serde::forward_to_deserialize_any;
use std::cell::Cell;
use std::fmt;

/// Counted for every node decoded, on top of its string/bytes contents.
const NODE: usize = 1;

#[derive(Debug)]
pub(super) struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, DeError>;

/// The walk's shared state: what is left of each budget, and the containers being decoded.
struct Walk<'p, 'a> {
    nodes: &'p [Node<'a>],
    nodes_left: Cell<usize>,
    bytes_left: Cell<usize>,
    depth: Cell<usize>,
    /// Containers on the path from the root to the node being decoded: reaching one of them
    /// again is a cycle (`l = []; l.append(l)`), which a tree cannot hold.
    open: Vec<Cell<bool>>,
    node_budget: usize,
    byte_budget: usize,
}

pub(super) fn from_arena<T: de::DeserializeOwned>(
    nodes: &[Node<'_>],
    root: usize,
    node_budget: usize,
    byte_budget: usize,
) -> std::result::Result<T, String> {
    let walk = Walk {
        nodes,
        nodes_left: Cell::new(node_budget),
        bytes_left: Cell::new(byte_budget),
        depth: Cell::new(0),
        open: (0..nodes.len()).map(|_| Cell::new(false)).collect(),
        node_budget,
        byte_budget,
    };
    T::deserialize(At { walk: &walk, id: root }).map_err(|e| e.0)
}

impl<'p, 'a> Walk<'p, 'a> {
    /// Charges one decoded node (and its contents) against the budgets.
    fn charge(&self, id: usize) -> Result<&'p Node<'a>> {
        let node = &self.nodes[id];
        let nodes = self.nodes_left.get().checked_sub(NODE).ok_or_else(|| {
            DeError(format!(
                "pickle decodes to more than {} values (shared references are copied; the \
                 budget is a multiple of the message size)",
                self.node_budget
            ))
        })?;
        self.nodes_left.set(nodes);
        let len = match node {
            Node::Str(s) => s.len(),
            Node::Bytes(b) => b.len(),
            _ => 0,
        };
        if len > 0 {
            let bytes = self.bytes_left.get().checked_sub(len).ok_or_else(|| {
                DeError(format!(
                    "pickle decodes to more than {} bytes of str/bytes (shared references are \
                     copied; the budget is the smaller of a multiple of the message size and \
                     the connection's max_message_size)",
                    self.byte_budget
                ))
            })?;
            self.bytes_left.set(bytes);
        }
        Ok(node)
    }

    /// Opens container `id` for the duration of the guard.
    fn open(&self, id: usize) -> Result<Open<'_, 'p, 'a>> {
        if self.open[id].get() {
            return Err(DeError(
                "pickle holds a recursive structure (a container inside itself)".into(),
            ));
        }
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(DeError(format!("pickle nests deeper than {MAX_DEPTH} containers")));
        }
        self.depth.set(depth);
        self.open[id].set(true);
        Ok(Open { walk: self, id })
    }
}

struct Open<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    id: usize,
}

impl Drop for Open<'_, '_, '_> {
    fn drop(&mut self) {
        self.walk.open[self.id].set(false);
        self.walk.depth.set(self.walk.depth.get() - 1);
    }
}

/// The deserializer for one node.
#[derive(Clone, Copy)]
struct At<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    id: usize,
}

impl<'w, 'p, 'a> At<'w, 'p, 'a> {
    fn seq<'de, V: Visitor<'de>>(self, items: &'p [usize], visitor: V) -> Result<V::Value> {
        let _open = self.walk.open(self.id)?;
        let mut access = Seq { walk: self.walk, items: items.iter() };
        let value = visitor.visit_seq(&mut access)?;
        match access.items.len() {
            0 => Ok(value),
            n => Err(DeError(format!("a sequence has {n} more elements than the target takes"))),
        }
    }
}

impl<'de> de::Deserializer<'de> for At<'_, '_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.walk.charge(self.id)? {
            Node::None => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => visitor.visit_i64(*i),
            Node::UInt(u) => visitor.visit_u64(*u),
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Str(s) => visitor.visit_str(s),
            Node::Bytes(b) => visitor.visit_bytes(b),
            Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
                self.seq(items, visitor)
            }
            Node::Dict(pairs) => {
                let _open = self.walk.open(self.id)?;
                let mut access = Map { walk: self.walk, pairs: pairs.iter(), value: None };
                let value = visitor.visit_map(&mut access)?;
                match access.pairs.len() {
                    0 => Ok(value),
                    n => Err(DeError(format!("a dict has {n} more items than the target takes"))),
                }
            }
            Node::Builtin(b) => Err(DeError(format!("pickle holds {b:?} itself, not a value"))),
        }
    }

    /// A byte string also reads as a sequence of `u8`, so `Vec<u8>` takes Python `bytes`.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Node::Bytes(_) = self.walk.nodes[self.id] {
            let Node::Bytes(b) = self.walk.charge(self.id)? else { unreachable!() };
            let mut access = de::value::SeqDeserializer::new(b.iter().copied());
            let value = visitor.visit_seq(&mut access)?;
            access.end()?;
            return Ok(value);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Node::None = self.walk.nodes[self.id] {
            self.walk.charge(self.id)?;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let walk = self.walk;
        // A bare name is a unit variant; the name itself is charged when the variant reads it.
        if let Node::Str(_) = walk.nodes[self.id] {
            return visitor.visit_enum(Enum { walk, name: self.id, value: None });
        }
        let (name, value) = match walk.charge(self.id)? {
            Node::Dict(pairs) if pairs.len() == 1 => (pairs[0].0, Some(pairs[0].1)),
            Node::Tuple(items) if items.len() == 1 => (items[0], None),
            Node::Tuple(items) if items.len() == 2 => (items[0], Some(items[1])),
            _ => {
                return Err(DeError(
                    "an enum is a variant name, a one-item dict {name: value} or a tuple \
                     (name, value)"
                        .into(),
                ))
            }
        };
        let _open = walk.open(self.id)?;
        visitor.visit_enum(Enum { walk, name, value })
    }

    /// Skipped values (unknown struct fields) are neither walked nor charged.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier
    }
}

struct Seq<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    items: std::slice::Iter<'p, usize>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.items.next() {
            Some(&id) => seed.deserialize(At { walk: self.walk, id }).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    pairs: std::slice::Iter<'p, (usize, usize)>,
    value: Option<usize>,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.pairs.next() {
            Some(&(k, v)) => {
                self.value = Some(v);
                seed.deserialize(At { walk: self.walk, id: k }).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let id =
            self.value.take().ok_or_else(|| DeError("a dict value read before its key".into()))?;
        seed.deserialize(At { walk: self.walk, id })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

struct Enum<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    name: usize,
    value: Option<usize>,
}

impl<'de, 'w, 'p, 'a> de::EnumAccess<'de> for Enum<'w, 'p, 'a> {
    type Error = DeError;
    type Variant = Variant<'w, 'p, 'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant)> {
        let name = seed.deserialize(At { walk: self.walk, id: self.name })?;
        Ok((name, Variant { walk: self.walk, value: self.value }))
    }
}

struct Variant<'w, 'p, 'a> {
    walk: &'w Walk<'p, 'a>,
    value: Option<usize>,
}

impl<'w, 'p, 'a> Variant<'w, 'p, 'a> {
    fn value(&self) -> Result<At<'w, 'p, 'a>> {
        match self.value {
            Some(id) => Ok(At { walk: self.walk, id }),
            None => Err(DeError("an enum variant with data is missing its value".into())),
        }
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<()> {
        match self.value {
            None => Ok(()),
            Some(id) => de::Deserialize::deserialize(At { walk: self.walk, id }),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self.value()?, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self.value()?, visitor)
    }
}
