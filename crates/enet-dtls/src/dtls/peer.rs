//! [`PacketPeerDtls`]: one DTLS session over one [`PacketPeerUdp`].

use std::io;
use std::time::{Duration, Instant};

use dtls_proto::{ClientConfig, DtlsError, DtlsSession, Status};
use tracing::{debug, trace};

use super::Error;
use crate::net;
use crate::udp::PacketPeerUdp;

/// Datagrams one [`PacketPeerDtls::poll`] reads at most.
const MAX_DATAGRAMS_PER_POLL: usize = 256;

/// A DTLS 1.2 connection over a [`PacketPeerUdp`], like Godot's `PacketPeerDTLS`.
///
/// Make one with [`connect_to_peer`](Self::connect_to_peer) (client) or
/// [`DtlsServer::take_connection`](super::DtlsServer::take_connection) (server side). Then call
/// [`poll`](Self::poll) regularly (every frame, or after [`wait`](Self::wait) returns): it
/// reads the datagrams waiting on the UDP peer, runs the handshake and its retransmission
/// timers, and sends whatever the session produced. Once [`status`](Self::status) is
/// [`Status::Connected`], exchange datagrams with [`put_packet`](Self::put_packet) and
/// [`get_packet`](Self::get_packet).
///
/// On failure the status becomes [`Status::Error`] (or
/// [`Status::ErrorHostnameMismatch`]) and [`error`](Self::error) says why. Dropping a
/// connected peer sends `close_notify`, like [`disconnect_from_peer`](Self::disconnect_from_peer).
pub struct PacketPeerDtls {
    udp: PacketPeerUdp,
    /// `None` for a peer that never got a session (a server-side peer whose first datagram
    /// was not a ClientHello with a valid cookie).
    session: Option<DtlsSession>,
    /// Status reported while `session` is `None`.
    no_session_status: Status,
    /// Set once `disconnect_from_peer` ran, so Drop does not send a second close_notify.
    closed: bool,
}

impl std::fmt::Debug for PacketPeerDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPeerDtls")
            .field("status", &self.status())
            .field("available_packets", &self.available_packet_count())
            .finish_non_exhaustive()
    }
}

/// Socket errors that must not end a DTLS session: ICMP "port unreachable" reported on a
/// connected UDP socket while the server is not up yet, or a full socket buffer. DTLS
/// retransmits, and the handshake timeout ends the attempt.
fn transient(e: &io::Error) -> bool {
    net::is_transient(e)
}

impl PacketPeerDtls {
    /// Starts a DTLS client handshake over `udp`, which must already know its destination
    /// ([`PacketPeerUdp::connect_to_host`]).
    ///
    /// Certificate checks follow `config` (Godot's `connect_to_peer(udp, validate_certs,
    /// for_hostname, valid_certificate)` maps to [`ClientConfig::builder`]`.verify(..)
    /// .hostname(..).trusted_certificate(..)`). The first flight (ClientHello) is sent before
    /// this returns; the status is then [`Status::Handshaking`].
    ///
    /// # Errors
    /// [`Error::Dtls`] if the session cannot be created, [`Error::Io`] if the first send fails.
    pub fn connect_to_peer(udp: PacketPeerUdp, config: &ClientConfig) -> Result<Self, Error> {
        let session = DtlsSession::client(config, Instant::now())?;
        let mut peer = Self::with_session(udp, session);
        peer.flush()?;
        Ok(peer)
    }

    /// A peer driving an already created `session` (client or server) over `udp`.
    pub(crate) fn with_session(udp: PacketPeerUdp, session: DtlsSession) -> Self {
        Self {
            udp,
            session: Some(session),
            no_session_status: Status::Disconnected,
            closed: false,
        }
    }

    /// A peer without a session, reporting `status` forever (Godot returns such a peer from
    /// `take_connection` for a datagram that fails the cookie exchange).
    pub(crate) fn without_session(udp: PacketPeerUdp, status: Status) -> Self {
        Self {
            udp,
            session: None,
            no_session_status: status,
            closed: true,
        }
    }

    /// Reads every datagram waiting on the UDP peer, runs expired timers (retransmissions,
    /// handshake timeout) and sends what the session produced. Call it every frame, or after
    /// [`wait`](Self::wait).
    ///
    /// # Errors
    /// [`Error::Io`] when the socket fails for good. DTLS failures are not errors of `poll`:
    /// they show in [`status`](Self::status) and [`error`](Self::error).
    pub fn poll(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        // Bounded, so a flood on the socket cannot keep one poll busy forever; the rest waits
        // for the next poll.
        for _ in 0..MAX_DATAGRAMS_PER_POLL {
            match self.udp.get_packet() {
                Ok(Some(d)) => {
                    trace!(len = d.len(), "dtls datagram in");
                    session.handle_datagram(now, &d);
                }
                Ok(None) => break,
                Err(e) if transient(&e) => trace!(error = %e, "transient socket error ignored"),
                Err(e) => return Err(e.into()),
            }
            // Send as we go so a long queue does not delay our answers.
            Self::flush_session(&mut self.udp, session)?;
        }
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        Self::flush_session(&mut self.udp, session)
    }

    /// Blocks until [`poll`](Self::poll) has something to do: an application datagram is
    /// already waiting, a datagram is readable on the UDP peer, or the session's next timer
    /// (retransmission, handshake timeout) is due; for at most `timeout` (`None`: no limit).
    /// Returns whether one of those happened (`false`: the time ran out). Call
    /// [`poll`](Self::poll) afterwards.
    ///
    /// # Errors
    /// [`Error::Io`] if waiting on the socket fails (`NotConnected` for a closed UDP peer).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.available_packet_count() > 0 {
            return Ok(true);
        }
        let now = Instant::now();
        let timer = self.session.as_ref().and_then(DtlsSession::poll_timeout);
        if timer.is_some_and(|t| t <= now) {
            return Ok(true);
        }
        let until_timer = timer.map(|t| t.saturating_duration_since(now));
        let limit = match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let readable = self.udp.wait(limit)?;
        Ok(readable || timer.is_some_and(|t| Instant::now() >= t))
    }

    /// The connection status ([`Status::Handshaking`] until the handshake completes).
    pub fn status(&self) -> Status {
        self.session
            .as_ref()
            .map_or(self.no_session_status, DtlsSession::status)
    }

    /// Why the status is [`Status::Error`] or [`Status::ErrorHostnameMismatch`]: untrusted
    /// certificate, hostname mismatch (with both names), expired certificate, alert from the
    /// peer, handshake timeout...
    pub fn error(&self) -> Option<&DtlsError> {
        self.session.as_ref().and_then(DtlsSession::error)
    }

    /// Sends one application datagram (encrypted as one DTLS record). Empty datagrams are
    /// refused ([`DtlsError::EmptyPacket`]): DTLS sends no record for zero bytes, so the peer
    /// would never see it.
    ///
    /// # Errors
    /// [`Error::NotConnected`] before the handshake completes or after the connection ended,
    /// [`Error::Dtls`] if the session refuses it ([`DtlsError::EmptyPacket`],
    /// [`DtlsError::PacketTooLarge`]), [`Error::Io`] if the socket fails.
    pub fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        let status = self.status();
        let Some(session) = self.session.as_mut() else {
            return Err(Error::NotConnected(status));
        };
        if status != Status::Connected {
            return Err(Error::NotConnected(status));
        }
        session.send(data)?;
        Self::flush_session(&mut self.udp, session)
    }

    /// The next received application datagram, or `Ok(None)` if none is waiting (never
    /// blocks). When nothing is queued it first runs [`poll`](Self::poll), so, like
    /// [`PacketPeerUdp::get_packet`], it works whether or not the caller polls.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket fails for good (from that `poll`). A failed or closed
    /// session is not an error here: it shows in [`status`](Self::status), and datagrams
    /// received before the end are still returned.
    pub fn get_packet(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.available_packet_count() == 0 {
            self.poll()?;
        }
        Ok(self.session.as_mut().and_then(DtlsSession::recv))
    }

    /// How many received application datagrams wait in [`get_packet`](Self::get_packet).
    pub fn available_packet_count(&self) -> usize {
        self.session
            .as_ref()
            .map_or(0, DtlsSession::available_packet_count)
    }

    /// Closes the connection: sends `close_notify` (when a session exists) and moves to
    /// [`Status::Disconnected`]. Calling it again does nothing.
    pub fn disconnect_from_peer(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(session) = self.session.as_mut() {
            session.close();
            if let Err(e) = Self::flush_session(&mut self.udp, session) {
                debug!(error = %e, "could not send close_notify");
            }
        }
    }

    /// The negotiated cipher suite (OpenSSL name, e.g. `ECDHE-RSA-AES256-GCM-SHA384`), once
    /// connected.
    pub fn cipher(&self) -> Option<&'static str> {
        self.session.as_ref().and_then(DtlsSession::cipher_name)
    }

    /// The largest application datagram that fits in one UDP datagram of the configured MTU
    /// (`None` before the handshake has chosen a cipher).
    pub fn data_mtu(&self) -> Option<usize> {
        self.session.as_ref().and_then(DtlsSession::data_mtu)
    }

    /// The UDP peer this connection runs over.
    pub fn udp(&self) -> &PacketPeerUdp {
        &self.udp
    }

    fn flush(&mut self) -> Result<(), Error> {
        match self.session.as_mut() {
            Some(s) => Self::flush_session(&mut self.udp, s),
            None => Ok(()),
        }
    }

    fn flush_session(udp: &mut PacketPeerUdp, session: &mut DtlsSession) -> Result<(), Error> {
        while let Some(d) = session.poll_transmit() {
            trace!(len = d.len(), "dtls datagram out");
            match udp.put_packet(&d) {
                Ok(()) => {}
                Err(e) if transient(&e) => trace!(error = %e, "transient send error ignored"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Drop for PacketPeerDtls {
    fn drop(&mut self) {
        if self.status() == Status::Connected {
            self.disconnect_from_peer();
        }
    }
}
