//! The Godot 3.2 `encode_variant` / `decode_variant` wire format (without full objects).

use std::mem::size_of;

use super::{
    Aabb, Basis, Color, Dictionary, NodePath, ObjectId, Plane, Quat, Rect2, Transform, Transform2D,
    Variant, VariantType, Vector2, Vector3,
};

/// Header bit 16: INT/REAL carry 64 bits; OBJECT is an instance id.
pub(crate) const FLAG_64: u32 = 1 << 16;
/// The NODE_PATH "new format" marker on the name count.
const NODE_PATH_NEW_FORMAT: u32 = 0x8000_0000;

/// Bounds for decoding untrusted bytes.
///
/// `max_alloc` bounds the memory a decoded value takes (the `Vec`s' element storage and the
/// string bytes, counted before anything is allocated); `max_depth` bounds the nesting of
/// arrays and dictionaries (Godot itself has no limit and recurses on the stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The deepest nesting of ARRAY / DICTIONARY accepted (a top-level array is depth 1).
    pub max_depth: usize,
    /// The most bytes of memory the decoded value(s) may take.
    pub max_alloc: usize,
}

impl Default for DecodeLimits {
    /// Depth 64 and 8 MiB.
    fn default() -> Self {
        DecodeLimits {
            max_depth: 64,
            max_alloc: 8 << 20,
        }
    }
}

/// Why bytes are not a valid Godot 3.2 Variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the value does.
    #[error("truncated Variant: {what} needs {needed} bytes at offset {offset}, {remaining} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Its byte offset in the input.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// The header's type byte is not a Godot 3 type (27 and up).
    #[error("unknown Variant type {type_id} at offset {offset}")]
    UnknownType {
        /// The type byte.
        type_id: u8,
        /// Its byte offset in the input.
        offset: usize,
    },
    /// A count or length is negative (bit 31 set where Godot reads a signed count).
    #[error("negative {what} {value} at offset {offset}")]
    NegativeLength {
        /// What the length counts.
        what: &'static str,
        /// The raw value.
        value: u32,
        /// Its byte offset in the input.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The offset of the string bytes.
        offset: usize,
    },
    /// A NODE_PATH in the pre-3.0 format (a plain string), which Godot 3 refuses too.
    #[error("NodePath at offset {offset} uses the old (pre-3.0) format")]
    OldNodePath {
        /// Its byte offset in the input.
        offset: usize,
    },
    /// A full object (class name and properties); only instance ids are supported, like
    /// Godot's default (`allow_object_decoding = false`).
    #[error(
        "full object at offset {offset}: object decoding is not supported (only instance ids)"
    )]
    FullObject {
        /// Its byte offset in the input.
        offset: usize,
    },
    /// Arrays/dictionaries nest deeper than [`DecodeLimits::max_depth`].
    #[error("Variant nests deeper than the limit of {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The decoded value would take more than [`DecodeLimits::max_alloc`] bytes.
    #[error("decoded Variant would need more than the limit of {limit} bytes of memory")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Bytes left over after a value that should fill its input.
    #[error("{extra} bytes after the Variant")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

#[inline]
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn put_f32(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn pad4(out: &mut Vec<u8>, len: usize) {
    let pad = (4 - len % 4) % 4;
    out.extend_from_slice(&[0u8; 3][..pad]);
}

/// Appends a STRING's body: `u32 length | UTF-8 | zero padding to 4`.
#[inline]
pub(crate) fn put_string_body(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
    pad4(out, s.len());
}

/// Appends a whole INT variant, 32-bit if it fits (like Godot).
#[inline]
pub(crate) fn put_int(out: &mut Vec<u8>, v: i64) {
    if let Ok(small) = i32::try_from(v) {
        put_u32(out, VariantType::Int as u32);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        put_u32(out, VariantType::Int as u32 | FLAG_64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a whole REAL variant, 32-bit if the `f32` round trip is exact (like Godot; a NaN
/// therefore always takes 64 bits).
#[inline]
pub(crate) fn put_real(out: &mut Vec<u8>, v: f64) {
    let f = v as f32;
    #[allow(clippy::float_cmp)]
    if f64::from(f) == v {
        put_u32(out, VariantType::Real as u32);
        put_f32(out, f);
    } else {
        put_u32(out, VariantType::Real as u32 | FLAG_64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_v2(out: &mut Vec<u8>, v: &Vector2) {
    put_f32(out, v.x);
    put_f32(out, v.y);
}

fn put_v3(out: &mut Vec<u8>, v: &Vector3) {
    put_f32(out, v.x);
    put_f32(out, v.y);
    put_f32(out, v.z);
}

fn put_color(out: &mut Vec<u8>, c: &Color) {
    put_f32(out, c.r);
    put_f32(out, c.g);
    put_f32(out, c.b);
    put_f32(out, c.a);
}

fn put_basis(out: &mut Vec<u8>, b: &Basis) {
    for row in &b.rows {
        put_v3(out, row);
    }
}

impl Variant {
    /// Appends the encoding of this value to `out` (Godot 3.2's `encode_variant` with
    /// `full_objects = false`; what `var2bytes` returns).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let header = self.get_type() as u32;
        match self {
            Variant::Nil | Variant::Rid => put_u32(out, header),
            Variant::Bool(b) => {
                put_u32(out, header);
                put_u32(out, u32::from(*b));
            }
            Variant::Int(i) => put_int(out, *i),
            Variant::Real(r) => put_real(out, *r),
            Variant::String(s) => {
                put_u32(out, header);
                put_string_body(out, s);
            }
            Variant::Vector2(v) => {
                put_u32(out, header);
                put_v2(out, v);
            }
            Variant::Rect2(r) => {
                put_u32(out, header);
                put_v2(out, &r.position);
                put_v2(out, &r.size);
            }
            Variant::Vector3(v) => {
                put_u32(out, header);
                put_v3(out, v);
            }
            Variant::Transform2D(t) => {
                put_u32(out, header);
                put_v2(out, &t.x);
                put_v2(out, &t.y);
                put_v2(out, &t.origin);
            }
            Variant::Plane(p) => {
                put_u32(out, header);
                put_v3(out, &p.normal);
                put_f32(out, p.d);
            }
            Variant::Quat(q) => {
                put_u32(out, header);
                put_color(
                    out,
                    &Color {
                        r: q.x,
                        g: q.y,
                        b: q.z,
                        a: q.w,
                    },
                );
            }
            Variant::Aabb(a) => {
                put_u32(out, header);
                put_v3(out, &a.position);
                put_v3(out, &a.size);
            }
            Variant::Basis(b) => {
                put_u32(out, header);
                put_basis(out, b);
            }
            Variant::Transform(t) => {
                put_u32(out, header);
                put_basis(out, &t.basis);
                put_v3(out, &t.origin);
            }
            Variant::Color(c) => {
                put_u32(out, header);
                put_color(out, c);
            }
            Variant::NodePath(np) => {
                put_u32(out, header);
                put_u32(out, np.names.len() as u32 | NODE_PATH_NEW_FORMAT);
                put_u32(out, np.subnames.len() as u32);
                put_u32(out, u32::from(np.absolute));
                for s in np.names.iter().chain(&np.subnames) {
                    put_string_body(out, s);
                }
            }
            Variant::Object(ObjectId(id)) => {
                put_u32(out, header | FLAG_64);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Variant::Dictionary(d) => {
                put_u32(out, header);
                put_u32(out, d.0.len() as u32);
                for (k, v) in &d.0 {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Variant::Array(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for v in a {
                    v.encode(out);
                }
            }
            Variant::PoolByteArray(b) => {
                put_u32(out, header);
                put_u32(out, b.len() as u32);
                out.extend_from_slice(b);
                pad4(out, b.len());
            }
            Variant::PoolIntArray(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for i in a {
                    out.extend_from_slice(&i.to_le_bytes());
                }
            }
            Variant::PoolRealArray(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for f in a {
                    put_f32(out, *f);
                }
            }
            Variant::PoolStringArray(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for s in a {
                    // The quirk: the length counts a terminating NUL, which is sent.
                    put_u32(out, s.len() as u32 + 1);
                    out.extend_from_slice(s.as_bytes());
                    out.push(0);
                    pad4(out, s.len() + 1);
                }
            }
            Variant::PoolVector2Array(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for v in a {
                    put_v2(out, v);
                }
            }
            Variant::PoolVector3Array(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for v in a {
                    put_v3(out, v);
                }
            }
            Variant::PoolColorArray(a) => {
                put_u32(out, header);
                put_u32(out, a.len() as u32);
                for c in a {
                    put_color(out, c);
                }
            }
        }
    }

    /// The encoding of this value as a new buffer (`var2bytes`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one value from the start of `bytes` (`bytes2var` without objects) and returns it
    /// with the number of bytes it took. Bytes after the value are left alone.
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<(Variant, usize), DecodeError> {
        let mut d = Decoder::new(limits);
        let mut r = Reader::new(bytes);
        let v = d.variant(&mut r, 0)?;
        Ok((v, r.pos))
    }

    /// Decodes a buffer that holds exactly one value, with the default [`DecodeLimits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Variant, DecodeError> {
        let (v, used) = Variant::decode(bytes, &DecodeLimits::default())?;
        if used != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                extra: bytes.len() - used,
            });
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A cursor over untrusted bytes; every read is checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    #[inline]
    fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        self.u32(what).map(f32::from_bits)
    }

    fn v2(&mut self) -> Result<Vector2, DecodeError> {
        Ok(Vector2 {
            x: self.f32("Vector2")?,
            y: self.f32("Vector2")?,
        })
    }

    fn v3(&mut self) -> Result<Vector3, DecodeError> {
        Ok(Vector3 {
            x: self.f32("Vector3")?,
            y: self.f32("Vector3")?,
            z: self.f32("Vector3")?,
        })
    }

    fn color(&mut self) -> Result<Color, DecodeError> {
        Ok(Color {
            r: self.f32("Color")?,
            g: self.f32("Color")?,
            b: self.f32("Color")?,
            a: self.f32("Color")?,
        })
    }

    fn basis(&mut self) -> Result<Basis, DecodeError> {
        Ok(Basis {
            rows: [self.v3()?, self.v3()?, self.v3()?],
        })
    }

    /// Checks that `size` bytes are present without consuming them.
    #[inline]
    fn ensure(&self, size: u64, what: &'static str) -> Result<(), DecodeError> {
        if size > self.remaining() as u64 {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: usize::try_from(size).unwrap_or(usize::MAX),
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    /// A signed 32-bit count (Godot reads them as `int32_t`).
    #[inline]
    fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let raw = self.u32(what)?;
        if raw & 0x8000_0000 != 0 {
            return Err(DecodeError::NegativeLength {
                what,
                value: raw,
                offset,
            });
        }
        Ok(raw as usize)
    }
}

/// Decodes values while charging their memory to one budget.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_depth: usize,
    max_alloc: usize,
    /// Bytes charged so far.
    pub(crate) charged: usize,
}

impl Decoder {
    pub(crate) fn new(limits: &DecodeLimits) -> Self {
        Decoder {
            max_depth: limits.max_depth,
            max_alloc: limits.max_alloc,
            charged: 0,
        }
    }

    /// Charges `count` items of `item` bytes before they are allocated.
    #[inline]
    fn charge(&mut self, count: usize, item: usize) -> Result<(), DecodeError> {
        let total = count
            .checked_mul(item)
            .and_then(|b| b.checked_add(self.charged))
            .filter(|&t| t <= self.max_alloc)
            .ok_or(DecodeError::TooLarge {
                limit: self.max_alloc,
            })?;
        self.charged = total;
        Ok(())
    }

    /// A string of `len` bytes (padded to 4 on the wire), cut at the first NUL like Godot's
    /// `parse_utf8`.
    fn string_bytes(&mut self, r: &mut Reader<'_>, len: usize) -> Result<String, DecodeError> {
        let padded = len as u64 + ((4 - len as u64 % 4) % 4);
        r.ensure(padded, "string")?;
        let offset = r.pos;
        let raw = r.take(len, "string")?;
        r.take(padded as usize - len, "string padding")?;
        let raw = match raw.iter().position(|&b| b == 0) {
            Some(nul) => &raw[..nul],
            None => raw,
        };
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { offset })?;
        self.charge(s.len(), 1)?;
        Ok(s.to_owned())
    }

    fn string(&mut self, r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let len = r.count("string length")?;
        self.string_bytes(r, len)
    }

    /// A `count` of items that take at least `wire_size` bytes each on the wire, checked against
    /// what is left and charged at `mem_size` bytes each.
    fn items(
        &mut self,
        r: &mut Reader<'_>,
        what: &'static str,
        wire_size: u64,
        mem_size: usize,
    ) -> Result<usize, DecodeError> {
        let count = r.count(what)?;
        r.ensure(count as u64 * wire_size, what)?;
        self.charge(count, mem_size)?;
        Ok(count)
    }

    pub(crate) fn variant(
        &mut self,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Variant, DecodeError> {
        let offset = r.pos;
        let header = r.u32("Variant header")?;
        let type_id = (header & 0xff) as u8;
        let ty =
            VariantType::from_id(type_id).ok_or(DecodeError::UnknownType { type_id, offset })?;
        let wide = header & FLAG_64 != 0;
        Ok(match ty {
            VariantType::Nil => Variant::Nil,
            VariantType::Bool => Variant::Bool(r.u32("bool")? != 0),
            VariantType::Int => {
                if wide {
                    Variant::Int(r.u64("int64")? as i64)
                } else {
                    Variant::Int(i64::from(r.u32("int32")? as i32))
                }
            }
            VariantType::Real => {
                if wide {
                    Variant::Real(f64::from_bits(r.u64("double")?))
                } else {
                    Variant::Real(f64::from(r.f32("float")?))
                }
            }
            VariantType::String => Variant::String(self.string(r)?),
            VariantType::Vector2 => Variant::Vector2(r.v2()?),
            VariantType::Rect2 => Variant::Rect2(Rect2 {
                position: r.v2()?,
                size: r.v2()?,
            }),
            VariantType::Vector3 => Variant::Vector3(r.v3()?),
            VariantType::Transform2D => Variant::Transform2D(Transform2D {
                x: r.v2()?,
                y: r.v2()?,
                origin: r.v2()?,
            }),
            VariantType::Plane => Variant::Plane(Plane {
                normal: r.v3()?,
                d: r.f32("Plane")?,
            }),
            VariantType::Quat => {
                let c = r.color()?;
                Variant::Quat(Quat {
                    x: c.r,
                    y: c.g,
                    z: c.b,
                    w: c.a,
                })
            }
            VariantType::Aabb => Variant::Aabb(Aabb {
                position: r.v3()?,
                size: r.v3()?,
            }),
            VariantType::Basis => Variant::Basis(r.basis()?),
            VariantType::Transform => Variant::Transform(Transform {
                basis: r.basis()?,
                origin: r.v3()?,
            }),
            VariantType::Color => Variant::Color(r.color()?),
            VariantType::NodePath => {
                let names_raw = r.u32("NodePath name count")?;
                if names_raw & NODE_PATH_NEW_FORMAT == 0 {
                    return Err(DecodeError::OldNodePath { offset });
                }
                let names = (names_raw & !NODE_PATH_NEW_FORMAT) as u64;
                let mut subnames = u64::from(r.u32("NodePath subname count")?);
                let flags = r.u32("NodePath flags")?;
                if flags & 2 != 0 {
                    // The obsolete format kept the property apart from the subpath.
                    subnames += 1;
                }
                let total = names + subnames;
                r.ensure(total * 4, "NodePath names")?;
                // Both counts are now known to be below the input length.
                self.charge(total as usize, size_of::<String>())?;
                let mut np = NodePath {
                    names: Vec::with_capacity(names as usize),
                    subnames: Vec::with_capacity(subnames as usize),
                    absolute: flags & 1 != 0,
                };
                for i in 0..total {
                    let s = self.string(r)?;
                    if i < names {
                        np.names.push(s);
                    } else {
                        np.subnames.push(s);
                    }
                }
                Variant::NodePath(np)
            }
            VariantType::Rid => Variant::Rid,
            VariantType::Object => {
                if !wide {
                    return Err(DecodeError::FullObject { offset });
                }
                Variant::Object(ObjectId(r.u64("object id")?))
            }
            VariantType::Dictionary => {
                if depth + 1 > self.max_depth {
                    return Err(DecodeError::TooDeep {
                        limit: self.max_depth,
                    });
                }
                // Bit 31 is Godot's unused "shared" flag, masked off like Godot does.
                let count = (r.u32("Dictionary size")? & 0x7fff_ffff) as usize;
                r.ensure(count as u64 * 8, "Dictionary entries")?;
                self.charge(count, size_of::<(Variant, Variant)>())?;
                let mut d = Vec::with_capacity(count);
                for _ in 0..count {
                    let k = self.variant(r, depth + 1)?;
                    let v = self.variant(r, depth + 1)?;
                    d.push((k, v));
                }
                Variant::Dictionary(Dictionary(d))
            }
            VariantType::Array => {
                if depth + 1 > self.max_depth {
                    return Err(DecodeError::TooDeep {
                        limit: self.max_depth,
                    });
                }
                let count = (r.u32("Array size")? & 0x7fff_ffff) as usize;
                r.ensure(count as u64 * 4, "Array elements")?;
                self.charge(count, size_of::<Variant>())?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(self.variant(r, depth + 1)?);
                }
                Variant::Array(a)
            }
            VariantType::PoolByteArray => {
                let count = self.items(r, "PoolByteArray", 1, 1)?;
                let padded = count as u64 + ((4 - count as u64 % 4) % 4);
                r.ensure(padded, "PoolByteArray padding")?;
                let bytes = r.take(count, "PoolByteArray")?.to_vec();
                r.take(padded as usize - count, "PoolByteArray padding")?;
                Variant::PoolByteArray(bytes)
            }
            VariantType::PoolIntArray => {
                let count = self.items(r, "PoolIntArray", 4, 4)?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(r.u32("PoolIntArray")? as i32);
                }
                Variant::PoolIntArray(a)
            }
            VariantType::PoolRealArray => {
                let count = self.items(r, "PoolRealArray", 4, 4)?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(r.f32("PoolRealArray")?);
                }
                Variant::PoolRealArray(a)
            }
            VariantType::PoolStringArray => {
                let count = self.items(r, "PoolStringArray", 4, size_of::<String>())?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(self.string(r)?);
                }
                Variant::PoolStringArray(a)
            }
            VariantType::PoolVector2Array => {
                let count = self.items(r, "PoolVector2Array", 8, size_of::<Vector2>())?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(r.v2()?);
                }
                Variant::PoolVector2Array(a)
            }
            VariantType::PoolVector3Array => {
                let count = self.items(r, "PoolVector3Array", 12, size_of::<Vector3>())?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(r.v3()?);
                }
                Variant::PoolVector3Array(a)
            }
            VariantType::PoolColorArray => {
                let count = self.items(r, "PoolColorArray", 16, size_of::<Color>())?;
                let mut a = Vec::with_capacity(count);
                for _ in 0..count {
                    a.push(r.color()?);
                }
                Variant::PoolColorArray(a)
            }
        })
    }
}

/// Decodes one value and also returns the bytes of memory charged to the limit (for tests and
/// fuzzing: the charge is an upper bound of what the decoder allocated).
pub fn decode_counting(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<(Variant, usize, usize), (DecodeError, usize)> {
    let mut d = Decoder::new(limits);
    let mut r = Reader::new(bytes);
    match d.variant(&mut r, 0) {
        Ok(v) => Ok((v, r.pos, d.charged)),
        Err(e) => Err((e, d.charged)),
    }
}
