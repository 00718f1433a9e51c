//! Godot 3.x `Variant`: the value type of every RPC argument and remote-set value.
//!
//! [`Variant`] has one variant per Godot 3.x type (NIL through the seven pool arrays). The math
//! types are small `f32` structs like Godot's (`real_t` is `float` in Godot 3 builds). The wire
//! format is Godot 3.2's `encode_variant` / `decode_variant` without full objects (what
//! `var2bytes(v)` and `bytes2var(b)` produce and accept):
//!
//! * a little-endian `u32` header: the type id in the low 8 bits, and bit 16 = "64-bit" for INT
//!   (when the value does not fit in `i32`) and REAL (when the value is not exactly an `f32`), or
//!   "object as id" for OBJECT;
//! * the value, little-endian, every item padded to 4 bytes (strings, byte arrays);
//! * POOL_STRING_ARRAY elements count their terminating NUL in their length, STRING does not;
//! * ARRAY / DICTIONARY: a count, then the elements (key, value pairs), recursively.
//!
//! Decoding is strict and bounded (see [`DecodeLimits`]): every length is checked against what
//! is left, the nesting depth and the memory a decoded value may take are limited, and every
//! failure is a distinct [`DecodeError`]. Objects arrive only as instance ids ([`ObjectId`]);
//! a full object (Godot's `allow_objects`) is refused with [`DecodeError::FullObject`].
//!
//! ```
//! use godot_proto::{Variant, Vector2, DecodeLimits};
//!
//! let v = Variant::Array(vec![Variant::from("hé"), Variant::Vector2(Vector2::new(1.0, 2.5))]);
//! let bytes = v.to_bytes();
//! assert_eq!(Variant::from_bytes(&bytes).unwrap(), v);
//! // a hostile count is refused before anything is allocated
//! let bad = [19, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
//! assert!(Variant::decode(&bad, &DecodeLimits::default()).is_err());
//! ```

pub(crate) mod codec;
mod convert;

pub use codec::{decode_counting, DecodeError, DecodeLimits};
pub use convert::{
    ArgError, ArgErrorKind, Args, FromArgs, FromVariant, FromVariantError, ToArgs, ToVariant,
};

use std::fmt;

/// A Godot 3.x `Variant`.
///
/// `PartialEq` compares floats with `==` (so a NaN is not equal to itself); compare encodings
/// ([`Variant::to_bytes`]) when NaNs matter.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Variant {
    /// `null` (type 0).
    #[default]
    Nil,
    /// `bool` (type 1).
    Bool(bool),
    /// `int` (type 2): 64-bit in Godot 3.
    Int(i64),
    /// `float` (type 3, `REAL`): 64-bit in Godot 3.
    Real(f64),
    /// `String` (type 4).
    String(String),
    /// `Vector2` (type 5).
    Vector2(Vector2),
    /// `Rect2` (type 6).
    Rect2(Rect2),
    /// `Vector3` (type 7).
    Vector3(Vector3),
    /// `Transform2D` (type 8).
    Transform2D(Transform2D),
    /// `Plane` (type 9).
    Plane(Plane),
    /// `Quat` (type 10).
    Quat(Quat),
    /// `AABB` (type 11).
    Aabb(Aabb),
    /// `Basis` (type 12).
    Basis(Basis),
    /// `Transform` (type 13).
    Transform(Transform),
    /// `Color` (type 14).
    Color(Color),
    /// `NodePath` (type 15).
    NodePath(NodePath),
    /// `RID` (type 16): never sent with a value; Godot decodes it as an empty RID.
    Rid,
    /// `Object` (type 17), as an instance id (0 = a null object).
    Object(ObjectId),
    /// `Dictionary` (type 18), in insertion order.
    Dictionary(Dictionary),
    /// `Array` (type 19).
    Array(Vec<Variant>),
    /// `PoolByteArray` (type 20).
    PoolByteArray(Vec<u8>),
    /// `PoolIntArray` (type 21): 32-bit elements.
    PoolIntArray(Vec<i32>),
    /// `PoolRealArray` (type 22): 32-bit elements.
    PoolRealArray(Vec<f32>),
    /// `PoolStringArray` (type 23).
    PoolStringArray(Vec<String>),
    /// `PoolVector2Array` (type 24).
    PoolVector2Array(Vec<Vector2>),
    /// `PoolVector3Array` (type 25).
    PoolVector3Array(Vec<Vector3>),
    /// `PoolColorArray` (type 26).
    PoolColorArray(Vec<Color>),
}

/// The Godot 3.x type ids (`Variant::Type`), as they appear in the low byte of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum VariantType {
    Nil = 0,
    Bool = 1,
    Int = 2,
    Real = 3,
    String = 4,
    Vector2 = 5,
    Rect2 = 6,
    Vector3 = 7,
    Transform2D = 8,
    Plane = 9,
    Quat = 10,
    Aabb = 11,
    Basis = 12,
    Transform = 13,
    Color = 14,
    NodePath = 15,
    Rid = 16,
    Object = 17,
    Dictionary = 18,
    Array = 19,
    PoolByteArray = 20,
    PoolIntArray = 21,
    PoolRealArray = 22,
    PoolStringArray = 23,
    PoolVector2Array = 24,
    PoolVector3Array = 25,
    PoolColorArray = 26,
}

impl VariantType {
    /// The type for a header's low byte, or `None` if Godot 3 has no such type (27 and up).
    pub fn from_id(id: u8) -> Option<VariantType> {
        use VariantType::*;
        const ALL: [VariantType; 27] = [
            Nil,
            Bool,
            Int,
            Real,
            String,
            Vector2,
            Rect2,
            Vector3,
            Transform2D,
            Plane,
            Quat,
            Aabb,
            Basis,
            Transform,
            Color,
            NodePath,
            Rid,
            Object,
            Dictionary,
            Array,
            PoolByteArray,
            PoolIntArray,
            PoolRealArray,
            PoolStringArray,
            PoolVector2Array,
            PoolVector3Array,
            PoolColorArray,
        ];
        ALL.get(usize::from(id)).copied()
    }

    /// Godot's name of the type (`"int"`, `"PoolByteArray"`, ...).
    pub fn name(self) -> &'static str {
        use VariantType::*;
        match self {
            Nil => "null",
            Bool => "bool",
            Int => "int",
            Real => "float",
            String => "String",
            Vector2 => "Vector2",
            Rect2 => "Rect2",
            Vector3 => "Vector3",
            Transform2D => "Transform2D",
            Plane => "Plane",
            Quat => "Quat",
            Aabb => "AABB",
            Basis => "Basis",
            Transform => "Transform",
            Color => "Color",
            NodePath => "NodePath",
            Rid => "RID",
            Object => "Object",
            Dictionary => "Dictionary",
            Array => "Array",
            PoolByteArray => "PoolByteArray",
            PoolIntArray => "PoolIntArray",
            PoolRealArray => "PoolRealArray",
            PoolStringArray => "PoolStringArray",
            PoolVector2Array => "PoolVector2Array",
            PoolVector3Array => "PoolVector3Array",
            PoolColorArray => "PoolColorArray",
        }
    }
}

impl fmt::Display for VariantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Variant {
    /// The Godot type of this value.
    pub fn get_type(&self) -> VariantType {
        match self {
            Variant::Nil => VariantType::Nil,
            Variant::Bool(_) => VariantType::Bool,
            Variant::Int(_) => VariantType::Int,
            Variant::Real(_) => VariantType::Real,
            Variant::String(_) => VariantType::String,
            Variant::Vector2(_) => VariantType::Vector2,
            Variant::Rect2(_) => VariantType::Rect2,
            Variant::Vector3(_) => VariantType::Vector3,
            Variant::Transform2D(_) => VariantType::Transform2D,
            Variant::Plane(_) => VariantType::Plane,
            Variant::Quat(_) => VariantType::Quat,
            Variant::Aabb(_) => VariantType::Aabb,
            Variant::Basis(_) => VariantType::Basis,
            Variant::Transform(_) => VariantType::Transform,
            Variant::Color(_) => VariantType::Color,
            Variant::NodePath(_) => VariantType::NodePath,
            Variant::Rid => VariantType::Rid,
            Variant::Object(_) => VariantType::Object,
            Variant::Dictionary(_) => VariantType::Dictionary,
            Variant::Array(_) => VariantType::Array,
            Variant::PoolByteArray(_) => VariantType::PoolByteArray,
            Variant::PoolIntArray(_) => VariantType::PoolIntArray,
            Variant::PoolRealArray(_) => VariantType::PoolRealArray,
            Variant::PoolStringArray(_) => VariantType::PoolStringArray,
            Variant::PoolVector2Array(_) => VariantType::PoolVector2Array,
            Variant::PoolVector3Array(_) => VariantType::PoolVector3Array,
            Variant::PoolColorArray(_) => VariantType::PoolColorArray,
        }
    }

    /// `true` for [`Variant::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Variant::Nil)
    }

    /// Converts into a Rust type (see [`FromVariant`]).
    ///
    /// ```
    /// # use godot_proto::Variant;
    /// let v = Variant::Array(vec![Variant::Int(1), Variant::Int(2)]);
    /// assert_eq!(v.try_to::<Vec<u8>>().unwrap(), [1, 2]);
    /// assert!(Variant::from("x").try_to::<i32>().is_err());
    /// ```
    pub fn try_to<T: FromVariant>(self) -> Result<T, FromVariantError> {
        T::from_variant(self)
    }

    /// The value of a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Variant::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value of an `int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Variant::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of a `float`, or of an `int` as a float.
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Variant::Real(r) => Some(*r),
            Variant::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text of a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Variant::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an `Array`.
    pub fn as_array(&self) -> Option<&[Variant]> {
        match self {
            Variant::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The pairs of a `Dictionary`.
    pub fn as_dictionary(&self) -> Option<&Dictionary> {
        match self {
            Variant::Dictionary(d) => Some(d),
            _ => None,
        }
    }
}

impl From<Vec<Variant>> for Variant {
    /// An `Array`.
    fn from(a: Vec<Variant>) -> Variant {
        Variant::Array(a)
    }
}

impl<T: Into<Variant>> From<Option<T>> for Variant {
    /// `None` is `null`.
    fn from(o: Option<T>) -> Variant {
        o.map_or(Variant::Nil, Into::into)
    }
}

/// `Vector2`: two `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vector2 {
    /// x
    pub x: f32,
    /// y
    pub y: f32,
}

impl Vector2 {
    /// A vector from its components.
    pub const fn new(x: f32, y: f32) -> Self {
        Vector2 { x, y }
    }
}

/// `Vector3`: three `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vector3 {
    /// x
    pub x: f32,
    /// y
    pub y: f32,
    /// z
    pub z: f32,
}

impl Vector3 {
    /// A vector from its components.
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Vector3 { x, y, z }
    }
}

/// `Rect2`: position and size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect2 {
    /// The top-left corner.
    pub position: Vector2,
    /// Width and height.
    pub size: Vector2,
}

/// `Transform2D`: the x and y axes and the origin (Godot's `elements[0..3]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform2D {
    /// `elements[0]`
    pub x: Vector2,
    /// `elements[1]`
    pub y: Vector2,
    /// `elements[2]`
    pub origin: Vector2,
}

/// `Plane`: a normal and the distance from the origin.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Plane {
    /// The normal.
    pub normal: Vector3,
    /// The distance `d`.
    pub d: f32,
}

/// `Quat`: x, y, z, w.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quat {
    /// x
    pub x: f32,
    /// y
    pub y: f32,
    /// z
    pub z: f32,
    /// w
    pub w: f32,
}

/// `AABB`: position and size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aabb {
    /// The minimum corner.
    pub position: Vector3,
    /// The extent.
    pub size: Vector3,
}

/// `Basis`: three rows (Godot's `elements[0..3]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Basis {
    /// `elements[0..3]`, each a row.
    pub rows: [Vector3; 3],
}

/// `Transform`: a basis and an origin.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform {
    /// The basis.
    pub basis: Basis,
    /// The origin.
    pub origin: Vector3,
}

/// `Color`: r, g, b, a as `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Color {
    /// red
    pub r: f32,
    /// green
    pub g: f32,
    /// blue
    pub b: f32,
    /// alpha
    pub a: f32,
}

impl Color {
    /// A color from its components.
    pub const fn new(r: f32, g: f32, b: f32, a: f32) -> Self {
        Color { r, g, b, a }
    }
}

/// An object's instance id, the only form of `Object` this crate sends and accepts
/// (Godot's `EncodedObjectAsID`). `ObjectId(0)` is a null object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ObjectId(pub u64);

/// A `Dictionary`: key/value pairs in insertion order (Godot's dictionaries are ordered).
///
/// Decoding keeps pairs as they arrive; [`Dictionary::insert`] replaces an equal key in place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dictionary(pub Vec<(Variant, Variant)>);

impl Dictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dictionary(Vec::new())
    }

    /// The value of the last pair whose key equals `key`.
    pub fn get(&self, key: &Variant) -> Option<&Variant> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, in place if the key is present, at the end otherwise.
    pub fn insert(&mut self, key: Variant, value: Variant) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` if there is no pair.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A `NodePath`: names separated by `/`, then subnames (properties) after `:`.
///
/// `"/root/Game:position:x"` is absolute, with names `["root", "Game"]` and subnames
/// `["position", "x"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodePath {
    /// The node names.
    pub names: Vec<String>,
    /// The subnames (property path).
    pub subnames: Vec<String>,
    /// `true` if the path starts with `/`.
    pub absolute: bool,
}

impl NodePath {
    /// Parses a path the way Godot 3's `NodePath(String)` does for ordinary paths: a leading `/`
    /// makes it absolute, `/` separates names, and everything after the first `:` is
    /// `:`-separated subnames. Empty segments are skipped.
    pub fn parse(path: &str) -> NodePath {
        let (absolute, rest) = match path.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, path),
        };
        let (names_part, sub_part) = match rest.find(':') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let names = names_part
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let subnames = sub_part
            .map(|s| {
                s.split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        NodePath {
            names,
            subnames,
            absolute,
        }
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.absolute {
            f.write_str("/")?;
        }
        for (i, n) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(n)?;
        }
        for s in &self.subnames {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

impl From<&str> for NodePath {
    fn from(s: &str) -> Self {
        NodePath::parse(s)
    }
}
