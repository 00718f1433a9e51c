//! Conversions between [`Variant`] and Rust types, and typed argument lists for RPC handlers.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::codec::{put_int, put_real, put_string_body, put_u32};
use super::{
    Aabb, Basis, Color, Dictionary, NodePath, ObjectId, Plane, Quat, Rect2, Transform, Transform2D,
    Variant, VariantType, Vector2, Vector3,
};

/// A Rust value that can become a [`Variant`].
///
/// `encode_variant` writes the wire form directly; the provided implementations for numbers,
/// `bool` and strings do so without building a `Variant` (no allocation).
pub trait ToVariant {
    /// The value as a `Variant`.
    fn to_variant(&self) -> Variant;

    /// Appends the encoded value (the same bytes as `self.to_variant().encode(out)`).
    fn encode_variant(&self, out: &mut Vec<u8>) {
        self.to_variant().encode(out)
    }
}

/// Why a [`Variant`] does not convert to the Rust type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FromVariantError {
    /// The Variant has another type.
    #[error("expected {expected}, got {found}")]
    WrongType {
        /// The Rust type's Godot equivalent.
        expected: &'static str,
        /// What arrived.
        found: VariantType,
    },
    /// An `int` that does not fit the Rust integer type.
    #[error("{value} does not fit in {expected}")]
    OutOfRange {
        /// The Rust type.
        expected: &'static str,
        /// The value.
        value: i64,
    },
    /// An element of an array or dictionary did not convert.
    #[error("element {index}: {source}")]
    Element {
        /// Its index (pairs count once in a dictionary).
        index: usize,
        /// Why.
        source: Box<FromVariantError>,
    },
}

/// A Rust value that can be taken out of a [`Variant`].
pub trait FromVariant: Sized {
    /// Converts, consuming the Variant (strings and arrays move, nothing is copied).
    fn from_variant(v: Variant) -> Result<Self, FromVariantError>;

    /// For `Vec<Self>`: takes the matching pool array (e.g. `PoolByteArray` for `u8`), or gives
    /// the Variant back. The default accepts no pool array.
    #[doc(hidden)]
    fn vec_from_pool(v: Variant) -> Result<Result<Vec<Self>, FromVariantError>, Variant> {
        Err(v)
    }
}

fn wrong(expected: &'static str, v: &Variant) -> FromVariantError {
    FromVariantError::WrongType {
        expected,
        found: v.get_type(),
    }
}

impl ToVariant for Variant {
    fn to_variant(&self) -> Variant {
        self.clone()
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
}

impl FromVariant for Variant {
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        Ok(v)
    }
}

impl ToVariant for bool {
    fn to_variant(&self) -> Variant {
        Variant::Bool(*self)
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        put_u32(out, VariantType::Bool as u32);
        put_u32(out, u32::from(*self));
    }
}

impl FromVariant for bool {
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        match v {
            Variant::Bool(b) => Ok(b),
            other => Err(wrong("bool", &other)),
        }
    }
}

macro_rules! int_conversions {
    ($($t:ty),*) => {$(
        impl ToVariant for $t {
            fn to_variant(&self) -> Variant {
                Variant::Int(i64::from(*self))
            }
            fn encode_variant(&self, out: &mut Vec<u8>) {
                put_int(out, i64::from(*self))
            }
        }
        impl FromVariant for $t {
            fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
                match v {
                    Variant::Int(i) => <$t>::try_from(i).map_err(|_| FromVariantError::OutOfRange {
                        expected: stringify!($t),
                        value: i,
                    }),
                    other => Err(wrong("int", &other)),
                }
            }
            fn vec_from_pool(v: Variant) -> Result<Result<Vec<Self>, FromVariantError>, Variant> {
                int_vec_from_pool::<$t>(v, stringify!($t))
            }
        }
    )*};
}

fn int_vec_from_pool<T: TryFrom<i64>>(
    v: Variant,
    name: &'static str,
) -> Result<Result<Vec<T>, FromVariantError>, Variant> {
    let conv = |index: usize, i: i64| {
        T::try_from(i).map_err(|_| FromVariantError::Element {
            index,
            source: Box::new(FromVariantError::OutOfRange {
                expected: name,
                value: i,
            }),
        })
    };
    match v {
        Variant::PoolByteArray(b) => Ok(b
            .into_iter()
            .enumerate()
            .map(|(i, x)| conv(i, i64::from(x)))
            .collect()),
        Variant::PoolIntArray(a) => Ok(a
            .into_iter()
            .enumerate()
            .map(|(i, x)| conv(i, i64::from(x)))
            .collect()),
        other => Err(other),
    }
}

int_conversions!(i8, i16, i32, i64, u8, u16, u32);

impl ToVariant for f64 {
    fn to_variant(&self) -> Variant {
        Variant::Real(*self)
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        put_real(out, *self)
    }
}

impl FromVariant for f64 {
    /// From `float`, or from `int` (a Godot caller may pass `1` for a float parameter).
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        match v {
            Variant::Real(r) => Ok(r),
            Variant::Int(i) => Ok(i as f64),
            other => Err(wrong("float", &other)),
        }
    }
}

impl ToVariant for f32 {
    fn to_variant(&self) -> Variant {
        Variant::Real(f64::from(*self))
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        put_real(out, f64::from(*self))
    }
}

impl FromVariant for f32 {
    /// From `float` (rounded to `f32`) or `int`.
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        f64::from_variant(v).map(|f| f as f32)
    }
    fn vec_from_pool(v: Variant) -> Result<Result<Vec<Self>, FromVariantError>, Variant> {
        match v {
            Variant::PoolRealArray(a) => Ok(Ok(a)),
            other => Err(other),
        }
    }
}

impl ToVariant for str {
    fn to_variant(&self) -> Variant {
        Variant::String(self.to_owned())
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        put_u32(out, VariantType::String as u32);
        put_string_body(out, self)
    }
}

impl ToVariant for String {
    fn to_variant(&self) -> Variant {
        Variant::String(self.clone())
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        self.as_str().encode_variant(out)
    }
}

impl FromVariant for String {
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        match v {
            Variant::String(s) => Ok(s),
            other => Err(wrong("String", &other)),
        }
    }
    fn vec_from_pool(v: Variant) -> Result<Result<Vec<Self>, FromVariantError>, Variant> {
        match v {
            Variant::PoolStringArray(a) => Ok(Ok(a)),
            other => Err(other),
        }
    }
}

impl<T: ToVariant + ?Sized> ToVariant for &T {
    fn to_variant(&self) -> Variant {
        (**self).to_variant()
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        (**self).encode_variant(out)
    }
}

macro_rules! struct_conversions {
    ($($variant:ident($t:ident) => $name:literal),*) => {$(
        impl ToVariant for $t {
            fn to_variant(&self) -> Variant {
                Variant::$variant(Clone::clone(self))
            }
        }
        impl FromVariant for $t {
            fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
                match v {
                    Variant::$variant(x) => Ok(x),
                    other => Err(wrong($name, &other)),
                }
            }
        }
    )*};
}

struct_conversions!(Rect2(Rect2) => "Rect2", Transform2D(Transform2D) => "Transform2D",
    Plane(Plane) => "Plane", Quat(Quat) => "Quat", Aabb(Aabb) => "AABB", Basis(Basis) => "Basis",
    Transform(Transform) => "Transform", NodePath(NodePath) => "NodePath",
    Object(ObjectId) => "Object", Dictionary(Dictionary) => "Dictionary");

macro_rules! struct_pool_conversions {
    ($($t:ident => $name:literal, $pool:ident),*) => {$(
        impl ToVariant for $t {
            fn to_variant(&self) -> Variant {
                Variant::$t(*self)
            }
        }
        impl FromVariant for $t {
            fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
                match v {
                    Variant::$t(x) => Ok(x),
                    other => Err(wrong($name, &other)),
                }
            }
            fn vec_from_pool(v: Variant) -> Result<Result<Vec<Self>, FromVariantError>, Variant> {
                match v {
                    Variant::$pool(a) => Ok(Ok(a)),
                    other => Err(other),
                }
            }
        }
    )*};
}

struct_pool_conversions!(Vector2 => "Vector2", PoolVector2Array, Vector3 => "Vector3",
    PoolVector3Array, Color => "Color", PoolColorArray);

impl<T: ToVariant> ToVariant for Option<T> {
    /// `None` is `null`.
    fn to_variant(&self) -> Variant {
        match self {
            Some(v) => v.to_variant(),
            None => Variant::Nil,
        }
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.encode_variant(out),
            None => put_u32(out, VariantType::Nil as u32),
        }
    }
}

impl<T: FromVariant> FromVariant for Option<T> {
    /// `null` is `None`.
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        match v {
            Variant::Nil => Ok(None),
            other => T::from_variant(other).map(Some),
        }
    }
}

impl<T: ToVariant> ToVariant for [T] {
    /// An `Array`.
    fn to_variant(&self) -> Variant {
        Variant::Array(self.iter().map(ToVariant::to_variant).collect())
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        put_u32(out, VariantType::Array as u32);
        put_u32(out, self.len() as u32);
        for v in self {
            v.encode_variant(out);
        }
    }
}

impl<T: ToVariant> ToVariant for Vec<T> {
    /// An `Array` (build a `Variant::Pool*Array` to send a pool array).
    fn to_variant(&self) -> Variant {
        self.as_slice().to_variant()
    }
    fn encode_variant(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_variant(out)
    }
}

impl<T: FromVariant> FromVariant for Vec<T> {
    /// From an `Array` (each element converted), or from the matching pool array:
    /// `PoolByteArray`/`PoolIntArray` for integers, `PoolRealArray` for `f32`,
    /// `PoolStringArray` for `String`, `PoolVector2Array`, `PoolVector3Array`, `PoolColorArray`.
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        let v = match T::vec_from_pool(v) {
            Ok(done) => return done,
            Err(v) => v,
        };
        match v {
            Variant::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(index, e)| {
                    T::from_variant(e).map_err(|source| FromVariantError::Element {
                        index,
                        source: Box::new(source),
                    })
                })
                .collect(),
            other => Err(wrong("Array", &other)),
        }
    }
}

/// The pairs of a map as a `Dictionary`, in the map's iteration order.
fn map_to_variant<'a, K: ToVariant + 'a, V: ToVariant + 'a>(
    pairs: impl Iterator<Item = (&'a K, &'a V)>,
) -> Variant {
    Variant::Dictionary(Dictionary(
        pairs
            .map(|(k, v)| (k.to_variant(), v.to_variant()))
            .collect(),
    ))
}

/// A map from a `Dictionary`; a repeated key keeps the last value.
fn map_from_variant<K: FromVariant, V: FromVariant, M: FromIterator<(K, V)>>(
    v: Variant,
) -> Result<M, FromVariantError> {
    match v {
        Variant::Dictionary(d) => {
            d.0.into_iter()
                .enumerate()
                .map(|(index, (k, v))| {
                    let elem = |source| FromVariantError::Element {
                        index,
                        source: Box::new(source),
                    };
                    Ok((
                        K::from_variant(k).map_err(elem)?,
                        V::from_variant(v).map_err(elem)?,
                    ))
                })
                .collect()
        }
        other => Err(wrong("Dictionary", &other)),
    }
}

impl<K: ToVariant, V: ToVariant, S> ToVariant for HashMap<K, V, S> {
    /// A `Dictionary` (in the map's iteration order).
    fn to_variant(&self) -> Variant {
        map_to_variant(self.iter())
    }
}

impl<K: FromVariant + Eq + Hash, V: FromVariant> FromVariant for HashMap<K, V> {
    /// From a `Dictionary`; a repeated key keeps the last value.
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        map_from_variant(v)
    }
}

impl<K: ToVariant, V: ToVariant> ToVariant for BTreeMap<K, V> {
    /// A `Dictionary`, in key order.
    fn to_variant(&self) -> Variant {
        map_to_variant(self.iter())
    }
}

impl<K: FromVariant + Ord, V: FromVariant> FromVariant for BTreeMap<K, V> {
    /// From a `Dictionary`; a repeated key keeps the last value.
    fn from_variant(v: Variant) -> Result<Self, FromVariantError> {
        map_from_variant(v)
    }
}

macro_rules! from_for_variant {
    ($($t:ty),*) => {$(
        impl From<$t> for Variant {
            fn from(v: $t) -> Variant {
                v.to_variant()
            }
        }
    )*};
}
from_for_variant!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    f32,
    f64,
    &str,
    String,
    Vector2,
    Vector3,
    Rect2,
    Transform2D,
    Plane,
    Quat,
    Aabb,
    Basis,
    Transform,
    Color,
    NodePath,
    ObjectId,
    Dictionary
);

// ---------------------------------------------------------------------------------------------
// Argument lists
// ---------------------------------------------------------------------------------------------

/// Why the arguments of a call do not fit the handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}", self.describe())]
pub struct ArgError {
    /// The argument's position (0-based); `None` for a count mismatch.
    pub index: Option<usize>,
    /// The argument's name, when the handler was registered with names.
    pub name: Option<String>,
    /// What is wrong.
    pub kind: ArgErrorKind,
}

impl ArgError {
    fn describe(&self) -> String {
        match (&self.index, &self.name) {
            (Some(i), Some(n)) => format!("argument {i} ({n})"),
            (Some(i), None) => format!("argument {i}"),
            _ => "arguments".to_owned(),
        }
    }
}

/// What is wrong with an argument list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgErrorKind {
    /// The call has another number of arguments.
    #[error("expected {expected} arguments, got {got}")]
    Count {
        /// What the handler takes.
        expected: usize,
        /// What arrived.
        got: usize,
    },
    /// An argument does not convert.
    #[error("{0}")]
    Convert(FromVariantError),
}

/// The decoded arguments of a call, handed to [`FromArgs`]; each value is taken once.
#[derive(Debug)]
pub struct Args<'a> {
    values: &'a mut [Variant],
    names: &'a [String],
}

impl<'a> Args<'a> {
    /// Wraps decoded values; `names` (possibly empty) name them in errors.
    pub fn new(values: &'a mut [Variant], names: &'a [String]) -> Self {
        Args { values, names }
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` without arguments.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Fails unless there are exactly `n` arguments.
    pub fn expect_count(&self, n: usize) -> Result<(), ArgError> {
        if self.values.len() != n {
            return Err(ArgError {
                index: None,
                name: None,
                kind: ArgErrorKind::Count {
                    expected: n,
                    got: self.values.len(),
                },
            });
        }
        Ok(())
    }

    /// Takes argument `i` (leaving `null` behind) and converts it.
    pub fn take<T: FromVariant>(&mut self, i: usize) -> Result<T, ArgError> {
        let v = self
            .values
            .get_mut(i)
            .map(std::mem::take)
            .ok_or_else(|| ArgError {
                index: None,
                name: None,
                kind: ArgErrorKind::Count {
                    expected: i + 1,
                    got: 0,
                },
            })?;
        T::from_variant(v).map_err(|e| ArgError {
            index: Some(i),
            name: self.names.get(i).cloned(),
            kind: ArgErrorKind::Convert(e),
        })
    }

    /// Takes all arguments as they are.
    pub fn take_all(&mut self) -> Vec<Variant> {
        self.values.iter_mut().map(std::mem::take).collect()
    }
}

/// A handler's parameter list: tuples of [`FromVariant`] types (arity 0 to 8, exact count), or
/// `Vec<Variant>` (any count).
pub trait FromArgs: Sized {
    /// Converts the arguments.
    fn from_args(args: &mut Args<'_>) -> Result<Self, ArgError>;
}

impl FromArgs for Vec<Variant> {
    fn from_args(args: &mut Args<'_>) -> Result<Self, ArgError> {
        Ok(args.take_all())
    }
}

/// The arguments of an outgoing call: tuples of [`ToVariant`] types (arity 0 to 8), or a slice
/// / `Vec` of `Variant`s.
pub trait ToArgs {
    /// How many arguments.
    fn arg_count(&self) -> usize;
    /// Appends each argument's encoding.
    fn encode_args(&self, out: &mut Vec<u8>);
    /// Appends each argument as a `Variant` (for local calls of the `*sync` modes).
    fn to_variants(&self, out: &mut Vec<Variant>);
}

impl ToArgs for [Variant] {
    fn arg_count(&self) -> usize {
        self.len()
    }
    fn encode_args(&self, out: &mut Vec<u8>) {
        for v in self {
            v.encode(out)
        }
    }
    fn to_variants(&self, out: &mut Vec<Variant>) {
        out.extend_from_slice(self)
    }
}

impl ToArgs for Vec<Variant> {
    fn arg_count(&self) -> usize {
        self.len()
    }
    fn encode_args(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_args(out)
    }
    fn to_variants(&self, out: &mut Vec<Variant>) {
        self.as_slice().to_variants(out)
    }
}

impl<T: ToArgs + ?Sized> ToArgs for &T {
    fn arg_count(&self) -> usize {
        (**self).arg_count()
    }
    fn encode_args(&self, out: &mut Vec<u8>) {
        (**self).encode_args(out)
    }
    fn to_variants(&self, out: &mut Vec<Variant>) {
        (**self).to_variants(out)
    }
}

macro_rules! tuple_args {
    ($n:literal; $($t:ident $i:tt),*) => {
        impl<$($t: FromVariant),*> FromArgs for ($($t,)*) {
            #[allow(unused_variables)]
            fn from_args(args: &mut Args<'_>) -> Result<Self, ArgError> {
                args.expect_count($n)?;
                Ok(($(args.take::<$t>($i)?,)*))
            }
        }
        impl<$($t: ToVariant),*> ToArgs for ($($t,)*) {
            fn arg_count(&self) -> usize {
                $n
            }
            #[allow(unused_variables)]
            fn encode_args(&self, out: &mut Vec<u8>) {
                $(self.$i.encode_variant(out);)*
            }
            #[allow(unused_variables)]
            fn to_variants(&self, out: &mut Vec<Variant>) {
                $(out.push(self.$i.to_variant());)*
            }
        }
    };
}

tuple_args!(0;);
tuple_args!(1; A 0);
tuple_args!(2; A 0, B 1);
tuple_args!(3; A 0, B 1, C 2);
tuple_args!(4; A 0, B 1, C 2, D 3);
tuple_args!(5; A 0, B 1, C 2, D 3, E 4);
tuple_args!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_args!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_args!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
