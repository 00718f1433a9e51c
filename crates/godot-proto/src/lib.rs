//! Sans-IO Godot 3.2 multiplayer layer: the [`Variant`] codec and the [`MultiplayerApi`].
//!
//! * [`variant`]: every Godot 3.x `Variant` type, encoded and decoded byte for byte like Godot
//!   3.2's `var2bytes` / `bytes2var` (without full objects), with strict, bounded decoding
//!   ([`DecodeLimits`]) and conversions to and from Rust types ([`ToVariant`], [`FromVariant`]).
//! * [`multiplayer_api`]: Godot 3.2's `MultiplayerAPI` (remote calls, remote sets, the node path
//!   cache, raw packets, rpc modes) as a state machine that takes `(sender id, bytes)` and hands
//!   back `(target id, transfer mode, bytes)` and events. It knows nothing about sockets or ENet:
//!   `enet-dtls` drives it over its `MultiplayerPeer`.
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

pub mod multiplayer_api;
pub mod variant;

pub use multiplayer_api::{
    ApiEvent, ApiLimits, ApiStats, MultiplayerApi, Outgoing, RefusalReason, RpcContext, RpcError,
    RpcKind, RpcMode, TransferMode, MAX_LOCAL_CALLS_PER_INPUT,
};
pub use variant::{
    decode_counting, Aabb, ArgError, ArgErrorKind, Args, Basis, Color, DecodeError, DecodeLimits,
    Dictionary, FromArgs, FromVariant, FromVariantError, NodePath, ObjectId, Plane, Quat, Rect2,
    ToArgs, ToVariant, Transform, Transform2D, Variant, VariantType, Vector2, Vector3,
};
