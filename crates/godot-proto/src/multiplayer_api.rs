//! Godot 3.2's `MultiplayerAPI` as a sans-IO state machine.
//!
//! The API sits on top of a multiplayer peer (Godot's `NetworkedMultiplayerENet`, our
//! `enet_dtls::multiplayer::MultiplayerPeer`) and speaks Godot 3.2's packets (the first byte
//! is the command):
//!
//! * `REMOTE_CALL` (0): `u32 target | method\0 | u8 argc | argc × Variant [| path\0]`;
//! * `REMOTE_SET` (1): the same with one Variant (the value) instead of `argc` and the
//!   arguments;
//! * `SIMPLIFY_PATH` (2): `u32 id | path\0`, answered by `CONFIRM_PATH` (3): `path\0`;
//! * `RAW` (4): the bytes of `send_bytes`, delivered as [`ApiEvent::PeerPacket`].
//!
//! `target` is a node-path cache id (ids count from 1 per sender), or `0x8000_0000 | offset`
//! of the path appended after the arguments while the receiver has not confirmed the path.
//! Like Godot, a call goes out as one packet to its target once every peer it reaches has
//! confirmed the path, and as one packet per peer (cached id or inline path) before that.
//!
//! # Driving it
//!
//! Tell it what the transport does ([`MultiplayerApi::start_server`],
//! [`MultiplayerApi::start_client`], [`MultiplayerApi::on_peer_connected`],
//! [`MultiplayerApi::on_peer_disconnected`], [`MultiplayerApi::on_connected_to_server`], ...),
//! feed it every packet the peer receives with [`MultiplayerApi::handle_packet`], and after
//! every input or call drain [`MultiplayerApi::poll_outgoing`] (send each packet to its
//! target with its transfer mode) and [`MultiplayerApi::poll_event`].
//!
//! ```
//! use godot_proto::{ApiEvent, MultiplayerApi, RpcMode};
//!
//! // A server with a chat node; the state (here a Vec of lines) is reachable from handlers.
//! let mut server = MultiplayerApi::with_state(Vec::<String>::new());
//! server.register("Chat", "say", RpcMode::Remote, |ctx, (text,): (String,)| {
//!     let line = format!("{}: {text}", ctx.sender());
//!     ctx.state_mut().push(line.clone());
//!     ctx.rpc("Chat", "show", (line,)).unwrap(); // to every client
//! });
//! server.start_server();
//! server.on_peer_connected(1234);
//!
//! // A client calling it.
//! let mut client = MultiplayerApi::new();
//! client.start_client(1234);
//! client.on_peer_connected(1);
//! client.on_connected_to_server();
//! client.rpc_id(1, "Chat", "say", ("hello",)).unwrap();
//! while let Some(out) = client.poll_outgoing() {
//!     assert_eq!(out.target, 1);
//!     server.handle_packet(1234, &out.data); // SIMPLIFY_PATH, then the call
//! }
//! assert_eq!(server.state(), &["1234: hello".to_owned()]);
//! ```
//!
//! # Where it differs from Godot
//!
//! The wire bytes and the decisions (which call runs where, with which sender id, which one
//! is refused) are Godot 3.2's; the interop tests of `enet-dtls` check them against Godot
//! 3.2.3. What differs is the shape of an API without a scene tree, and the bounds:
//!
//! * nodes are registered by path ([`MultiplayerApi::register`], `register_event`,
//!   `register_property`) instead of being found in a scene tree; a property set by `rset`
//!   is stored here ([`MultiplayerApi::property`]) and reported as
//!   [`ApiEvent::PropertySet`];
//! * a local call made inside a handler runs at once, as in Godot, except a call of a handler
//!   that is already running (a handler calling itself: handlers cannot be re-entered, Godot
//!   would recurse) or one made [`MAX_LOCAL_CALL_DEPTH`] handlers deep: those run after the
//!   current input (see [`RpcContext`]); the packets leave in the same order as Godot's;
//! * refusals, which Godot prints, are [`ApiEvent::Refused`] events with the reason;
//! * full objects are never decoded (Godot's `allow_object_decoding` is off by default and
//!   not supported here): instance ids only;
//! * what peers can make us store or do is bounded ([`ApiLimits`]: paths per peer, path
//!   length, decoding limits, queued refusals; [`MAX_LOCAL_CALLS_PER_INPUT`],
//!   [`MAX_LOCAL_CALL_DEPTH`]), where Godot has no limit.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use crate::variant::codec::{Decoder, Reader};
use crate::variant::{
    ArgError, Args, DecodeError, DecodeLimits, FromArgs, ToArgs, ToVariant, Variant,
};

/// `NETWORK_COMMAND_REMOTE_CALL`
pub const CMD_REMOTE_CALL: u8 = 0;
/// `NETWORK_COMMAND_REMOTE_SET`
pub const CMD_REMOTE_SET: u8 = 1;
/// `NETWORK_COMMAND_SIMPLIFY_PATH`
pub const CMD_SIMPLIFY_PATH: u8 = 2;
/// `NETWORK_COMMAND_CONFIRM_PATH`
pub const CMD_CONFIRM_PATH: u8 = 3;
/// `NETWORK_COMMAND_RAW`
pub const CMD_RAW: u8 = 4;
/// The target flag of a call that carries its path inline.
const PATH_INLINE: u32 = 0x8000_0000;
/// The server's peer id.
pub const SERVER_ID: i32 = 1;
/// The most local calls of `*sync` modes that handlers may chain for one input (a packet or
/// an `rpc` call); see [`RefusalReason::LocalCallLimit`].
pub const MAX_LOCAL_CALLS_PER_INPUT: usize = 4096;
/// The most handlers on the stack at once: a local call made by the handler at this depth is
/// queued instead of run at once (see [`RpcContext`]), so chains of handlers calling each other
/// cannot overflow the stack.
pub const MAX_LOCAL_CALL_DEPTH: usize = 64;

/// Godot 3.2's RPC / rset modes (`MultiplayerAPI.RPCMode`; the numbers are Godot's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RpcMode {
    /// Never called remotely (also the mode of anything not registered).
    #[default]
    Disabled = 0,
    /// `remote`: called by any remote peer, never locally by `rpc`.
    Remote = 1,
    /// `master`: called only where this peer is the path's network master.
    Master = 2,
    /// `puppet`: called only where this peer is not the master, and only by the master.
    Puppet = 3,
    /// `remotesync`: like `remote`, and `rpc` also calls it locally.
    RemoteSync = 4,
    /// `mastersync`: like `master`, and `rpc` also calls it locally.
    MasterSync = 5,
    /// `puppetsync`: like `puppet`, and `rpc` also calls it locally.
    PuppetSync = 6,
}

/// How a packet travels (Godot's `NetworkedMultiplayerPeer.TransferMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferMode {
    /// Unsequenced, may be lost (`rpc_unreliable`, `rset_unreliable`).
    Unreliable,
    /// Sequenced, may be lost.
    UnreliableOrdered,
    /// Reliable and ordered (`rpc`, `rset`, the path cache messages).
    Reliable,
}

/// A packet for the multiplayer peer: send `data` to `target` (0 = everyone, a negative id =
/// everyone but that peer, 1 = the server) with `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Godot's target peer.
    pub target: i32,
    /// The transfer mode.
    pub mode: TransferMode,
    /// The MultiplayerAPI packet.
    pub data: Vec<u8>,
}

/// A remote call or a remote set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcKind {
    /// `REMOTE_CALL`
    Call,
    /// `REMOTE_SET`
    Set,
}

/// Why an incoming packet was not executed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The mode of the method / property does not allow this sender (Godot: "RPC 'x' is not
    /// allowed on node ..."). `mode` is `Disabled` for names that are not registered.
    NotAllowed {
        /// The registered mode.
        mode: RpcMode,
        /// The path's network master.
        master: i32,
    },
    /// No node is registered at the path.
    UnknownNode,
    /// The call uses a path cache id the sender never announced.
    UnknownPathId(u32),
    /// The handler's parameters do not fit the arguments.
    BadArguments(ArgError),
    /// An argument or value does not decode.
    Decode(DecodeError),
    /// The packet is shorter than its command needs or lacks a terminator.
    Malformed(&'static str),
    /// `CONFIRM_PATH` for a path we never sent to this peer.
    UnexpectedConfirm,
    /// The sender announced more paths than [`ApiLimits::max_paths_per_peer`], or a longer path
    /// than [`ApiLimits::max_path_len`].
    PathCacheLimit,
    /// An unknown command byte.
    UnknownCommand(u8),
    /// A handler is already running for this method further up the stack.
    Reentrant,
    /// Handlers made more than [`MAX_LOCAL_CALLS_PER_INPUT`] local `*sync` calls for one
    /// input (a handler calling itself through a `*sync` mode); the rest were dropped.
    LocalCallLimit,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::NotAllowed { mode, master } => {
                write!(f, "not allowed: mode is {mode:?}, master is {master}")
            }
            RefusalReason::UnknownNode => f.write_str("no such node"),
            RefusalReason::UnknownPathId(id) => write!(f, "unknown path cache id {id}"),
            RefusalReason::BadArguments(e) => write!(f, "bad arguments: {e}"),
            RefusalReason::Decode(e) => write!(f, "undecodable: {e}"),
            RefusalReason::Malformed(what) => write!(f, "malformed packet: {what}"),
            RefusalReason::UnexpectedConfirm => f.write_str("confirmation of a path never sent"),
            RefusalReason::PathCacheLimit => f.write_str("path cache limit reached"),
            RefusalReason::UnknownCommand(c) => write!(f, "unknown command {c}"),
            RefusalReason::Reentrant => f.write_str("handler already running"),
            RefusalReason::LocalCallLimit => f.write_str("too many local calls for one input"),
        }
    }
}

/// What the API tells the application (Godot's signals, plus refusals).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ApiEvent {
    /// `network_peer_connected(id)`
    PeerConnected(i32),
    /// `network_peer_disconnected(id)`
    PeerDisconnected(i32),
    /// `connected_to_server`
    ConnectedToServer,
    /// `connection_failed`
    ConnectionFailed,
    /// `server_disconnected`
    ServerDisconnected,
    /// `network_peer_packet(id, packet)`: a `send_bytes` packet.
    PeerPacket {
        /// The sender.
        from: i32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A call of a method registered with [`MultiplayerApi::register_event`] (from a peer, or
    /// from this peer for the `*sync` modes: then `from` is our own id).
    Call {
        /// The sender (`get_rpc_sender_id()`).
        from: i32,
        /// The node path, as registered.
        path: String,
        /// The method.
        method: String,
        /// The decoded arguments.
        args: Vec<Variant>,
    },
    /// A registered property was set by a peer (the new value is in
    /// [`MultiplayerApi::property`]).
    PropertySet {
        /// The sender.
        from: i32,
        /// The node path.
        path: String,
        /// The property.
        property: String,
    },
    /// An incoming packet was refused (Godot prints an error and drops it).
    Refused {
        /// The sender.
        from: i32,
        /// Call or set, when the packet was one.
        kind: Option<RpcKind>,
        /// The node path, when known.
        path: Option<String>,
        /// The method or property, when known.
        name: Option<String>,
        /// Why.
        reason: RefusalReason,
    },
}

/// Why an outgoing call or send was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// There is no connection (Godot: "Trying to call an RPC via a network peer which is not
    /// connected").
    #[error("not connected")]
    NotConnected,
    /// The target id is not a connected peer.
    #[error("peer {0} is not connected")]
    UnknownPeer(i32),
    /// The target is this peer and the mode does not call locally.
    #[error("'{0}' on yourself is not allowed by its mode")]
    NotAllowedOnSelf(String),
    /// More than 255 arguments.
    #[error("{0} arguments: at most 255")]
    TooManyArguments(usize),
    /// An empty path or name, or one with a NUL.
    #[error("invalid {what}: {value:?}")]
    InvalidName {
        /// `"path"` or `"name"`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// `send_bytes` with no bytes.
    #[error("empty raw packet")]
    EmptyPacket,
}

/// Counters of what the API did (for tests, metrics and attack tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Remote calls executed.
    pub calls_executed: u64,
    /// Remote sets applied.
    pub sets_applied: u64,
    /// Local calls of the `*sync` modes.
    pub local_calls: u64,
    /// Incoming packets refused (each also an [`ApiEvent::Refused`], unless the queue was full).
    pub refused: u64,
    /// `SIMPLIFY_PATH` received and confirmed.
    pub paths_received: u64,
    /// `CONFIRM_PATH` received.
    pub confirms_received: u64,
    /// `SIMPLIFY_PATH` sent.
    pub paths_sent: u64,
    /// Packets handed to [`MultiplayerApi::poll_outgoing`].
    pub packets_out: u64,
    /// Refusal events dropped because the event queue was full.
    pub events_dropped: u64,
}

/// Bounds on what peers can make the API store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Limits for decoding arguments (one budget per packet).
    pub decode: DecodeLimits,
    /// The most node paths one peer may announce (`SIMPLIFY_PATH`); Godot has no limit.
    pub max_paths_per_peer: usize,
    /// The longest node path accepted, in bytes.
    pub max_path_len: usize,
    /// Refusal events queued at most; more are counted in [`ApiStats::events_dropped`].
    pub max_queued_refusals: usize,
}

impl Default for ApiLimits {
    /// 4096 paths per peer, 4096-byte paths, 1024 queued refusals, default decode limits.
    fn default() -> Self {
        ApiLimits {
            decode: DecodeLimits::default(),
            max_paths_per_peer: 4096,
            max_path_len: 4096,
            max_queued_refusals: 1024,
        }
    }
}

type Handler<S> =
    Box<dyn FnMut(&mut RpcContext<'_, S>, &mut Args<'_>) -> Result<(), ArgError> + Send>;

struct Method<S> {
    mode: RpcMode,
    names: Vec<String>,
    /// `None` while the handler runs (re-entrant calls are refused) or for event methods.
    handler: Option<Handler<S>>,
    /// Calls become [`ApiEvent::Call`] instead of running a handler.
    as_event: bool,
}

struct Property {
    mode: RpcMode,
    value: Variant,
}

struct Node<S> {
    path: String,
    master: i32,
    methods: HashMap<String, Method<S>>,
    props: HashMap<String, Property>,
}

struct Registry<S> {
    index: HashMap<String, usize>,
    nodes: Vec<Node<S>>,
}

impl<S> Registry<S> {
    /// The network master of the node at `path` (the server when never set).
    fn master(&self, path: &str) -> i32 {
        self.find(path).map_or(SERVER_ID, |i| self.nodes[i].master)
    }

    fn node_mut(&mut self, path: &str) -> &mut Node<S> {
        let path = normalize_path(path);
        let i = match self.index.get(path) {
            Some(&i) => i,
            None => {
                self.nodes.push(Node {
                    path: path.to_owned(),
                    master: SERVER_ID,
                    methods: HashMap::new(),
                    props: HashMap::new(),
                });
                self.index.insert(path.to_owned(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn path_of(&self, node: usize) -> Option<String> {
        self.nodes.get(node).map(|n| n.path.clone())
    }

    /// `true` while the handler of a method is running (taken out of it).
    fn is_running(&self, node: usize, name: &str) -> bool {
        self.nodes
            .get(node)
            .and_then(|n| n.methods.get(name))
            .is_some_and(|m| !m.as_event && m.handler.is_none())
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.index.get(normalize_path(path)).copied()
    }

    fn mode(&self, node: Option<usize>, name: &str, set: bool) -> (RpcMode, i32) {
        match node.and_then(|i| self.nodes.get(i)) {
            Some(n) => {
                let mode = if set {
                    n.props.get(name).map(|p| p.mode)
                } else {
                    n.methods.get(name).map(|m| m.mode)
                };
                (mode.unwrap_or_default(), n.master)
            }
            None => (RpcMode::Disabled, SERVER_ID),
        }
    }
}

/// Paths are relative to Godot's multiplayer root (`/root`): `"/root/Game"` and `"Game"` are
/// the same node.
fn normalize_path(path: &str) -> &str {
    let mut p = path.strip_prefix("/root/").unwrap_or(path);
    // `trim_start_matches("./")`, without building a substring searcher on every call.
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Disconnected,
    Connecting,
    Connected,
}

struct SendCache {
    id: u32,
    /// Peers the path was announced to, and whether they confirmed it.
    confirmed: BTreeMap<i32, bool>,
}

/// An outgoing `rpc*` / `rset*` as the call methods ([`crate::call_methods!`]) give it:
/// `target` is the peer (0 = all, `-id` = all but `id`), `set` tells an `rset` from an `rpc`.
#[derive(Clone, Copy)]
struct OutCall<'a> {
    target: i32,
    unreliable: bool,
    set: bool,
    path: &'a str,
    name: &'a str,
    args: &'a dyn ToArgsDyn,
}

/// A local call of a `*sync` mode: run at once, or queued when it cannot be (see
/// [`RpcContext`]).
struct LocalCall {
    node: usize,
    name: String,
    set: bool,
    args: Vec<Variant>,
}

/// Everything but the handlers and the application state.
struct Core {
    limits: ApiLimits,
    status: Status,
    my_id: i32,
    is_server: bool,
    peers: BTreeSet<i32>,
    get_cache: HashMap<i32, HashMap<u32, String>>,
    send_cache: HashMap<String, SendCache>,
    last_send_id: u32,
    out: VecDeque<Outgoing>,
    events: VecDeque<ApiEvent>,
    queued_refusals: usize,
    stats: ApiStats,
    /// Local calls that could not run at once, run after the current input.
    deferred: VecDeque<LocalCall>,
    /// Local calls the current input may still make ([`MAX_LOCAL_CALLS_PER_INPUT`]).
    local_calls_left: usize,
    /// The current input ran out of local calls (reported once).
    local_calls_cut: bool,
    args_buf: Vec<Variant>,
}

/// The Godot 3.2 MultiplayerAPI; `S` is application state handed to handlers
/// ([`RpcContext::state_mut`]).
///
/// Handlers must be `Send`, so the API is `Send` (it can move into a tokio task) whenever `S`
/// is.
pub struct MultiplayerApi<S = ()> {
    state: S,
    registry: Registry<S>,
    core: Core,
}

impl<S> fmt::Debug for MultiplayerApi<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplayerApi")
            .field("my_id", &self.core.my_id)
            .field("status", &self.core.status)
            .field("peers", &self.core.peers)
            .field("nodes", &self.registry.nodes.len())
            .field("stats", &self.core.stats)
            .finish()
    }
}

impl Default for MultiplayerApi<()> {
    fn default() -> Self {
        MultiplayerApi::new()
    }
}

impl MultiplayerApi<()> {
    /// An API without application state, not connected.
    pub fn new() -> Self {
        MultiplayerApi::with_state(())
    }
}

impl<S> MultiplayerApi<S> {
    /// An API whose handlers can reach `state`.
    pub fn with_state(state: S) -> Self {
        MultiplayerApi::with_limits(state, ApiLimits::default())
    }

    /// An API with explicit limits.
    pub fn with_limits(state: S, limits: ApiLimits) -> Self {
        MultiplayerApi {
            state,
            registry: Registry {
                index: HashMap::new(),
                nodes: Vec::new(),
            },
            core: Core {
                limits,
                status: Status::Disconnected,
                my_id: 0,
                is_server: false,
                peers: BTreeSet::new(),
                get_cache: HashMap::new(),
                send_cache: HashMap::new(),
                last_send_id: 1,
                out: VecDeque::new(),
                events: VecDeque::new(),
                queued_refusals: 0,
                stats: ApiStats::default(),
                deferred: VecDeque::new(),
                local_calls_left: MAX_LOCAL_CALLS_PER_INPUT,
                local_calls_cut: false,
                args_buf: Vec::new(),
            },
        }
    }

    /// The application state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    // -----------------------------------------------------------------------------------------
    // Registration
    // -----------------------------------------------------------------------------------------

    /// Registers `handler` for `method` on the node at `path` (relative to `/root`, so `"Game"`
    /// is `/root/Game`) with `mode`. The handler takes the context and its typed arguments: a
    /// tuple of [`crate::FromVariant`] types, or `Vec<Variant>` for any arguments. Registering
    /// again replaces the handler.
    ///
    /// ```
    /// # use godot_proto::{MultiplayerApi, RpcMode, Vector2};
    /// let mut api = MultiplayerApi::new();
    /// api.register("Player", "move_to", RpcMode::Puppet, |_ctx, (pos, run): (Vector2, bool)| {
    ///     let _ = (pos, run);
    /// });
    /// ```
    pub fn register<A, F>(&mut self, path: &str, method: &str, mode: RpcMode, mut handler: F)
    where
        A: FromArgs,
        F: FnMut(&mut RpcContext<'_, S>, A) + Send + 'static,
    {
        let boxed: Handler<S> = Box::new(move |ctx, args| {
            let a = A::from_args(args)?;
            handler(ctx, a);
            Ok(())
        });
        self.insert_method(path, method, mode, Some(boxed));
    }

    /// Registers `method` with `handler` (`None`: calls become events), keeping the argument
    /// names of an earlier registration.
    fn insert_method(
        &mut self,
        path: &str,
        method: &str,
        mode: RpcMode,
        handler: Option<Handler<S>>,
    ) {
        let node = self.registry.node_mut(path);
        let names = node
            .methods
            .remove(method)
            .map(|m| m.names)
            .unwrap_or_default();
        let as_event = handler.is_none();
        node.methods.insert(
            method.to_owned(),
            Method {
                mode,
                names,
                handler,
                as_event,
            },
        );
    }

    /// Registers `method` on the node at `path` with `mode`, without a handler: each allowed
    /// call (remote, or local for the `*sync` modes) becomes an [`ApiEvent::Call`] with the
    /// decoded arguments. Handy for async applications that handle calls in their own loop.
    ///
    /// ```
    /// # use godot_proto::{ApiEvent, MultiplayerApi, RpcMode, Variant};
    /// let mut api = MultiplayerApi::new();
    /// api.register_event("Chat", "say", RpcMode::RemoteSync);
    /// api.start_server();
    /// api.rpc("Chat", "say", ("hi",)).unwrap(); // remotesync: also called here
    /// match api.poll_event() {
    ///     Some(ApiEvent::Call { from, method, args, .. }) => {
    ///         assert_eq!((from, method.as_str()), (1, "say"));
    ///         assert_eq!(args, vec![Variant::from("hi")]);
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn register_event(&mut self, path: &str, method: &str, mode: RpcMode) {
        self.insert_method(path, method, mode, None);
    }

    /// Names the arguments of a registered method, for the errors of calls that do not fit.
    pub fn set_arg_names(&mut self, path: &str, method: &str, names: &[&str]) {
        if let Some(m) = self.registry.node_mut(path).methods.get_mut(method) {
            m.names = names.iter().map(|s| (*s).to_owned()).collect();
        }
    }

    /// Changes the mode of a registered method (`rpc_config`).
    pub fn rpc_config(&mut self, path: &str, method: &str, mode: RpcMode) {
        if let Some(m) = self.registry.node_mut(path).methods.get_mut(method) {
            m.mode = mode;
        }
    }

    /// Changes the mode of a registered property (`rset_config`).
    pub fn rset_config(&mut self, path: &str, property: &str, mode: RpcMode) {
        if let Some(p) = self.registry.node_mut(path).props.get_mut(property) {
            p.mode = mode;
        }
    }

    /// Sets a registered property here, without telling anyone (`false` if it is not
    /// registered).
    pub fn set_property(&mut self, path: &str, property: &str, value: impl ToVariant) -> bool {
        match self.registry.node_mut(path).props.get_mut(property) {
            Some(p) => {
                p.value = value.to_variant();
                true
            }
            None => false,
        }
    }

    /// Registers a property that peers may set with `rset` (Godot's `remote var` & co.),
    /// starting at `initial`.
    pub fn register_property(
        &mut self,
        path: &str,
        property: &str,
        mode: RpcMode,
        initial: impl ToVariant,
    ) {
        self.registry.node_mut(path).props.insert(
            property.to_owned(),
            Property {
                mode,
                value: initial.to_variant(),
            },
        );
    }

    /// A registered property's value.
    pub fn property(&self, path: &str, property: &str) -> Option<&Variant> {
        let i = self.registry.find(path)?;
        self.registry.nodes[i].props.get(property).map(|p| &p.value)
    }

    /// Sets who is the network master of the node at `path` (Godot's `set_network_master`;
    /// the default is 1, the server).
    pub fn set_network_master(&mut self, path: &str, id: i32) {
        self.registry.node_mut(path).master = id;
    }

    /// The network master of the node at `path` (1 when never set).
    pub fn network_master(&self, path: &str) -> i32 {
        self.registry.master(path)
    }

    /// `true` if this peer is the network master of `path`.
    pub fn is_network_master(&self, path: &str) -> bool {
        self.network_master(path) == self.core.my_id
    }

    // -----------------------------------------------------------------------------------------
    // Transport inputs
    // -----------------------------------------------------------------------------------------

    /// This peer is a server (id 1), connected.
    pub fn start_server(&mut self) {
        self.clear();
        self.core.my_id = SERVER_ID;
        self.core.is_server = true;
        self.core.status = Status::Connected;
    }

    /// This peer is a client with unique id `my_id`, connecting; calls work after
    /// [`MultiplayerApi::on_connected_to_server`].
    pub fn start_client(&mut self, my_id: i32) {
        self.clear();
        self.core.my_id = my_id;
        self.core.is_server = false;
        self.core.status = Status::Connecting;
    }

    /// The client reached the server (`connected_to_server`). The peer reports the server
    /// itself with [`MultiplayerApi::on_peer_connected`]`(1)`, as Godot's does.
    pub fn on_connected_to_server(&mut self) {
        self.core.status = Status::Connected;
        self.core.events.push_back(ApiEvent::ConnectedToServer);
    }

    /// The client could not connect (`connection_failed`).
    pub fn on_connection_failed(&mut self) {
        self.clear();
        self.core.events.push_back(ApiEvent::ConnectionFailed);
    }

    /// The server went away (`server_disconnected`); every cache is cleared.
    pub fn on_server_disconnected(&mut self) {
        self.clear();
        self.core.events.push_back(ApiEvent::ServerDisconnected);
    }

    /// A peer connected (`network_peer_connected`).
    pub fn on_peer_connected(&mut self, id: i32) {
        self.core.peers.insert(id);
        self.core.get_cache.insert(id, HashMap::new());
        self.core.events.push_back(ApiEvent::PeerConnected(id));
    }

    /// A peer disconnected (`network_peer_disconnected`): its path caches are dropped.
    pub fn on_peer_disconnected(&mut self, id: i32) {
        self.core.peers.remove(&id);
        self.core.get_cache.remove(&id);
        for psc in self.core.send_cache.values_mut() {
            psc.confirmed.remove(&id);
        }
        self.core.events.push_back(ApiEvent::PeerDisconnected(id));
    }

    /// Forgets every peer and cache and goes back to "not connected" (handlers, properties and
    /// masters stay).
    pub fn clear(&mut self) {
        let c = &mut self.core;
        c.status = Status::Disconnected;
        c.peers.clear();
        c.get_cache.clear();
        c.send_cache.clear();
        c.last_send_id = 1;
        c.deferred.clear();
    }

    /// This peer's unique id (1 for a server, 0 before start).
    pub fn unique_id(&self) -> i32 {
        self.core.my_id
    }

    /// `true` for a server.
    pub fn is_server(&self) -> bool {
        self.core.is_server
    }

    /// `true` once calls can be made.
    pub fn is_connected(&self) -> bool {
        self.core.status == Status::Connected
    }

    /// The connected peers, in id order (`get_network_connected_peers`).
    pub fn peers(&self) -> impl Iterator<Item = i32> + '_ {
        self.core.peers.iter().copied()
    }

    /// The counters.
    pub fn stats(&self) -> ApiStats {
        self.core.stats
    }

    /// Node paths announced by `peer` and kept in its cache (for attack tests).
    pub fn cached_paths(&self, peer: i32) -> usize {
        self.core.get_cache.get(&peer).map_or(0, HashMap::len)
    }

    /// `true` if `peer` confirmed our path cache entry for `path`.
    pub fn path_confirmed_by(&self, path: &str, peer: i32) -> bool {
        self.core
            .send_cache
            .get(normalize_path(path))
            .and_then(|p| p.confirmed.get(&peer).copied())
            .unwrap_or(false)
    }

    /// The next packet to send, if any.
    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        let o = self.core.out.pop_front()?;
        self.core.stats.packets_out += 1;
        Some(o)
    }

    /// `true` if [`poll_event`](Self::poll_event) has an event.
    pub fn has_events(&self) -> bool {
        !self.core.events.is_empty()
    }

    /// `true` if [`poll_outgoing`](Self::poll_outgoing) has a packet.
    pub fn has_outgoing(&self) -> bool {
        !self.core.out.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ApiEvent> {
        let e = self.core.events.pop_front()?;
        if matches!(e, ApiEvent::Refused { .. }) {
            self.core.queued_refusals -= 1;
        }
        Some(e)
    }

    /// Handles one packet the multiplayer peer received from `from` (Godot's
    /// `_process_packet`). Handlers run inside this call.
    pub fn handle_packet(&mut self, from: i32, packet: &[u8]) {
        let Some(&cmd) = packet.first() else {
            self.core.malformed(from, None, "empty packet");
            return;
        };
        match cmd {
            CMD_SIMPLIFY_PATH => self.core.process_simplify(from, packet),
            CMD_CONFIRM_PATH => self.core.process_confirm(from, packet),
            CMD_REMOTE_CALL | CMD_REMOTE_SET => self.process_remote(from, packet),
            CMD_RAW => {
                if packet.len() < 2 {
                    self.core.malformed(from, None, "empty raw");
                } else {
                    self.core.events.push_back(ApiEvent::PeerPacket {
                        from,
                        data: packet[1..].to_vec(),
                    });
                }
            }
            other => self
                .core
                .refuse(from, None, None, None, RefusalReason::UnknownCommand(other)),
        }
    }

    fn process_remote(&mut self, from: i32, packet: &[u8]) {
        self.core.start_input();
        let set = packet[0] == CMD_REMOTE_SET;
        let kind = Some(if set { RpcKind::Set } else { RpcKind::Call });
        if packet.len() < 6 {
            self.core.malformed(from, kind, "too short");
            return;
        }
        // The node.
        let target = u32::from_le_bytes([packet[1], packet[2], packet[3], packet[4]]);
        let path = if target & PATH_INLINE != 0 {
            let ofs = (target & !PATH_INLINE) as usize;
            if ofs >= packet.len() {
                self.core
                    .malformed(from, kind, "inline path offset past the end");
                return;
            }
            let Some(path) = cstr(&packet[ofs..]) else {
                self.core.malformed(from, kind, "path not UTF-8");
                return;
            };
            path
        } else {
            let path = self.core.get_cache.get(&from).and_then(|c| c.get(&target));
            let Some(path) = path else {
                self.core
                    .refuse(from, kind, None, None, RefusalReason::UnknownPathId(target));
                return;
            };
            path.as_str()
        };
        let Some(node) = self.registry.find(path) else {
            let path = Some(path.to_owned());
            self.core
                .refuse(from, kind, path, None, RefusalReason::UnknownNode);
            return;
        };
        // The name.
        let Some(end) = packet[5..].iter().position(|&b| b == 0).map(|p| p + 5) else {
            self.core.refuse(
                from,
                kind,
                self.path_of(node),
                None,
                RefusalReason::Malformed("unterminated name"),
            );
            return;
        };
        let Ok(name) = std::str::from_utf8(&packet[5..end]) else {
            self.core.refuse(
                from,
                kind,
                self.path_of(node),
                None,
                RefusalReason::Malformed("name not UTF-8"),
            );
            return;
        };
        let mut ofs = end + 1;
        if ofs >= packet.len() {
            self.core.refuse(
                from,
                kind,
                self.path_of(node),
                Some(name.to_owned()),
                RefusalReason::Malformed("nothing after the name"),
            );
            return;
        }
        // The mode.
        let (mode, master) = self.registry.mode(Some(node), name, set);
        if !can_call(mode, master, self.core.my_id, from) {
            self.core.refuse(
                from,
                kind,
                self.path_of(node),
                Some(name.to_owned()),
                RefusalReason::NotAllowed { mode, master },
            );
            return;
        }
        // The arguments.
        let mut decoder = Decoder::new(&self.core.limits.decode);
        let mut args = std::mem::take(&mut self.core.args_buf);
        args.clear();
        let result = (|| -> Result<(), RefusalReason> {
            let argc = if set {
                1
            } else {
                let argc = packet[ofs];
                ofs += 1;
                argc
            };
            for _ in 0..argc {
                if ofs >= packet.len() {
                    return Err(RefusalReason::Malformed("missing argument"));
                }
                let mut r = Reader::new(&packet[ofs..]);
                let v = decoder.variant(&mut r, 0).map_err(RefusalReason::Decode)?;
                ofs += r.pos;
                args.push(v);
            }
            Ok(())
        })();
        if let Err(reason) = result {
            args.clear();
            self.core.args_buf = args;
            self.core.refuse(
                from,
                kind,
                self.path_of(node),
                Some(name.to_owned()),
                reason,
            );
            return;
        }
        if set {
            let value = args.pop().unwrap_or_default();
            self.core.args_buf = args;
            self.apply_set(from, node, name, value);
        } else {
            self.invoke(from, node, name, &mut args);
            args.clear();
            self.core.args_buf = args;
        }
        self.run_deferred();
    }

    fn path_of(&self, node: usize) -> Option<String> {
        self.registry.path_of(node)
    }

    /// The parts that run calls, borrowed apart.
    fn exec(&mut self) -> Exec<'_, S> {
        Exec {
            core: &mut self.core,
            registry: &mut self.registry,
            state: &mut self.state,
        }
    }

    fn apply_set(&mut self, from: i32, node: usize, name: &str, value: Variant) {
        self.exec().apply_set(from, node, name, value);
    }

    /// Runs the handler of `node.name` for a remote call (the first handler on the stack).
    fn invoke(&mut self, sender: i32, node: usize, name: &str, args: &mut [Variant]) {
        self.exec().invoke(sender, node, name, args, 1);
    }

    fn run_deferred(&mut self) {
        self.exec().run_deferred();
    }

    // -----------------------------------------------------------------------------------------
    // Outgoing calls
    // -----------------------------------------------------------------------------------------

    fn call_top(&mut self, call: OutCall<'_>) -> Result<(), RpcError> {
        self.core.start_input();
        let local = self.core.send_call(&self.registry, call)?;
        if let Some(call) = local {
            let mut exec = self.exec();
            exec.run_local(call, 0);
            exec.run_deferred();
        }
        Ok(())
    }

    crate::call_methods!(dispatch call_top, RpcError, own);

    /// The sender of the call being handled: always 0 here, outside handlers (inside, use
    /// [`RpcContext::sender`]).
    pub fn rpc_sender_id(&self) -> i32 {
        0
    }
}

/// What running calls needs, borrowed apart: the core, the registry (without the handlers
/// that are running: each is taken out of its method meanwhile) and the application state.
struct Exec<'a, S> {
    core: &'a mut Core,
    registry: &'a mut Registry<S>,
    state: &'a mut S,
}

impl<S> Exec<'_, S> {
    fn apply_set(&mut self, from: i32, node: usize, name: &str, value: Variant) {
        let Some(n) = self.registry.nodes.get_mut(node) else {
            return;
        };
        if let Some(p) = n.props.get_mut(name) {
            p.value = value;
            if from == self.core.my_id {
                self.core.stats.local_calls += 1;
            } else {
                self.core.stats.sets_applied += 1;
            }
            self.core.events.push_back(ApiEvent::PropertySet {
                from,
                path: n.path.clone(),
                property: name.to_owned(),
            });
        }
    }

    /// Runs the handler of `node.name` with `args` and `sender` as the rpc sender id; the
    /// handler is the `depth`th on the stack.
    fn invoke(&mut self, sender: i32, node: usize, name: &str, args: &mut [Variant], depth: usize) {
        let Some(n) = self.registry.nodes.get_mut(node) else {
            return;
        };
        let Some(method) = n.methods.get_mut(name) else {
            return;
        };
        if method.as_event {
            if sender == self.core.my_id {
                self.core.stats.local_calls += 1;
            } else {
                self.core.stats.calls_executed += 1;
            }
            self.core.events.push_back(ApiEvent::Call {
                from: sender,
                path: n.path.clone(),
                method: name.to_owned(),
                args: args.iter_mut().map(std::mem::take).collect(),
            });
            return;
        }
        let Some(mut handler) = method.handler.take() else {
            // Not reached: local calls of a running handler are deferred (`RpcContext::call`).
            let path = self.registry.path_of(node);
            self.core.refuse(
                sender,
                Some(RpcKind::Call),
                path,
                Some(name.to_owned()),
                RefusalReason::Reentrant,
            );
            return;
        };
        let result = {
            let mut ctx = RpcContext {
                core: &mut *self.core,
                registry: &mut *self.registry,
                state: &mut *self.state,
                sender,
                depth,
            };
            handler(&mut ctx, &mut Args::new(args, &[]))
        };
        let method = self
            .registry
            .nodes
            .get_mut(node)
            .and_then(|n| n.methods.get_mut(name));
        let mut names_for_error = None;
        if let Some(m) = method {
            if let Err(e) = &result {
                names_for_error = e.index.and_then(|i| m.names.get(i).cloned());
            }
            m.handler = Some(handler);
        }
        match result {
            Ok(()) => {
                if sender == self.core.my_id {
                    self.core.stats.local_calls += 1;
                } else {
                    self.core.stats.calls_executed += 1;
                }
            }
            Err(mut e) => {
                if e.name.is_none() {
                    e.name = names_for_error;
                }
                let path = self.registry.path_of(node);
                self.core.refuse(
                    sender,
                    Some(RpcKind::Call),
                    path,
                    Some(name.to_owned()),
                    RefusalReason::BadArguments(e),
                );
            }
        }
    }

    /// Runs one local call of a `*sync` mode (Godot's local call in `rpcp` / local set in
    /// `rsetp`, with our own id as the sender) from a handler at `depth` (0: from outside any
    /// handler), unless the input's budget of local calls is spent.
    fn run_local(&mut self, call: LocalCall, depth: usize) {
        let me = self.core.my_id;
        if self.core.local_calls_left == 0 {
            // A handler calling itself (through the queue) without end: Godot would recurse
            // until its stack overflows; the chain is cut, once per input, and reported.
            self.core.deferred.clear();
            if !self.core.local_calls_cut {
                self.core.local_calls_cut = true;
                let path = self.registry.path_of(call.node);
                let kind = Some(if call.set {
                    RpcKind::Set
                } else {
                    RpcKind::Call
                });
                self.core.refuse(
                    me,
                    kind,
                    path,
                    Some(call.name),
                    RefusalReason::LocalCallLimit,
                );
            }
            return;
        }
        self.core.local_calls_left -= 1;
        let mut args = call.args;
        if call.set {
            let value = args.pop().unwrap_or_default();
            self.apply_set(me, call.node, &call.name, value);
        } else {
            self.invoke(me, call.node, &call.name, &mut args, depth + 1);
        }
    }

    /// Runs the local calls that could not run at once (their handler was running, or the
    /// stack was [`MAX_LOCAL_CALL_DEPTH`] deep), in the order they were made.
    fn run_deferred(&mut self) {
        while let Some(call) = self.core.deferred.pop_front() {
            self.run_local(call, 0);
        }
    }
}

/// Object-safe view of [`ToArgs`] (so the send path is not generic).
trait ToArgsDyn {
    fn count(&self) -> usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn variants(&self, out: &mut Vec<Variant>);
}

impl<T: ToArgs> ToArgsDyn for T {
    fn count(&self) -> usize {
        self.arg_count()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_args(out)
    }
    fn variants(&self, out: &mut Vec<Variant>) {
        self.to_variants(out)
    }
}

/// Godot's `_can_call_mode`: may `from` run a member with `mode` here?
fn can_call(mode: RpcMode, master: i32, my_id: i32, from: i32) -> bool {
    let is_master = master == my_id;
    match mode {
        RpcMode::Disabled => false,
        RpcMode::Remote | RpcMode::RemoteSync => true,
        RpcMode::Master | RpcMode::MasterSync => is_master,
        RpcMode::Puppet | RpcMode::PuppetSync => !is_master && from == master,
    }
}

/// Godot's `_should_call_local`: (call locally, skip the remote send).
fn should_call_local(mode: RpcMode, is_master: bool, skip: &mut bool) -> bool {
    match mode {
        RpcMode::Disabled | RpcMode::Remote => false,
        RpcMode::MasterSync => {
            if is_master {
                *skip = true;
            }
            true
        }
        RpcMode::RemoteSync | RpcMode::PuppetSync => true,
        RpcMode::Master => {
            if is_master {
                *skip = true;
            }
            is_master
        }
        RpcMode::Puppet => !is_master,
    }
}

/// A NUL-terminated (or unterminated: to the end) UTF-8 string at the start of `b`.
fn cstr(b: &[u8]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).ok()
}

fn check_name(what: &'static str, s: &str) -> Result<(), RpcError> {
    if s.is_empty() || s.contains('\0') {
        return Err(RpcError::InvalidName {
            what,
            value: s.to_owned(),
        });
    }
    Ok(())
}

impl Core {
    /// A new input (a packet, or a call from outside the handlers) starts with a full budget
    /// of local calls.
    fn start_input(&mut self) {
        self.local_calls_left = MAX_LOCAL_CALLS_PER_INPUT;
        self.local_calls_cut = false;
    }

    /// Refuses a packet that does not parse (`why`), before its node and name are known.
    fn malformed(&mut self, from: i32, kind: Option<RpcKind>, why: &'static str) {
        self.refuse(from, kind, None, None, RefusalReason::Malformed(why));
    }

    fn refuse(
        &mut self,
        from: i32,
        kind: Option<RpcKind>,
        path: Option<String>,
        name: Option<String>,
        reason: RefusalReason,
    ) {
        self.stats.refused += 1;
        if self.queued_refusals >= self.limits.max_queued_refusals {
            self.stats.events_dropped += 1;
            return;
        }
        self.queued_refusals += 1;
        self.events.push_back(ApiEvent::Refused {
            from,
            kind,
            path,
            name,
            reason,
        });
    }

    fn push_out(&mut self, target: i32, mode: TransferMode, data: Vec<u8>) {
        self.out.push_back(Outgoing { target, mode, data });
    }

    fn process_simplify(&mut self, from: i32, packet: &[u8]) {
        if packet.len() < 5 {
            self.malformed(from, None, "short SIMPLIFY_PATH");
            return;
        }
        let id = u32::from_le_bytes([packet[1], packet[2], packet[3], packet[4]]);
        let Some(path) = cstr(&packet[5..]) else {
            self.malformed(from, None, "path not UTF-8");
            return;
        };
        let cache = self.get_cache.entry(from).or_default();
        if path.len() > self.limits.max_path_len
            || (!cache.contains_key(&id) && cache.len() >= self.limits.max_paths_per_peer)
        {
            let path = path.chars().take(64).collect::<String>();
            self.refuse(from, None, Some(path), None, RefusalReason::PathCacheLimit);
            return;
        }
        cache.insert(id, path.to_owned());
        self.stats.paths_received += 1;
        let mut confirm = Vec::with_capacity(path.len() + 2);
        confirm.push(CMD_CONFIRM_PATH);
        confirm.extend_from_slice(path.as_bytes());
        confirm.push(0);
        self.push_out(from, TransferMode::Reliable, confirm);
    }

    fn process_confirm(&mut self, from: i32, packet: &[u8]) {
        if packet.len() < 2 {
            self.malformed(from, None, "short CONFIRM_PATH");
            return;
        }
        let Some(path) = cstr(&packet[1..]) else {
            self.malformed(from, None, "path not UTF-8");
            return;
        };
        let entry = self
            .send_cache
            .get_mut(normalize_path(path))
            .and_then(|p| p.confirmed.get_mut(&from));
        match entry {
            Some(c) => {
                *c = true;
                self.stats.confirms_received += 1;
            }
            None => {
                let path = path.chars().take(64).collect::<String>();
                self.refuse(
                    from,
                    None,
                    Some(path),
                    None,
                    RefusalReason::UnexpectedConfirm,
                )
            }
        }
    }

    fn send_bytes(&mut self, data: &[u8], target: i32, mode: TransferMode) -> Result<(), RpcError> {
        if data.is_empty() {
            return Err(RpcError::EmptyPacket);
        }
        if self.status != Status::Connected {
            return Err(RpcError::NotConnected);
        }
        let mut p = Vec::with_capacity(data.len() + 1);
        p.push(CMD_RAW);
        p.extend_from_slice(data);
        self.push_out(target, mode, p);
        Ok(())
    }

    /// Godot's `rpcp` / `rsetp`: sends, and returns the local call to make, if any.
    fn send_call<S>(
        &mut self,
        registry: &Registry<S>,
        call: OutCall<'_>,
    ) -> Result<Option<LocalCall>, RpcError> {
        let OutCall {
            target,
            set,
            path,
            name,
            args,
            ..
        } = call;
        if self.status != Status::Connected {
            return Err(RpcError::NotConnected);
        }
        let path = normalize_path(path);
        check_name("path", path)?;
        check_name("name", name)?;
        if args.count() > 255 {
            return Err(RpcError::TooManyArguments(args.count()));
        }
        let me = self.my_id;
        let node = registry.find(path);
        let (mode, master) = registry.mode(node, name, set);
        let is_master = master == me;
        let mut skip = target == me;
        let mut local = false;
        if target == 0 || target == me || (target < 0 && target != -me) {
            local = should_call_local(mode, is_master, &mut skip);
        }
        if !skip && target != 0 && !self.peers.contains(&target.saturating_abs()) {
            return Err(RpcError::UnknownPeer(target));
        }
        if skip && !local {
            return Err(RpcError::NotAllowedOnSelf(name.to_owned()));
        }
        if !skip {
            self.send_remote(OutCall { path, ..call });
        }
        Ok(match (local, node) {
            (true, Some(node)) => {
                let mut v = Vec::with_capacity(args.count());
                args.variants(&mut v);
                Some(LocalCall {
                    node,
                    name: name.to_owned(),
                    set,
                    args: v,
                })
            }
            _ => None,
        })
    }

    /// Godot's `_send_rpc` (path cache included).
    fn send_remote(&mut self, call: OutCall<'_>) {
        let OutCall {
            target,
            unreliable,
            set,
            path,
            name,
            args,
        } = call;
        let id = match self.send_cache.get(path) {
            Some(p) => p.id,
            None => {
                let id = self.last_send_id;
                self.last_send_id = self.last_send_id.wrapping_add(1);
                self.send_cache.insert(
                    path.to_owned(),
                    SendCache {
                        id,
                        confirmed: BTreeMap::new(),
                    },
                );
                id
            }
        };
        let mut packet = Vec::with_capacity(16 + name.len() + path.len() + 16 * args.count());
        packet.push(if set { CMD_REMOTE_SET } else { CMD_REMOTE_CALL });
        packet.extend_from_slice(&id.to_le_bytes());
        packet.extend_from_slice(name.as_bytes());
        packet.push(0);
        if !set {
            packet.push(args.count() as u8);
        }
        args.encode(&mut packet);

        // Announce the path to the peers this call reaches that never got it.
        let mut has_all = true;
        let reached = |p: i32| !((target < 0 && p == -target) || (target > 0 && p != target));
        let mut announce = Vec::new();
        if let Some(psc) = self.send_cache.get_mut(path) {
            for &p in self.peers.iter().filter(|&&p| reached(p)) {
                match psc.confirmed.get(&p) {
                    Some(true) => {}
                    Some(false) => has_all = false,
                    None => {
                        has_all = false;
                        psc.confirmed.insert(p, false);
                        announce.push(p);
                    }
                }
            }
        }
        for p in announce {
            let mut s = Vec::with_capacity(path.len() + 6);
            s.push(CMD_SIMPLIFY_PATH);
            s.extend_from_slice(&id.to_le_bytes());
            s.extend_from_slice(path.as_bytes());
            s.push(0);
            self.stats.paths_sent += 1;
            self.push_out(p, TransferMode::Reliable, s);
        }

        let mode = if unreliable {
            TransferMode::Unreliable
        } else {
            TransferMode::Reliable
        };
        if has_all {
            self.push_out(target, mode, packet);
            return;
        }
        // One packet per peer: the id to those that confirmed, the inline path to the others.
        let ofs = packet.len();
        let mut targets = Vec::new();
        if let Some(psc) = self.send_cache.get(path) {
            for &p in self.peers.iter().filter(|&&p| reached(p)) {
                targets.push((p, psc.confirmed.get(&p).copied().unwrap_or(false)));
            }
        }
        let n = targets.len();
        for (i, (p, confirmed)) in targets.into_iter().enumerate() {
            let mut copy = if i + 1 == n {
                std::mem::take(&mut packet)
            } else {
                packet.clone()
            };
            if !confirmed {
                copy[1..5].copy_from_slice(&(PATH_INLINE | ofs as u32).to_le_bytes());
                copy.extend_from_slice(path.as_bytes());
                copy.push(0);
            }
            self.push_out(p, mode, copy);
        }
    }
}

/// What a handler sees: the sender, the application state, and calls of its own.
///
/// Calls made here go out at once, as Godot's do. A call that also runs here (the `*sync`
/// modes; `master` on the master and `puppet` elsewhere, as Godot decides) runs at once too,
/// inside the call, after its packets for the other peers are queued, with a context of its
/// own whose [`sender`](Self::sender) is our id; when it returns, this context still has this
/// call's sender. That is Godot 3.2's `rpcp`, which sets `rpc_sender_id` to our own id for the
/// local call and puts the previous value back afterwards. A local `rset` sets the property at
/// once (Godot sets it before sending; setting runs no code here, so nothing can tell).
///
/// Two local calls cannot run at once and wait until the current input (the packet, or the
/// call made from outside the handlers) is done, then run in the order they were made:
///
/// * a call of a handler that is running further up the stack (a handler calling itself,
///   directly or through others): handlers are `FnMut` and cannot be re-entered, where Godot
///   would recurse;
/// * a call made by the handler at [`MAX_LOCAL_CALL_DEPTH`], so that no chain of handlers can
///   overflow the stack.
///
/// Every input runs at most [`MAX_LOCAL_CALLS_PER_INPUT`] local calls in all.
///
/// ```
/// use godot_proto::{MultiplayerApi, RpcMode};
///
/// // What the handlers did, in order.
/// let mut api = MultiplayerApi::with_state(Vec::<String>::new());
/// api.register("Game", "hit", RpcMode::Remote, |ctx, (): ()| {
///     let from = ctx.sender();
///     ctx.state_mut().push(format!("hit from {from}"));
///     ctx.rpc("Game", "show", ("ouch",)).unwrap(); // remotesync: runs here, now
///     let line = format!("hit done, sender still {}", ctx.sender());
///     ctx.state_mut().push(line);
/// });
/// api.register("Game", "show", RpcMode::RemoteSync, |ctx, (text,): (String,)| {
///     let line = format!("show {text} from {}", ctx.sender());
///     ctx.state_mut().push(line);
/// });
/// api.start_server();
/// api.on_peer_connected(7);
/// let mut call = vec![0, 10, 0, 0, 0x80]; // REMOTE_CALL, the path inline at offset 10
/// call.extend_from_slice(b"hit\0\0Game\0"); // method, no arguments, path
/// api.handle_packet(7, &call);
/// assert_eq!(
///     api.state(),
///     &["hit from 7", "show ouch from 1", "hit done, sender still 7"]
/// );
/// ```
pub struct RpcContext<'a, S> {
    core: &'a mut Core,
    registry: &'a mut Registry<S>,
    state: &'a mut S,
    sender: i32,
    /// Handlers on the stack, this one included.
    depth: usize,
}

impl<S> fmt::Debug for RpcContext<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcContext")
            .field("sender", &self.sender)
            .field("my_id", &self.core.my_id)
            .finish()
    }
}

impl<S> RpcContext<'_, S> {
    /// `get_rpc_sender_id()`: the peer that made this call (our own id for a local call).
    ///
    /// ```
    /// # use godot_proto::{MultiplayerApi, RpcMode};
    /// let mut api = MultiplayerApi::with_state(0);
    /// api.register("Game", "tick", RpcMode::RemoteSync, |ctx, (): ()| {
    ///     *ctx.state_mut() = ctx.sender();
    /// });
    /// api.start_server();
    /// api.rpc("Game", "tick", ()).unwrap();
    /// assert_eq!(*api.state(), 1); // the local call's sender is the server itself
    /// ```
    pub fn sender(&self) -> i32 {
        self.sender
    }

    /// This peer's unique id.
    pub fn unique_id(&self) -> i32 {
        self.core.my_id
    }

    /// `true` on the server.
    pub fn is_server(&self) -> bool {
        self.core.is_server
    }

    /// The connected peers, in id order.
    pub fn peers(&self) -> impl Iterator<Item = i32> + '_ {
        self.core.peers.iter().copied()
    }

    /// The application state.
    pub fn state(&self) -> &S {
        self.state
    }

    /// The application state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }

    /// The network master of `path`.
    pub fn network_master(&self, path: &str) -> i32 {
        self.registry.master(path)
    }

    /// A registered property's value (see [`MultiplayerApi::property`]); a local `rset` made
    /// here has already set it.
    pub fn property(&self, path: &str, property: &str) -> Option<&Variant> {
        let i = self.registry.find(path)?;
        self.registry.nodes[i].props.get(property).map(|p| &p.value)
    }

    fn call(&mut self, call: OutCall<'_>) -> Result<(), RpcError> {
        let Some(local) = self.core.send_call(self.registry, call)? else {
            return Ok(());
        };
        let running = !local.set && self.registry.is_running(local.node, &local.name);
        if running || self.depth >= MAX_LOCAL_CALL_DEPTH {
            self.core.deferred.push_back(local);
            return Ok(());
        }
        let mut exec = Exec {
            core: &mut *self.core,
            registry: &mut *self.registry,
            state: &mut *self.state,
        };
        exec.run_local(local, self.depth);
        Ok(())
    }

    crate::call_methods!(dispatch call, RpcError, see);
}
