//! A data-only pickle reader: CPython's `pickle.loads` for the protocol 0–5 opcodes that build
//! data, with budgets, for bytes a hostile peer wrote.
//!
//! Decoding runs in two passes, neither of them recursive:
//!
//! ```text
//!  bytes ──parse──▶ arena of nodes (a graph) ──de::Walk──▶ the caller's T (a tree)
//!        one pass, one node per opcode          serde, copying shared references
//! ```
//!
//! * **parse** runs the pickle machine: a value stack, a mark stack and a memo, all holding
//!   *indices* into a flat arena. `DUP` and memo `GET` push an index, never a copy, and the
//!   arena grows by at most one node per opcode, so this pass costs O(input) time and memory
//!   whatever the pickle says. Containers are filled in place (`APPEND`, `SETITEMS`, …), exactly
//!   as CPython mutates the object it memoized; that is how a dict referenced twice, or a list
//!   that contains itself, is written.
//! * **walk** (`de.rs`) hands the graph to serde. A node reached twice is decoded twice (Rust has
//!   no shared references to give), so the work is charged against budgets: decoded nodes and
//!   decoded string/bytes contents, each at most a small multiple of the input (`EXPANSION`),
//!   and the contents at most the caller's limit (a connection's `max_message_size`). Nesting is
//!   bounded by [`MAX_DEPTH`] (the walk is serde's recursion, so this also bounds the stack), and
//!   a container reached again while it is being decoded is a recursive structure: `Err`.
//!
//! What is refused, always with an error naming the opcode:
//!
//! | asks for | opcodes |
//! |---|---|
//! | a class or a callable | `GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `EXT1/2/4` |
//! | the pickler's own objects | `PERSID`, `BINPERSID` |
//! | out-of-band buffers (protocol 5) | `NEXT_BUFFER`, `READONLY_BUFFER` |
//! | an `int` outside `i64`/`u64` | `LONG`, `LONG1`, `LONG4`, `INT` |
//!
//! The one exception to the first row is how CPython itself writes plain data at low protocols:
//! `bytes` (protocols 0–2, `_codecs.encode(str, 'latin1')`), `bytearray` (0–4) and `set` /
//! `frozenset` (0–3) are a `GLOBAL` of that builtin and a `REDUCE` with data arguments. Exactly
//! those five names are recognised, called with the argument shapes the pickler writes, and
//! turned into data here; nothing is ever looked up or called.

mod de;

use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::HashMap;

/// Deepest nesting of containers a pickle may decode to (Python's default recursion limit is
/// 1000; serde's walk uses a few hundred bytes of stack per level, so 256 is safe on a 2 MiB
/// thread).
pub const MAX_DEPTH: usize = 256;
/// Decoded nodes, and decoded string/bytes contents, may each be this many times the input
/// (plus [`SLACK`]): enough for the shared references Python writes (`[t] * 1000` of a small
/// tuple is 4 nodes per 2-byte `BINGET`), far too little for a reference bomb.
pub const EXPANSION: usize = 8;
/// Added to each budget so a tiny pickle may still share a little.
pub const SLACK: usize = 4096;

/// Decodes one pickle that fills `input` exactly into a `T`. `limit` caps the decoded string
/// and bytes contents (a connection passes its `max_message_size`).
pub(super) fn decode<T: DeserializeOwned>(input: &[u8], limit: usize) -> Result<T, String> {
    let pickle = parse(input)?;
    let grown = input.len().saturating_mul(EXPANSION).saturating_add(SLACK);
    de::from_arena(&pickle.nodes, pickle.root, grown, grown.min(limit))
}

/// One arena node: what an opcode built. Children are arena indices.
#[derive(Debug)]
enum Node<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// An `int` above `i64::MAX` that fits a `u64`.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// `bytes` and `bytearray` (serde has one byte-string type).
    Bytes(Cow<'a, [u8]>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
    /// A builtin data constructor named by `GLOBAL`; only `REDUCE` consumes it.
    Builtin(Builtin),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    CodecsEncode,
    Bytes,
    ByteArray,
    Set,
    FrozenSet,
}

impl Builtin {
    fn lookup(module: &[u8], name: &[u8]) -> Option<Builtin> {
        let builtins = module == b"builtins" || module == b"__builtin__";
        Some(match name {
            b"encode" if module == b"_codecs" => Builtin::CodecsEncode,
            b"bytes" if builtins => Builtin::Bytes,
            b"bytearray" if builtins => Builtin::ByteArray,
            b"set" if builtins => Builtin::Set,
            b"frozenset" if builtins => Builtin::FrozenSet,
            _ => return None,
        })
    }
}

struct Pickle<'a> {
    nodes: Vec<Node<'a>>,
    root: usize,
}

/// The pickle memo. CPython writes dense indices from 0 (`MEMOIZE` is "the next index"); a
/// hostile index such as `LONG_BINPUT 0xffffffff` goes to the map instead of sizing a vector.
#[derive(Default)]
struct Memo {
    dense: Vec<Option<usize>>,
    sparse: HashMap<u64, usize>,
    count: u64,
}

impl Memo {
    fn put(&mut self, index: u64, node: usize) {
        let fresh = match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense[i].replace(node).is_none(),
            Ok(i) if i == self.dense.len() => {
                self.dense.push(Some(node));
                true
            }
            _ => self.sparse.insert(index, node).is_none(),
        };
        self.count += u64::from(fresh);
    }

    fn get(&self, index: u64) -> Option<usize> {
        match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense[i],
            _ => self.sparse.get(&index).copied(),
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
    stack: Vec<usize>,
    /// Stack lengths at each open `MARK` (CPython's metastack).
    marks: Vec<usize>,
    memo: Memo,
    /// Elements `REDUCE` of a builtin may still copy: a memoized list fed to `set()` again and
    /// again must not make this pass quadratic.
    copy_budget: usize,
}

type Step = Result<Option<usize>, String>;

fn parse(input: &[u8]) -> Result<Pickle<'_>, String> {
    let mut p = Parser {
        input,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
        copy_budget: input.len(),
    };
    loop {
        let at = p.pos;
        let Some(&op) = input.get(at) else {
            return Err(format!("pickle ends at byte {at} without STOP"));
        };
        p.pos += 1;
        match p.step(op) {
            Ok(None) => {}
            Ok(Some(root)) => {
                if p.pos != input.len() {
                    return Err(format!(
                        "{} unexpected bytes after the pickle's STOP",
                        input.len() - p.pos
                    ));
                }
                return Ok(Pickle { nodes: p.nodes, root });
            }
            Err(e) => return Err(format!("pickle opcode {} at byte {at}: {e}", op_name(op))),
        }
    }
}

impl<'a> Parser<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = self.input.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let s = &self.input[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(format!("needs {n} bytes, {left} left")),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N as u64)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u64, String> {
        Ok(u64::from(u32::from_le_bytes(self.array()?)))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A signed 4-byte length (`BINSTRING`, `LONG4`); negative is an error, as in CPython.
    fn i32_len(&mut self) -> Result<u64, String> {
        let n = i32::from_le_bytes(self.array()?);
        u64::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    /// A protocol 0 argument: the bytes up to the next newline.
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.input[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("no newline ends the argument")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn push(&mut self, node: Node<'a>) {
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
    }

    /// The stack below the innermost `MARK` belongs to the enclosing frame.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<usize, String> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> Result<usize, String> {
        match self.stack.last() {
            Some(&t) if self.stack.len() > self.floor() => Ok(t),
            _ => Err("stack underflow".into()),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<usize>, String> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(mark))
    }

    fn pairs(items: Vec<usize>) -> Result<Vec<(usize, usize)>, String> {
        if items.len() % 2 != 0 {
            return Err(format!("{} items are not key/value pairs", items.len()));
        }
        Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
    }

    fn memo_index(line: &[u8]) -> Result<u64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("memo index {:?} is not a number", lossy(line)))
    }

    fn get(&mut self, index: u64) -> Result<Option<usize>, String> {
        let node =
            self.memo.get(index).ok_or_else(|| format!("memo index {index} was never PUT"))?;
        self.stack.push(node);
        Ok(None)
    }

    fn put(&mut self, index: u64) -> Step {
        let top = self.top()?;
        self.memo.put(index, top);
        Ok(None)
    }

    fn int(&mut self, v: i128) -> Step {
        let node = if let Ok(i) = i64::try_from(v) {
            Node::Int(i)
        } else if let Ok(u) = u64::try_from(v) {
            Node::UInt(u)
        } else {
            return Err("int does not fit in i64 or u64".into());
        };
        self.push(node);
        Ok(None)
    }

    fn str(&mut self, raw: &'a [u8]) -> Step {
        let s = std::str::from_utf8(raw).map_err(|e| format!("string is not UTF-8: {e}"))?;
        self.push(Node::Str(Cow::Borrowed(s)));
        Ok(None)
    }

    /// A Python 2 `str`: text when it is UTF-8 (what Python 3 reads with `encoding='utf-8'`),
    /// otherwise bytes.
    fn py2_str(&mut self, raw: Cow<'a, [u8]>) -> Step {
        let node = match raw {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(s) => Node::Str(Cow::Borrowed(s)),
                Err(_) => Node::Bytes(Cow::Borrowed(b)),
            },
            Cow::Owned(b) => match String::from_utf8(b) {
                Ok(s) => Node::Str(Cow::Owned(s)),
                Err(e) => Node::Bytes(Cow::Owned(e.into_bytes())),
            },
        };
        self.push(node);
        Ok(None)
    }

    fn bytes(&mut self, raw: &'a [u8]) -> Step {
        self.push(Node::Bytes(Cow::Borrowed(raw)));
        Ok(None)
    }

    /// `REDUCE` of one of the five builtins, with the argument shapes CPython's pickler writes.
    fn reduce(&mut self) -> Step {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Node::Builtin(b) = self.nodes[callable] else {
            return Err("calls a callable; only data is decoded".into());
        };
        let Node::Tuple(args) = &self.nodes[args] else {
            return Err("arguments are not a tuple".into());
        };
        let args: Vec<&Node<'a>> = args.iter().map(|&a| &self.nodes[a]).collect();
        let budget = self.copy_budget;
        let check = |n: usize| {
            if n > budget {
                return Err("builtin constructors copy more than the pickle's size".to_string());
            }
            Ok(n)
        };
        let (node, copied) = match (b, args.as_slice()) {
            (Builtin::CodecsEncode, [Node::Str(s), Node::Str(enc)])
                if enc == "latin1" || enc == "latin-1" =>
            {
                let n = check(s.len())?;
                let bytes = s
                    .chars()
                    .map(|c| u8::try_from(c).map_err(|_| format!("{c:?} is not latin-1")))
                    .collect::<Result<Vec<u8>, String>>()?;
                (Node::Bytes(Cow::Owned(bytes)), n)
            }
            (Builtin::Bytes | Builtin::ByteArray, []) => (Node::Bytes(Cow::Borrowed(&[])), 0),
            (Builtin::Bytes | Builtin::ByteArray, [Node::Bytes(bytes)]) => {
                let n = match bytes {
                    Cow::Borrowed(_) => 0,
                    Cow::Owned(o) => check(o.len())?,
                };
                (Node::Bytes(bytes.clone()), n)
            }
            (Builtin::Set | Builtin::FrozenSet, []) => (Node::Set(Vec::new()), 0),
            (Builtin::Set | Builtin::FrozenSet, [Node::List(items)]) => {
                let n = check(items.len())?;
                (Node::Set(items.clone()), n)
            }
            (b, _) => return Err(format!("{b:?} called with arguments that are not plain data")),
        };
        self.copy_budget -= copied;
        self.push(node);
        Ok(None)
    }

    /// Runs one opcode; `Some(root)` at `STOP`.
    fn step(&mut self, op: u8) -> Step {
        match op {
            b'(' => self.marks.push(self.stack.len()),
            b'.' => return self.pop().map(Some),
            b'0' => {
                if self.stack.len() > self.floor() {
                    self.stack.pop();
                } else if self.marks.pop().is_none() {
                    return Err("stack underflow".into());
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => self.stack.push(self.top()?),
            0x80 => {
                let v = self.u8()?;
                if v > 5 {
                    return Err(format!("protocol {v} is newer than 5"));
                }
            }
            0x95 => {
                let n = self.u64()?;
                let left = self.input.len() - self.pos;
                if n > left as u64 {
                    return Err(format!("frame of {n} bytes, {left} left"));
                }
            }
            b'N' => self.push(Node::None),
            0x88 => self.push(Node::Bool(true)),
            0x89 => self.push(Node::Bool(false)),
            b'I' => {
                let line = self.line()?;
                match line {
                    b"00" => self.push(Node::Bool(false)),
                    b"01" => self.push(Node::Bool(true)),
                    _ => return self.int(parse_text_int(line)?),
                }
            }
            b'L' => {
                let line = self.line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                return self.int(parse_text_int(digits)?);
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                return self.int(v.into());
            }
            b'K' => {
                let v = self.u8()?;
                return self.int(v.into());
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                return self.int(v.into());
            }
            0x8a => {
                let n = self.u8()?;
                let raw = self.take(n.into())?;
                return self.int(long_le(raw)?);
            }
            0x8b => {
                let n = self.i32_len()?;
                let raw = self.take(n)?;
                return self.int(long_le(raw)?);
            }
            b'F' => {
                let line = self.line()?;
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or_else(|| format!("{:?} is not a float", lossy(line)))?;
                self.push(Node::Float(v));
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Node::Float(v));
            }
            b'S' => {
                let line = self.line()?;
                return self.py2_str(unrepr_py2(line)?);
            }
            b'T' => {
                let n = self.i32_len()?;
                let raw = self.take(n)?;
                return self.py2_str(Cow::Borrowed(raw));
            }
            b'U' => {
                let n = self.u8()?;
                let raw = self.take(n.into())?;
                return self.py2_str(Cow::Borrowed(raw));
            }
            b'V' => {
                let line = self.line()?;
                self.push(Node::Str(raw_unicode_escape(line)?));
            }
            b'X' => {
                let n = self.u32()?;
                let raw = self.take(n)?;
                return self.str(raw);
            }
            0x8c => {
                let n = self.u8()?;
                let raw = self.take(n.into())?;
                return self.str(raw);
            }
            0x8d => {
                let n = self.u64()?;
                let raw = self.take(n)?;
                return self.str(raw);
            }
            b'B' => {
                let n = self.u32()?;
                let raw = self.take(n)?;
                return self.bytes(raw);
            }
            b'C' => {
                let n = self.u8()?;
                let raw = self.take(n.into())?;
                return self.bytes(raw);
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                let raw = self.take(n)?;
                return self.bytes(raw);
            }
            0x97 | 0x98 => return Err("out-of-band buffers are not supported".into()),
            b']' => self.push(Node::List(Vec::new())),
            b'}' => self.push(Node::Dict(Vec::new())),
            b')' => self.push(Node::Tuple(Vec::new())),
            0x8f => self.push(Node::Set(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(Self::pairs(items)?));
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Node::FrozenSet(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < self.floor() + n {
                    return Err("stack underflow".into());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Node::Tuple(items));
            }
            b'a' => {
                let item = self.pop()?;
                let list = self.top()?;
                match &mut self.nodes[list] {
                    Node::List(items) => items.push(item),
                    _ => return Err("appends to something that is not a list".into()),
                }
            }
            b'e' => {
                let new = self.pop_mark()?;
                let list = self.top()?;
                match &mut self.nodes[list] {
                    Node::List(items) => items.extend(new),
                    _ => return Err("appends to something that is not a list".into()),
                }
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let dict = self.top()?;
                match &mut self.nodes[dict] {
                    Node::Dict(items) => items.push((k, v)),
                    _ => return Err("sets an item of something that is not a dict".into()),
                }
            }
            b'u' => {
                let new = Self::pairs(self.pop_mark()?)?;
                let dict = self.top()?;
                match &mut self.nodes[dict] {
                    Node::Dict(items) => items.extend(new),
                    _ => return Err("sets items of something that is not a dict".into()),
                }
            }
            0x90 => {
                let new = self.pop_mark()?;
                let set = self.top()?;
                match &mut self.nodes[set] {
                    Node::Set(items) => items.extend(new),
                    _ => return Err("adds to something that is not a set".into()),
                }
            }
            b'p' => {
                let line = self.line()?;
                return self.put(Self::memo_index(line)?);
            }
            b'q' => {
                let i = self.u8()?;
                return self.put(i.into());
            }
            b'r' => {
                let i = self.u32()?;
                return self.put(i);
            }
            0x94 => return self.put(self.memo.count),
            b'g' => {
                let line = self.line()?;
                return self.get(Self::memo_index(line)?);
            }
            b'h' => {
                let i = self.u8()?;
                return self.get(i.into());
            }
            b'j' => {
                let i = self.u32()?;
                return self.get(i);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let b = builtin(module, name)?;
                self.push(Node::Builtin(b));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Node::Str(m), Node::Str(n)) = (&self.nodes[module], &self.nodes[name]) else {
                    return Err("module and name are not strings".into());
                };
                let b = builtin(m.as_bytes(), n.as_bytes())?;
                self.push(Node::Builtin(b));
            }
            b'R' => return self.reduce(),
            b'b' | b'i' | b'o' | 0x81 | 0x92 | 0x82..=0x84 => {
                return Err("asks for a class or callable; only data is decoded".into())
            }
            b'P' | b'Q' => return Err("asks for a persistent object; only data is decoded".into()),
            _ => return Err("is not a pickle opcode".into()),
        }
        Ok(None)
    }
}

/// The builtin a `GLOBAL`/`STACK_GLOBAL` names, or the error that refuses it.
fn builtin(module: &[u8], name: &[u8]) -> Result<Builtin, String> {
    Builtin::lookup(module, name).ok_or_else(|| {
        format!(
            "asks for {}.{}: a class or callable; only data is decoded",
            lossy(module),
            lossy(name)
        )
    })
}

/// `pickletools`' name of an opcode, for error messages.
fn op_name(op: u8) -> String {
    let name = match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return format!("{op:#04x}"),
    };
    name.to_string()
}

fn lossy(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(b).into_owned();
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A protocol 0 `INT`/`LONG` argument: decimal with an optional sign.
fn parse_text_int(line: &[u8]) -> Result<i128, String> {
    let s = std::str::from_utf8(line).map_err(|_| "int is not ASCII")?.trim();
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not an int", lossy(line)));
    }
    s.parse().map_err(|_| "int does not fit in i64 or u64".into())
}

/// `LONG1`/`LONG4`: little-endian two's complement, any length (CPython writes the shortest).
fn long_le(raw: &[u8]) -> Result<i128, String> {
    let Some(&last) = raw.last() else {
        return Ok(0);
    };
    let sign = if last & 0x80 != 0 { 0xff } else { 0 };
    if raw.len() > 16 {
        // Longer is only fine as redundant sign extension of a 16-byte value.
        if raw[16..].iter().any(|&b| b != sign) || (raw[15] & 0x80 != 0) != (sign != 0) {
            return Err("int does not fit in i64 or u64".into());
        }
    }
    let mut buf = [sign; 16];
    let n = raw.len().min(16);
    buf[..n].copy_from_slice(&raw[..n]);
    Ok(i128::from_le_bytes(buf))
}

/// A protocol 0 `STRING` argument: Python 2's `repr` of a `str`, quotes included.
fn unrepr_py2(line: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let body = match line {
        [q @ (b'\'' | b'"'), body @ .., end] if end == q => body,
        _ => return Err("STRING argument is not quoted".into()),
    };
    if !body.contains(&b'\\') {
        return Ok(Cow::Borrowed(body));
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = body.get(i) else {
            return Err("STRING ends in a backslash".into());
        };
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'x' => {
                let hex = body.get(i..i + 2).ok_or("STRING has a short \\x escape")?;
                let v = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("STRING has a bad \\x escape")?;
                out.push(v);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            // Python keeps an unknown escape as written.
            _ => out.extend_from_slice(&[b'\\', e]),
        }
    }
    Ok(Cow::Owned(out))
}

/// A protocol 0 `UNICODE` argument: `raw-unicode-escape`, i.e. latin-1 bytes where `\uXXXX`
/// and `\UXXXXXXXX` (after an odd number of backslashes) are code points.
fn raw_unicode_escape(line: &[u8]) -> Result<Cow<'_, str>, String> {
    if line.is_ascii() && !line.contains(&b'\\') {
        // ASCII is UTF-8: borrow.
        return std::str::from_utf8(line).map(Cow::Borrowed).map_err(|e| e.to_string());
    }
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        match (b, line.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push_str("\\\\");
                i += 2;
            }
            (b'\\', Some(&u @ (b'u' | b'U'))) => {
                let n = if u == b'u' { 4 } else { 8 };
                let hex = line.get(i + 2..i + 2 + n).ok_or("UNICODE has a short escape")?;
                let c = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                    .ok_or("UNICODE escape is not a Unicode scalar value")?;
                out.push(c);
                i += 2 + n;
            }
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
