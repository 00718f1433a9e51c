//! What the blocking and the tokio drivers share: the host, the transmit batch and the order
//! in which inputs are fed and outputs drained (the drain contract of [`enet_proto`]).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{DisconnectReason, Event, Host, HostConfig, PeerId, PeerState, Transmit};

use tracing::debug;

use super::socket::{ConnectionFailure, EnetSocket, FailureCause};

/// Connection failures kept for [`take_failure`](super::EnetHost::take_failure) at most; the
/// oldest is forgotten beyond this.
pub(crate) const MAX_KEPT_FAILURES: usize = 256;

/// Datagrams read per receive round before transmits are flushed and events looked at
/// (C ENet reads up to 256 per `enet_host_service`).
const MAX_RECV_PER_ROUND: usize = 256;

/// Datagrams gathered from the host before they are handed to the socket in one batch.
const SEND_BATCH: usize = 64;

/// How long acknowledgements held for the application's replies
/// ([`HostConfig::acks_with_replies`]) may wait while the application takes queued events:
/// a `service` or `check_events` call that returns a queued event sends them once they have
/// waited this long (ENet's clock has millisecond resolution).
pub(crate) const ACK_HOLD_LIMIT: Duration = Duration::from_millis(1);

/// Shortest sleep when a timer is already due (ENet's clock has millisecond resolution), so a
/// timer that stays due cannot make the driver spin.
pub(crate) const MIN_TIMER_SLEEP: Duration = Duration::from_millis(1);

/// The ENet host plus the reusable transmit batch.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) host: Host,
    outbox: Vec<Transmit>,
    /// Disconnect events made by the driver for peers whose connection the socket failed
    /// ([`EnetSocket::poll_failure`]); handed out before the host's own events.
    events: VecDeque<Event>,
    /// The causes of those failures, by peer, for `take_failure` (bounded).
    failures: VecDeque<(PeerId, ConnectionFailure)>,
    /// What the socket was last told by [`EnetSocket::set_accepting_new_peers`] (`None`:
    /// nothing yet).
    accepting: Option<bool>,
    /// Set by `defer_flushes`: explicit `flush` calls send nothing meanwhile.
    pub(crate) defer_flush: bool,
    /// Since when the host holds acknowledgements for the application's replies (see
    /// [`ACK_HOLD_LIMIT`]).
    held_since: Option<Instant>,
}

impl Core {
    /// Creates the host; the MTU is capped at what the socket can carry, and a zero
    /// `seed` (the core's default, which has no entropy of its own) is replaced by a
    /// random one so that connect ids differ between hosts and runs.
    pub(crate) fn new(
        mut config: HostConfig,
        max_datagram: usize,
        now: Instant,
    ) -> Result<Core, enet_proto::Error> {
        let cap = u32::try_from(max_datagram).unwrap_or(u32::MAX);
        if config.mtu > cap {
            config.mtu = cap;
        }
        if config.seed == 0 {
            config.seed = random_seed();
        }
        Ok(Core {
            host: Host::new(config, now)?,
            outbox: Vec::with_capacity(SEND_BATCH),
            events: VecDeque::new(),
            failures: VecDeque::new(),
            accepting: None,
            defer_flush: false,
            held_since: None,
        })
    }

    /// Receives up to [`MAX_RECV_PER_ROUND`] datagrams from `socket` into the host, batch by
    /// batch (the one receive loop of both drivers). Returns whether the socket is known to be
    /// empty afterwards (`recv_batch` returned `Ok(0)` or the socket reported itself drained).
    fn receive_from<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> io::Result<bool> {
        let mut received = 0;
        // Bounded in calls too, for a socket that keeps delivering nothing without saying so.
        for _ in 0..MAX_RECV_PER_ROUND {
            let host = &mut self.host;
            let n =
                socket.recv_batch(now, &mut |from, data| host.handle_datagram(now, from, data))?;
            if n == 0 || socket.recv_drained() {
                return Ok(true);
            }
            received += n;
            if received >= MAX_RECV_PER_ROUND {
                break;
            }
        }
        Ok(false)
    }

    /// Runs the socket's timers, then the host's, if they are due.
    fn tick_all<S: EnetSocket + ?Sized>(&mut self, socket: &mut S, now: Instant) -> io::Result<()> {
        if socket.poll_timeout().is_some_and(|t| t <= now) {
            socket.handle_timeout(now)?;
        }
        self.tick(now);
        Ok(())
    }

    /// One service round of both drivers, in C ENet's order (`enet_host_service`): socket
    /// timers, host timers, send what is queued, receive (bounded), host timers, send again
    /// (acknowledgements and replies).
    ///
    /// Sending before receiving gets the application's queued packets to the peer before this
    /// host spends time on the datagrams that came in, so both ends work at the same time
    /// instead of taking turns.
    pub(crate) fn round<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> io::Result<()> {
        self.tick_all(socket, now)?;
        self.send_via(socket, now)?;
        self.sync_accepting(socket);
        self.receive_from(socket, now)?;
        self.tick(now);
        self.send_via(socket, now)?;
        self.collect_failures(socket);
        // With acks_with_replies, the acknowledgements of this round's data wait for the
        // application's replies: they leave with the next round's first send, at `flush`, or
        // after ACK_HOLD_LIMIT (see `queued_event`).
        self.held_since = if self.host.holds_acknowledgements() {
            Some(self.held_since.unwrap_or(now))
        } else {
            None
        };
        Ok(())
    }

    /// An event already queued, without receiving (`service` returns these first). When
    /// acknowledgements have been held for the application's replies for [`ACK_HOLD_LIMIT`]
    /// or longer, they are sent first (with whatever the application queued meanwhile).
    pub(crate) fn queued_event<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> io::Result<Option<Event>> {
        let Some(event) = self.poll_event(socket, now) else {
            return Ok(None);
        };
        if self
            .held_since
            .is_some_and(|since| now.saturating_duration_since(since) >= ACK_HOLD_LIMIT)
        {
            self.release_and_send(socket, now)?;
        }
        Ok(Some(event))
    }

    /// Releases the held acknowledgements and sends everything queued (`flush`).
    pub(crate) fn release_and_send<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> io::Result<()> {
        self.host.release_acknowledgements();
        self.held_since = None;
        self.send_via(socket, now)
    }

    /// Tells the socket whether the host takes new peers, when that changed: not while it
    /// refuses new connections, nor while every slot holds a connected peer (then no slot is
    /// free for a CONNECT; slots taken by peers still connecting or disconnecting are not
    /// counted, so a nearly full host may still let a socket start a session ENet then drops).
    fn sync_accepting<S: EnetSocket + ?Sized>(&mut self, socket: &mut S) {
        let accept = !self.host.refuses_new_connections()
            && self.host.stats().connected_peers < self.host.peer_limit();
        if self.accepting != Some(accept) {
            self.accepting = Some(accept);
            socket.set_accepting_new_peers(accept);
        }
    }

    /// Takes the socket's connection failures ([`EnetSocket::poll_failure`]): resets the live
    /// ENet peers at each failed address and queues their `Disconnect` events, keeping the
    /// cause for [`take_failure`](Self::take_failure).
    fn collect_failures<S: EnetSocket + ?Sized>(&mut self, socket: &mut S) {
        while let Some(failure) = socket.poll_failure() {
            let reason = match failure.cause {
                FailureCause::Closed(dtls_proto::CloseReason::Remote) => DisconnectReason::Remote,
                _ => DisconnectReason::Failed,
            };
            let peers: Vec<PeerId> = self
                .host
                .peers()
                .filter(|p| p.address() == failure.address && is_live(p.state()))
                .map(|p| p.id())
                .collect();
            if peers.is_empty() {
                debug!(%failure, "connection failure without a live ENet peer");
                continue;
            }
            for peer in peers {
                debug!(?peer, %failure, "ENet peer reset: its connection failed");
                self.host.reset_peer(peer);
                self.events.push_back(Event::Disconnect {
                    peer,
                    address: failure.address,
                    data: 0,
                    reason,
                });
                self.keep_failure(peer, failure.clone());
            }
        }
    }

    fn keep_failure(&mut self, peer: PeerId, failure: ConnectionFailure) {
        if self.failures.len() >= MAX_KEPT_FAILURES {
            self.failures.pop_front();
        }
        self.failures.push_back((peer, failure));
    }

    /// The cause of the failed connection of `peer`, taken (see `EnetHost::take_failure`).
    pub(crate) fn take_failure(&mut self, peer: PeerId) -> Option<ConnectionFailure> {
        let i = self.failures.iter().position(|(p, _)| *p == peer)?;
        self.failures.remove(i).map(|(_, f)| f)
    }

    /// The next event: the driver's own (failed connections) first, then the host's. A
    /// `Disconnect` from the host tells the socket that the address has no live peer left
    /// ([`EnetSocket::peer_gone`]); when the socket knows a better cause (a DTLS handshake
    /// still running when ENet gave up), the event says [`DisconnectReason::Failed`] and the
    /// cause is kept.
    pub(crate) fn poll_event<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let mut event = self.host.poll_event()?;
        if let Event::Disconnect {
            peer,
            address,
            reason,
            ..
        } = &mut event
        {
            if let Some(failure) = self.release(socket, now, *peer, *address) {
                *reason = DisconnectReason::Failed;
                self.keep_failure(*peer, failure);
            }
        }
        Some(event)
    }

    /// Tells `socket` that `peer` (at `address`) is gone, unless another live peer still uses
    /// the address.
    pub(crate) fn release<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
        peer: PeerId,
        address: SocketAddr,
    ) -> Option<ConnectionFailure> {
        let shared = self
            .host
            .peers()
            .any(|p| p.id() != peer && p.address() == address && is_live(p.state()));
        if shared {
            return None;
        }
        socket.peer_gone(now, address)
    }

    /// The address of `peer` while it is live (connecting, connected or disconnecting).
    pub(crate) fn live_address(&self, peer: PeerId) -> Option<SocketAddr> {
        self.host
            .peer(peer)
            .filter(|p| is_live(p.state()))
            .map(|p| p.address())
    }

    /// `reset_peer` of the drivers: forgets the peer and releases its address in the socket.
    pub(crate) fn reset_peer<S: EnetSocket + ?Sized>(&mut self, socket: &mut S, peer: PeerId) {
        let address = self.live_address(peer);
        self.host.reset_peer(peer);
        if let Some(address) = address {
            self.release(socket, Instant::now(), peer, address);
        }
    }

    /// Drains every datagram the host wants to send into `socket`, in batches.
    pub(crate) fn send_via<S: EnetSocket + ?Sized>(
        &mut self,
        socket: &mut S,
        now: Instant,
    ) -> io::Result<()> {
        self.flush(now, &mut |batch| {
            let sent = socket.send_batch(now, batch)?;
            if sent < batch.len() {
                debug!(
                    queued = batch.len(),
                    sent, "socket did not send every datagram"
                );
            }
            Ok(sent)
        })
    }

    /// Runs the host's timers if they are due.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
    }

    /// Drains every datagram the host wants to send, in batches, through `send`.
    fn flush(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(&[Transmit]) -> io::Result<usize>,
    ) -> io::Result<()> {
        loop {
            // The buffers of the last batch go back to the host for its next datagrams.
            for t in self.outbox.drain(..) {
                self.host.recycle(t.data);
            }
            while self.outbox.len() < SEND_BATCH {
                match self.host.poll_transmit(now) {
                    Some(t) => self.outbox.push(t),
                    None => break,
                }
            }
            if self.outbox.is_empty() {
                return Ok(());
            }
            send(&self.outbox)?;
        }
    }

    /// The earliest of the host's and the socket's timers.
    pub(crate) fn next_timer(&self, socket_timer: Option<Instant>) -> Option<Instant> {
        [self.host.poll_timeout(), socket_timer]
            .into_iter()
            .flatten()
            .min()
    }

    /// How long [`EnetHost::wait`](super::EnetHost::wait) and its tokio twin sleep at most:
    /// `None` (no limit) or the time until the earlier of `timeout` and `timer`.
    /// `Some(ZERO)` when the timer is due.
    pub(crate) fn wait_limit(
        now: Instant,
        timeout: Option<Duration>,
        timer: Option<Instant>,
    ) -> Option<Duration> {
        let until_timer = timer.map(|t| t.saturating_duration_since(now));
        match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the driver must wake up: the earliest of the caller's deadline, the host's timers
    /// and the socket's timers. A timer that is already due yields `now + MIN_TIMER_SLEEP`.
    pub(crate) fn wake_at(
        &self,
        now: Instant,
        deadline: Option<Instant>,
        socket_timer: Option<Instant>,
    ) -> Option<Instant> {
        let timer = [self.host.poll_timeout(), socket_timer]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(now + MIN_TIMER_SLEEP));
        [deadline, timer].into_iter().flatten().min()
    }
}

/// The driver methods that only forward to the protocol host (the same for the blocking and
/// the tokio driver). Expects `self.core: Core`, `self.socket: S` and a `send_queued(&mut self, Instant) ->
/// io::Result<()>` method in the implementing type.
macro_rules! forward_host_methods {
    () => {
        /// Returns an already queued event without any I/O (`enet_host_check_events`).
        ///
        /// With [`HostConfig::acks_with_replies`](enet_proto::HostConfig::acks_with_replies),
        /// acknowledgements held for a millisecond or more are sent first (a send error is
        /// only logged here; the next `service` reports a broken socket).
        pub fn check_events(&mut self) -> Option<Event> {
            match self.core.queued_event(&mut self.socket, Instant::now()) {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(%e, "sending held acknowledgements failed");
                    self.core.poll_event(&mut self.socket, Instant::now())
                }
            }
        }

        /// Why the connection of `peer` failed, once its `Event::Disconnect` came with
        /// [`DisconnectReason::Failed`](enet_proto::DisconnectReason::Failed) (or `Remote`
        /// when the remote closed the DTLS session): an untrusted certificate, a hostname
        /// mismatch (both names), an expired certificate, a fatal alert, a handshake timeout.
        /// Taken: a second call returns `None`. The last 256 failures are kept.
        ///
        /// ```no_run
        /// # fn f(host: &mut enet_dtls::enet::EnetHost<enet_dtls::enet::DtlsEnetSocket>) -> std::io::Result<()> {
        /// use enet_dtls::enet_proto::{DisconnectReason, Event};
        /// if let Some(Event::Disconnect { peer, reason: DisconnectReason::Failed, .. }) =
        ///     host.service(std::time::Duration::from_millis(100))?
        /// {
        ///     if let Some(failure) = host.take_failure(peer) {
        ///         eprintln!("connection failed: {failure}");
        ///     }
        /// }
        /// # Ok(()) }
        /// ```
        pub fn take_failure(&mut self, peer: PeerId) -> Option<super::ConnectionFailure> {
            self.core.take_failure(peer)
        }

        /// Tells the socket that `peer` at `address` is gone after the protocol host dropped it
        /// through [`host_mut`](Self::host_mut) (`reset_peer`, `disconnect_now`), as
        /// [`reset_peer`](Self::reset_peer) does: a DTLS session with the address ends (unless
        /// another live peer shares it). Flush first so that a DISCONNECT goes out before.
        #[allow(dead_code)]
        pub(crate) fn release_peer_address(&mut self, peer: PeerId, address: SocketAddr) {
            self.core
                .release(&mut self.socket, Instant::now(), peer, address);
        }

        /// Defers explicit [`flush`](Self::flush) calls while `on`: packets queued meanwhile
        /// (by `send`, `broadcast` or a layer above, such as the multiplayer peer, which flushes
        /// after every packet) stay queued and leave packed together at the next `service`,
        /// `poll` or `flush` after it is turned off. An RPC server answering a batch of calls uses
        /// it to send one datagram per client for the batch instead of one per answer. Off by
        /// default.
        pub fn defer_flushes(&mut self, on: bool) {
            self.core.defer_flush = on;
        }

        /// Sends everything that is queued now, without receiving (`enet_host_flush`),
        /// acknowledgements held for the application's replies included
        /// ([`HostConfig::acks_with_replies`](enet_proto::HostConfig::acks_with_replies)).
        pub fn flush(&mut self) -> io::Result<()> {
            if self.core.defer_flush {
                return Ok(());
            }
            let now = Instant::now();
            self.core.tick(now);
            self.core.release_and_send(&mut self.socket, now)
        }

        /// Starts connecting to `addr` with `channel_count` channels, handing `data` to the
        /// remote host's connect event. The [`Event::Connect`] for the returned peer comes from
        /// `service`.
        pub fn connect(
            &mut self,
            addr: SocketAddr,
            channel_count: usize,
            data: u32,
        ) -> Result<PeerId, enet_proto::Error> {
            self.core
                .host
                .connect(Instant::now(), addr, channel_count, data)
        }

        /// Queues `packet` to `peer` on `channel`.
        pub fn send(
            &mut self,
            peer: PeerId,
            channel: u8,
            packet: Packet,
        ) -> Result<(), enet_proto::Error> {
            self.core.host.send(peer, channel, packet)
        }

        /// Queues `packet` to every connected peer on `channel`.
        pub fn broadcast(&mut self, channel: u8, packet: Packet) {
            self.core.host.broadcast(channel, packet)
        }

        /// Asks `peer` to disconnect (after the queued data); an [`Event::Disconnect`] follows
        /// when it acknowledges (or times out).
        pub fn disconnect(&mut self, peer: PeerId, data: u32) {
            self.core.host.disconnect(peer, data)
        }

        /// Disconnects `peer` once all its queued outgoing packets have been sent.
        pub fn disconnect_later(&mut self, peer: PeerId, data: u32) {
            self.core.host.disconnect_later(peer, data)
        }

        /// Disconnects `peer` at once: sends one unacknowledged disconnect datagram now and
        /// forgets the peer (no event follows).
        pub fn disconnect_now(&mut self, peer: PeerId, data: u32) -> io::Result<()> {
            let now = Instant::now();
            let address = self.core.live_address(peer);
            self.core.host.disconnect_now(now, peer, data);
            self.send_queued(now)?;
            if let Some(address) = address {
                self.core.release(&mut self.socket, now, peer, address);
            }
            Ok(())
        }

        /// Forgets `peer` without telling it (its address is released in the socket: a DTLS
        /// session ends).
        pub fn reset_peer(&mut self, peer: PeerId) {
            self.core.reset_peer(&mut self.socket, peer)
        }

        /// A peer's state, address and statistics.
        pub fn peer(&self, id: PeerId) -> Option<&Peer> {
            self.core.host.peer(id)
        }

        /// The protocol host, for everything this driver does not wrap (throttling, bandwidth
        /// limits, host statistics).
        pub fn host(&self) -> &Host {
            &self.core.host
        }

        /// Mutable access to the protocol host. Datagrams it queues go out on the next
        /// `service` or [`flush`](Self::flush).
        pub fn host_mut(&mut self) -> &mut Host {
            &mut self.core.host
        }
    };
}
pub(crate) use forward_host_methods;

/// Whether a peer in `state` holds its address (connecting, connected or disconnecting).
fn is_live(state: PeerState) -> bool {
    !matches!(state, PeerState::Disconnected | PeerState::Zombie)
}

/// A random 64-bit seed from the OS-seeded keys of std's `RandomState` (each call
/// yields different keys), so the driver needs no RNG dependency of its own.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x656e_6574_2d64_746c);
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two hosts created with the default (zero) seed must not draw the same connect ids,
    /// or a restarted client could be mistaken for its previous incarnation.
    #[test]
    fn default_seed_is_replaced_by_a_random_one() {
        let now = Instant::now();
        let server: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let ids: Vec<u32> = (0..4)
            .map(|_| {
                let mut core = Core::new(HostConfig::default(), 1500, now).unwrap();
                let peer = core.host.connect(now, server, 2, 0).unwrap();
                core.host.peer(peer).unwrap().connect_id()
            })
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "connect ids repeat: {ids:?}");
    }
}
