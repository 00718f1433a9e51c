//! Sans-IO Godot 3.2 multiplayer layer: the [`Variant`] codec and the [`MultiplayerApi`].
//!
//! * [`variant`]: every Godot 3.x `Variant` type, encoded and decoded byte for byte like Godot
//!   3.2's `var2bytes` / `bytes2var` (without full objects), with strict, bounded decoding
//!   ([`DecodeLimits`]) and conversions to and from Rust types ([`ToVariant`], [`FromVariant`]).
//! * [`multiplayer_api`]: Godot 3.2's `MultiplayerAPI` (remote calls, remote sets, the node path
//!   cache, raw packets, rpc modes) as a state machine that takes `(sender id, bytes)` and hands
//!   back `(target id, transfer mode, bytes)` and events. It knows nothing about sockets or ENet:
//!   `enet-dtls` drives it over its `MultiplayerPeer` (`enet_dtls::rpc::RpcPeer`, `TokioRpcPeer`).
//!
//! The crate has no I/O, no clock and no `unsafe`.
//!
//! ```
//! use godot_proto::{Variant, DecodeLimits};
//!
//! // var2bytes(42) in Godot 3.2
//! let bytes = Variant::Int(42).to_bytes();
//! assert_eq!(bytes, [2, 0, 0, 0, 42, 0, 0, 0]);
//! let (v, used) = Variant::decode(&bytes, &DecodeLimits::default()).unwrap();
//! assert_eq!((v, used), (Variant::Int(42), 8));
//! ```
#![forbid(unsafe_code)]

/// Godot's call methods (`rpc`, `rpc_id`, `rpc_unreliable`, `rpc_unreliable_id`, `rset`,
/// `rset_id`, `rset_unreliable`, `rset_unreliable_id`, `send_bytes`), written once for every
/// type that offers them: [`MultiplayerApi`], [`RpcContext`] and the drivers of `enet-dtls`.
///
/// `call_methods!((MODE), ERROR, DOCS)` inside an `impl` block:
/// * `dispatch f` (this crate only): the type has `f(OutCall)` (the API's `call_top` / the
///   context's `call`) and a `core` with `send_bytes`;
/// * `forward f`: the type has `f(|api: &mut MultiplayerApi<_>| api.rpc(..))`, which makes the
///   call on its API and returns `Result<(), ERROR>`;
/// * `DOCS` is `own` (the full documentation, for [`MultiplayerApi`]) or `see` (a link to it).
#[doc(hidden)]
#[macro_export]
macro_rules! call_methods {
    (@table $how:tt $([$(#[$m:meta])* $name:ident [$($peer:ident)?] $unreliable:literal $rset:literal
        $member:ident $arg:ident: $ty:ty => $pass:expr])*) => {
        $($crate::call_methods!(@one $how [$(#[$m])*] $name [$($peer)?] $unreliable $rset
            $member $arg [$ty] $pass);)*
    };
    (@one (dispatch $f:ident, $err:ty, $docs:ident) [$(#[$m:meta])*] $name:ident [$($peer:ident)?]
        $unreliable:literal $rset:literal $member:ident $arg:ident [$ty:ty] $pass:expr) => {
        $crate::call_methods!(@doc $docs $name [$(#[$m])*]
            pub fn $name(&mut self, $($peer: i32,)? path: &str, $member: &str, $arg: $ty)
                -> Result<(), $err> {
                self.$f($crate::multiplayer_api::OutCall {
                    target: $crate::call_methods!(@peer $($peer)?),
                    unreliable: $unreliable,
                    set: $rset,
                    path,
                    name: $member,
                    args: $pass,
                })
            });
    };
    (@one (forward $f:ident, $err:ty, $docs:ident) [$(#[$m:meta])*] $name:ident [$($peer:ident)?]
        $unreliable:literal $rset:literal $member:ident $arg:ident [$ty:ty] $pass:expr) => {
        $crate::call_methods!(@doc $docs $name [$(#[$m])*]
            pub fn $name(&mut self, $($peer: i32,)? path: &str, $member: &str, $arg: $ty)
                -> Result<(), $err> {
                self.$f(|api| api.$name($($peer,)? path, $member, $arg))
            });
    };
    (@send_bytes (dispatch $f:ident, $err:ty, $docs:ident)) => {
        $crate::call_methods!(@doc $docs send_bytes [#[doc = "`send_bytes(bytes, id, mode)`: a RAW packet, delivered to the peer's application as `network_peer_packet`."]]
            pub fn send_bytes(&mut self, data: &[u8], target: i32, mode: $crate::TransferMode)
                -> Result<(), $err> {
                self.core.send_bytes(data, target, mode)
            });
    };
    (@send_bytes (forward $f:ident, $err:ty, $docs:ident)) => {
        $crate::call_methods!(@doc $docs send_bytes []
            pub fn send_bytes(&mut self, data: &[u8], target: i32, mode: $crate::TransferMode)
                -> Result<(), $err> {
                self.$f(|api| api.send_bytes(data, target, mode))
            });
    };
    (@peer) => { 0 };
    (@peer $peer:ident) => { $peer };
    (@doc own $name:ident [$(#[$m:meta])*] $item:item) => { $(#[$m])* $item };
    (@doc see $name:ident [$($m:tt)*] $item:item) => {
        #[doc = concat!("See [`MultiplayerApi::", stringify!($name), "`].")]
        $item
    };
    ($mode:tt $($f:ident)?, $err:ty, $docs:ident) => {
        $crate::call_methods!(@table ($mode $($f)?, $err, $docs)
            [#[doc = "`rpc(method, args...)`: calls `method` on `path` on every peer (and locally for the `*sync` modes), reliably."]
             rpc [] false false method args: impl $crate::ToArgs => &args]
            [#[doc = "`rpc_id(peer, method, args...)`: on one peer (0 = all, `-id` = all but `id`)."]
             rpc_id [peer] false false method args: impl $crate::ToArgs => &args]
            [#[doc = "`rpc_unreliable(method, args...)`."]
             rpc_unreliable [] true false method args: impl $crate::ToArgs => &args]
            [#[doc = "`rpc_unreliable_id(peer, method, args...)`."]
             rpc_unreliable_id [peer] true false method args: impl $crate::ToArgs => &args]
            [#[doc = "`rset(property, value)`: sets `property` of `path` on every peer, reliably."]
             rset [] false true property value: impl $crate::ToVariant => &(value,)]
            [#[doc = "`rset_id(peer, property, value)`."]
             rset_id [peer] false true property value: impl $crate::ToVariant => &(value,)]
            [#[doc = "`rset_unreliable(property, value)`."]
             rset_unreliable [] true true property value: impl $crate::ToVariant => &(value,)]
            [#[doc = "`rset_unreliable_id(peer, property, value)`."]
             rset_unreliable_id [peer] true true property value: impl $crate::ToVariant => &(value,)]
        );
        $crate::call_methods!(@send_bytes ($mode $($f)?, $err, $docs));
    };
}

pub mod multiplayer_api;
pub mod variant;

pub use multiplayer_api::{
    ApiEvent, ApiLimits, ApiStats, MultiplayerApi, Outgoing, RefusalReason, RpcContext, RpcError,
    RpcKind, RpcMode, TransferMode, MAX_LOCAL_CALLS_PER_INPUT, MAX_LOCAL_CALL_DEPTH,
};
pub use variant::{
    decode_counting, Aabb, ArgError, ArgErrorKind, Args, Basis, Color, DecodeError, DecodeLimits,
    Dictionary, FromArgs, FromVariant, FromVariantError, NodePath, ObjectId, Plane, Quat, Rect2,
    ToArgs, ToVariant, Transform, Transform2D, Variant, VariantType, Vector2, Vector3,
};
