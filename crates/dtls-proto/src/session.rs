//! [`DtlsSession`]: one DTLS 1.2 association driven sans-IO.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foreign_types::ForeignTypeRef;
use openssl::ssl::{ErrorCode, Ssl, SslContextRef, SslStream};
use openssl::x509::{X509Ref, X509VerifyResult, X509};

use crate::bio::{Channel, MAX_QUEUED};
use crate::cookie::{binding_index, CookieBinding, CookieSecrets, SharedBinding};
use crate::keys::{x509_names, x509_subject, Certificate};
use crate::{ffi, record, ClientConfig, DtlsError, ServerConfig, MAX_DATAGRAM_SIZE};

/// Where decrypted datagrams go when they skip the inbox ([`DtlsSession::handle_datagram_with`]).
type Deliver<'a> = &'a mut dyn FnMut(&[u8]);

/// Largest plaintext of one DTLS record.
const MAX_PLAINTEXT: usize = 16_384;

/// State of a [`DtlsSession`], mirroring Godot's `PacketPeerDTLS.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Closed: by [`DtlsSession::close`] or by the peer's close_notify (answered with ours).
    Disconnected,
    /// The handshake is in progress.
    Handshaking,
    /// The handshake completed; application data flows.
    Connected,
    /// The session failed; [`DtlsSession::error`] says why.
    Error,
    /// The server certificate is valid but for another name; [`DtlsSession::error`] names both.
    ErrorHostnameMismatch,
}

/// A state change of a [`DtlsSession`], from [`DtlsSession::poll_event`]. Application data is read with
/// [`DtlsSession::recv`]; drain `poll_event` first, then `recv` (a `Connected` always precedes the first
/// datagram, and the datagrams received before a `Closed` stay readable after it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The handshake completed; [`DtlsSession::send`] works from now on.
    Connected,
    /// The session closed: the peer sent close_notify, and ours, the answer, is queued for
    /// [`DtlsSession::poll_transmit`] ([`DtlsSession::close`] emits no event).
    Closed,
    /// The session failed (handshake timeout, certificate, fatal alert, ...); the error says why.
    Failed(DtlsError),
}

/// Which side of the handshake a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the ClientHello.
    Client,
    /// Answers it.
    Server,
}

/// One DTLS 1.2 association over OpenSSL, driven sans-IO.
///
/// Inputs are [`handle_datagram`](Self::handle_datagram), [`handle_timeout`](Self::handle_timeout),
/// [`send`](Self::send) and [`close`](Self::close); after each, drain [`poll_transmit`](Self::poll_transmit)
/// (datagrams for the peer) and [`recv`](Self::recv) (decrypted application datagrams) until `None`, then
/// wait for the next datagram or [`poll_timeout`](Self::poll_timeout).
///
/// Each datagram written by OpenSSL is one item of `poll_transmit`; each `send` is one record in one
/// datagram, never larger than the configured MTU.
///
/// State changes are reported by [`poll_event`](Self::poll_event) ([`SessionEvent`]); [`status`](Self::status)
/// tells the current state.
///
/// Time: the handshake timeout is measured from the `now` given at creation, and OpenSSL's own
/// retransmission timer runs in the caller's time too (first retry after [`crate::INITIAL_RETRANSMIT`],
/// doubling to [`crate::MAX_RETRANSMIT`]): every call into OpenSSL runs under a virtual clock derived from
/// the `now` passed in (see [`crate::virtual_time_supported`]), so [`poll_timeout`](Self::poll_timeout) is
/// exact and a simulator can drive a handshake. Methods without a `now` ([`send`](Self::send),
/// [`close`](Self::close)) use the last `now` passed in.
pub struct DtlsSession {
    stream: SslStream<Channel>,
    role: Role,
    status: Status,
    error: Option<DtlsError>,
    verify: bool,
    hostname: Option<String>,
    handshake_timeout: Duration,
    handshake_deadline: Instant,
    last_now: Instant,
    inbox: VecDeque<Vec<u8>>,
    mtu: usize,
    cookies: Option<Arc<CookieSecrets>>,
    clock: ffi::VirtualClock,
    events: VecDeque<SessionEvent>,
    /// [`record::min_encrypted_body`] of the current cipher, keyed by OpenSSL's `SSL_CIPHER`
    /// pointer (the cipher is a static table entry): no name lookup per datagram.
    min_body: Option<(usize, usize)>,
    /// `DTLS_get_data_mtu`, read once when the handshake completes (the MTU and the cipher do
    /// not change afterwards: no renegotiation), not on every `send`.
    data_mtu: Option<usize>,
}

impl std::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSession")
            .field("role", &self.role)
            .field("status", &self.status)
            .field("error", &self.error)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// A fresh SSL object with our MTU and retransmission schedule.
pub(crate) fn new_ssl(ctx: &SslContextRef, mtu: usize) -> Result<Ssl, DtlsError> {
    let mut ssl = Ssl::new(ctx).map_err(|e| DtlsError::openssl(&e))?;
    let mtu32 = u32::try_from(mtu).map_err(|_| DtlsError::Config {
        message: format!("MTU {mtu} too large"),
    })?;
    ssl.set_mtu(mtu32)
        .map_err(|e| DtlsError::config(&format!("MTU {mtu} refused"), &e))?;
    ffi::set_short_timer(&mut ssl);
    Ok(ssl)
}

/// A fresh server SSL whose cookie callbacks see `binding`.
pub(crate) fn new_server_ssl(
    config: &ServerConfig,
    binding: &SharedBinding,
) -> Result<Ssl, DtlsError> {
    let mut ssl = new_ssl(&config.ctx, config.mtu)?;
    ssl.set_ex_data(binding_index()?, Arc::clone(binding));
    ssl.set_accept_state();
    Ok(ssl)
}

impl DtlsSession {
    /// Starts a client handshake: the ClientHello is ready in [`poll_transmit`](Self::poll_transmit).
    ///
    /// # Errors
    /// [`DtlsError::Config`]/[`DtlsError::Openssl`] if OpenSSL refuses to create the session.
    pub fn client(config: &ClientConfig, now: Instant) -> Result<Self, DtlsError> {
        // First use: probe (once) that OpenSSL's timers follow our clock; warns if not.
        ffi::virtual_time_supported();
        let mut ssl = new_ssl(&config.ctx, config.mtu)?;
        if let Some(host) = &config.hostname {
            match host.parse::<IpAddr>() {
                Ok(ip) => {
                    if config.verify {
                        ssl.param_mut()
                            .set_ip(ip)
                            .map_err(|e| DtlsError::config("expected IP address refused", &e))?;
                    }
                }
                Err(_) => {
                    ssl.set_hostname(host)
                        .map_err(|e| DtlsError::config(&format!("SNI {host:?} refused"), &e))?;
                    if config.verify {
                        ssl.param_mut().set_host(host).map_err(|e| {
                            DtlsError::config(&format!("hostname {host:?} refused"), &e)
                        })?;
                    }
                }
            }
        }
        ssl.set_connect_state();
        let stream = SslStream::new(ssl, Channel::default()).map_err(|e| DtlsError::openssl(&e))?;
        let mut session = DtlsSession {
            stream,
            role: Role::Client,
            status: Status::Handshaking,
            error: None,
            verify: config.verify,
            hostname: config.hostname.clone(),
            handshake_timeout: config.handshake_timeout,
            handshake_deadline: now + config.handshake_timeout,
            last_now: now,
            inbox: VecDeque::new(),
            mtu: config.mtu,
            cookies: None,
            clock: ffi::VirtualClock::new(now),
            events: VecDeque::new(),
            min_body: None,
            data_mtu: None,
        };
        tracing::debug!(hostname = ?session.hostname, verify = session.verify, "dtls client handshake started");
        let _time = session.clock.enter(now);
        session.drive_handshake();
        Ok(session)
    }

    /// A stateful server session for one client (Godot's `DTLSServer.take_connection` shape). It does the
    /// cookie exchange itself (`SSL_OP_COOKIE_EXCHANGE`): the first ClientHello is answered with a
    /// HelloVerifyRequest, and the handshake continues when the client echoes the cookie.
    ///
    /// The cookie is bound to a random per-session nonce; use
    /// [`server_for_peer`](Self::server_for_peer) to bind it to the client address too. For a server
    /// facing untrusted networks prefer [`crate::CookieListener`], which keeps no state before the cookie.
    ///
    /// # Errors
    /// [`DtlsError::Openssl`] if OpenSSL refuses to create the session.
    pub fn server(config: &ServerConfig, now: Instant) -> Result<Self, DtlsError> {
        Self::server_inner(config, now, None)
    }

    /// Like [`server`](Self::server), with the cookie also bound to the client's address.
    ///
    /// # Errors
    /// [`DtlsError::Openssl`] if OpenSSL refuses to create the session.
    pub fn server_for_peer(
        config: &ServerConfig,
        now: Instant,
        peer: SocketAddr,
    ) -> Result<Self, DtlsError> {
        Self::server_inner(config, now, Some(peer))
    }

    fn server_inner(
        config: &ServerConfig,
        now: Instant,
        peer: Option<SocketAddr>,
    ) -> Result<Self, DtlsError> {
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| DtlsError::openssl(&e))?;
        let binding = Arc::new(Mutex::new(CookieBinding {
            peer,
            nonce: Some(nonce),
        }));
        let ssl = new_server_ssl(config, &binding)?;
        let stream = SslStream::new(ssl, Channel::default()).map_err(|e| DtlsError::openssl(&e))?;
        config.cookies.rotate_if_due(now);
        tracing::debug!(?peer, "dtls server session created");
        Ok(Self::server_from_stream(stream, config, now))
    }

    /// Wraps a server stream (fresh, or just accepted by `DTLSv1_listen`).
    pub(crate) fn server_from_stream(
        stream: SslStream<Channel>,
        config: &ServerConfig,
        now: Instant,
    ) -> Self {
        ffi::virtual_time_supported();
        DtlsSession {
            stream,
            role: Role::Server,
            status: Status::Handshaking,
            error: None,
            verify: false,
            hostname: None,
            handshake_timeout: config.handshake_timeout,
            handshake_deadline: now + config.handshake_timeout,
            last_now: now,
            inbox: VecDeque::new(),
            mtu: config.mtu,
            cookies: Some(Arc::clone(&config.cookies)),
            clock: ffi::VirtualClock::new(now),
            events: VecDeque::new(),
            min_body: None,
            data_mtu: None,
        }
    }

    /// Continues the handshake after `DTLSv1_listen` accepted a ClientHello: the server flight is then
    /// ready in `poll_transmit`.
    pub(crate) fn continue_accepted(&mut self) {
        let _time = self.clock.enter(self.last_now);
        self.drive_handshake();
    }

    /// Feeds one datagram received from the peer. Handshake messages advance the handshake (replies
    /// appear in `poll_transmit`); application records appear in `recv`. Invalid records are dropped
    /// silently, as DTLS requires; a fatal alert or handshake failure moves the session to
    /// [`Status::Error`] / [`Status::ErrorHostnameMismatch`]. Ignored unless handshaking or connected.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        self.handle_datagram_inner(now, data, None);
    }

    /// Like [`handle_datagram`](Self::handle_datagram), but the application datagrams it
    /// decrypts go to `deliver` straight from the decryption buffer (no copy, no queue) as long
    /// as none is waiting in [`recv`](Self::recv) (those come first, so the order holds).
    /// Returns how many went to `deliver`.
    pub fn handle_datagram_with(
        &mut self,
        now: Instant,
        data: &[u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) -> usize {
        self.handle_datagram_inner(now, data, Some(deliver))
    }

    fn handle_datagram_inner(
        &mut self,
        now: Instant,
        data: &[u8],
        deliver: Option<Deliver<'_>>,
    ) -> usize {
        self.last_now = now;
        // Cookies only matter while handshaking; a connected session's datagrams skip the lock.
        if self.status == Status::Handshaking {
            if let Some(c) = &self.cookies {
                c.rotate_if_due(now);
            }
        }
        if self.status == Status::Handshaking && now >= self.handshake_deadline {
            self.fail_timeout();
            return 0;
        }
        if !matches!(self.status, Status::Handshaking | Status::Connected) {
            return 0;
        }
        if data.is_empty() || data.len() > MAX_DATAGRAM_SIZE {
            tracing::trace!(
                len = data.len(),
                "dtls dropped a datagram of impossible size"
            );
            return 0;
        }
        let data = record::drop_short_encrypted(data, self.min_encrypted_body());
        if data.is_empty() {
            return 0;
        }
        let _time = self.clock.enter(now);
        self.stream.get_mut().push_incoming(&data);
        let delivered = if self.status == Status::Handshaking {
            self.drive_handshake();
            0
        } else {
            self.read_app_data(deliver)
        };
        // Anything OpenSSL did not consume belongs to a dead state; never let it pile up.
        self.stream.get_mut().incoming.clear();
        delivered
    }

    /// Handles the passage of time: fails the handshake once its timeout has passed, and lets OpenSSL
    /// retransmit its last flight if its timer (in the caller's time) expired. Call it at
    /// [`poll_timeout`](Self::poll_timeout); calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if let Some(c) = &self.cookies {
            c.rotate_if_due(now);
        }
        match self.status {
            Status::Handshaking if now >= self.handshake_deadline => self.fail_timeout(),
            Status::Handshaking | Status::Connected => {
                let _time = self.clock.enter(now);
                match ffi::handle_timeout(&mut self.stream) {
                    ffi::TimeoutResult::Retransmitted => {
                        tracing::trace!("dtls retransmitted the last flight");
                    }
                    ffi::TimeoutResult::NotExpired => {}
                    ffi::TimeoutResult::Failed => {
                        let message = openssl::error::ErrorStack::get().to_string();
                        self.fail(DtlsError::Protocol {
                            message: format!("retransmission failed: {message}"),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// The next datagram to send to the peer, if any. Drain until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().outgoing.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the earlier of OpenSSL's retransmission
    /// timer (exact, in the caller's time; on the real clock relative to the last `now` passed in when
    /// [`crate::virtual_time_supported`] is false) and the handshake deadline.
    /// `None` when no timer runs (connected with nothing to retransmit, closed, failed).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = match self.status {
            Status::Handshaking => Some(self.handshake_deadline),
            Status::Connected => None,
            _ => return None,
        };
        let retransmit = {
            let _time = self.clock.enter(self.last_now);
            ffi::get_timeout(self.stream.ssl()).map(|left| self.last_now + left)
        };
        match (deadline, retransmit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Encrypts `data` as one record in one datagram (queued for `poll_transmit`).
    ///
    /// # Errors
    /// [`DtlsError::NotConnected`] unless [`Status::Connected`]; [`DtlsError::EmptyPacket`] for an empty
    /// `data` (DTLS would send nothing, and the peer would wait for it forever);
    /// [`DtlsError::PacketTooLarge`] when `data` exceeds [`data_mtu`](Self::data_mtu) (OpenSSL never
    /// splits records, so the caller must).
    pub fn send(&mut self, data: &[u8]) -> Result<(), DtlsError> {
        if self.status != Status::Connected {
            return Err(DtlsError::NotConnected);
        }
        let max = self.data_mtu().unwrap_or(0);
        if data.len() > max {
            return Err(DtlsError::PacketTooLarge {
                size: data.len(),
                max,
            });
        }
        if data.is_empty() {
            return Err(DtlsError::EmptyPacket);
        }
        let _time = self.clock.enter(self.last_now);
        match self.stream.ssl_write(data) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.classify(&e);
                self.fail(err.clone());
                Err(err)
            }
        }
    }

    /// The next state change ([`SessionEvent`]), oldest first. Drain it after every input, before
    /// [`recv`](Self::recv).
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next decrypted application datagram, oldest first.
    #[must_use]
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbox.pop_front()
    }

    /// Number of decrypted datagrams waiting in [`recv`](Self::recv).
    pub fn available_packet_count(&self) -> usize {
        self.inbox.len()
    }

    /// Current state.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Why the session failed, once [`status`](Self::status) is `Error` or `ErrorHostnameMismatch`.
    pub fn error(&self) -> Option<&DtlsError> {
        self.error.as_ref()
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Closes the session: when connected, a close_notify alert is queued for `poll_transmit`.
    /// The status becomes [`Status::Disconnected`]; already received datagrams stay readable.
    pub fn close(&mut self) {
        match self.status {
            Status::Connected => {
                let _time = self.clock.enter(self.last_now);
                if let Err(e) = self.stream.shutdown() {
                    tracing::debug!(error = %e, "dtls close_notify could not be written");
                }
                self.status = Status::Disconnected;
                tracing::debug!("dtls session closed locally");
            }
            Status::Handshaking => {
                self.status = Status::Disconnected;
                tracing::debug!("dtls handshake abandoned locally");
            }
            _ => {}
        }
    }

    /// The negotiated cipher suite (OpenSSL name, e.g. `ECDHE-RSA-AES256-GCM-SHA384`), once connected.
    pub fn cipher_name(&self) -> Option<&'static str> {
        if matches!(self.status, Status::Handshaking) {
            return None;
        }
        self.stream.ssl().current_cipher().map(|c| c.name())
    }

    /// The negotiated protocol version (`DTLSv1.2`), once connected.
    pub fn protocol_version(&self) -> Option<&'static str> {
        (self.status == Status::Connected).then(|| self.stream.ssl().version_str())
    }

    /// The largest application datagram [`send`](Self::send) accepts (`DTLS_get_data_mtu`: the MTU minus
    /// record header, explicit nonce, MAC/tag and padding of the negotiated cipher), once connected.
    /// With the default MTU of 1440 this is 1403 for AES-GCM and 1411 for ChaCha20-Poly1305.
    pub fn data_mtu(&self) -> Option<usize> {
        if self.status != Status::Connected {
            return None;
        }
        self.data_mtu.or_else(|| ffi::data_mtu(self.stream.ssl()))
    }

    /// The configured MTU (largest datagram written).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The peer's certificate, if it sent one (servers always do; clients here never do).
    pub fn peer_certificate(&self) -> Option<Certificate> {
        self.peer_leaf().map(Certificate::from_x509)
    }

    fn peer_leaf(&self) -> Option<X509> {
        let ssl = self.stream.ssl();
        if let Some(cert) = ssl.peer_certificate() {
            return Some(cert);
        }
        // After a failed verification the leaf is only in the received chain.
        ssl.peer_cert_chain()
            .and_then(|chain| chain.iter().next().map(X509Ref::to_owned))
    }

    /// [`record::min_encrypted_body`] of the current cipher (cached per cipher).
    fn min_encrypted_body(&mut self) -> usize {
        let Some(cipher) = self.stream.ssl().current_cipher() else {
            return record::min_encrypted_body(None);
        };
        let key = cipher.as_ptr() as usize;
        match self.min_body {
            Some((k, min)) if k == key => min,
            _ => {
                let min = record::min_encrypted_body(Some(cipher.name()));
                self.min_body = Some((key, min));
                min
            }
        }
    }

    /// Gives back a buffer from [`poll_transmit`](Self::poll_transmit) or [`recv`](Self::recv)
    /// once done with it: the next outgoing or decrypted datagram on this thread reuses its
    /// allocation. Optional (a small per-thread pool, bounded in count and size).
    pub fn recycle(buf: Vec<u8>) {
        crate::bio::recycle(buf);
    }

    fn drive_handshake(&mut self) {
        match self.stream.do_handshake() {
            Ok(()) => {
                self.status = Status::Connected;
                self.data_mtu = ffi::data_mtu(self.stream.ssl());
                self.events.push_back(SessionEvent::Connected);
                tracing::debug!(
                    role = ?self.role,
                    cipher = self.cipher_name().unwrap_or("?"),
                    data_mtu = self.data_mtu().unwrap_or(0),
                    "dtls handshake complete"
                );
                // The datagram that completed the handshake may carry application records too.
                self.read_app_data(None);
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
            Err(e) => {
                let err = self.classify(&e);
                self.fail(err);
            }
        }
    }

    /// Decrypts what OpenSSL holds: to `deliver` while the inbox is empty, else to the inbox.
    /// Returns how many datagrams went to `deliver`.
    fn read_app_data(&mut self, deliver: Option<Deliver<'_>>) -> usize {
        thread_local! {
            // One zeroed plaintext buffer per thread instead of a 16 KiB memset per datagram or
            // 16 KiB per session.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_PLAINTEXT]);
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => self.read_app_data_into(&mut buf, deliver),
            // Unreachable in practice (no re-entrancy); stay correct anyway.
            Err(_) => self.read_app_data_into(&mut vec![0; MAX_PLAINTEXT], deliver),
        })
    }

    fn read_app_data_into(&mut self, buf: &mut [u8], mut deliver: Option<Deliver<'_>>) -> usize {
        let mut delivered = 0;
        loop {
            match self.stream.ssl_read(buf) {
                Ok(0) => {}
                Ok(n) => {
                    match deliver.as_mut() {
                        Some(deliver) if self.inbox.is_empty() => {
                            deliver(&buf[..n]);
                            delivered += 1;
                        }
                        _ => {
                            if self.inbox.len() >= MAX_QUEUED {
                                self.inbox.pop_front();
                                tracing::trace!(
                                    "dtls receive queue full, dropped the oldest datagram"
                                );
                            }
                            let mut datagram = crate::bio::take_buffer();
                            datagram.extend_from_slice(&buf[..n]);
                            self.inbox.push_back(datagram);
                        }
                    }
                    // One datagram is usually one record: stop here unless OpenSSL still holds
                    // unread records (of this datagram) or another datagram waits, instead of
                    // a second SSL_read that only reports WANT_READ.
                    if self.stream.get_ref().incoming.is_empty()
                        && !ffi::has_pending(self.stream.ssl())
                    {
                        return delivered;
                    }
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    // Answer with our own close_notify (RFC 5246 section 7.2.1), as Godot's
                    // mbedTLS and `openssl s_server` do: OpenSSL only records the peer's
                    // alert, SSL_shutdown writes ours (queued for `poll_transmit`).
                    if let Err(e) = self.stream.shutdown() {
                        tracing::debug!(error = %e, "dtls close_notify answer could not be written");
                    }
                    self.status = Status::Disconnected;
                    self.events.push_back(SessionEvent::Closed);
                    tracing::debug!("dtls peer sent close_notify; answered with ours");
                    return delivered;
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    return delivered;
                }
                Err(e) => {
                    let err = self.classify(&e);
                    self.fail(err);
                    return delivered;
                }
            }
        }
    }

    fn fail_timeout(&mut self) {
        self.fail(DtlsError::HandshakeTimeout {
            timeout: self.handshake_timeout,
        });
    }

    fn fail(&mut self, err: DtlsError) {
        self.status = if matches!(err, DtlsError::HostnameMismatch { .. }) {
            Status::ErrorHostnameMismatch
        } else {
            Status::Error
        };
        tracing::debug!(role = ?self.role, error = %err, "dtls session failed");
        self.events.push_back(SessionEvent::Failed(err.clone()));
        self.error = Some(err);
    }

    /// Turns an OpenSSL failure into the most specific [`DtlsError`].
    fn classify(&self, e: &openssl::ssl::Error) -> DtlsError {
        if self.role == Role::Client && self.verify {
            let result = self.stream.ssl().verify_result();
            if result != X509VerifyResult::OK {
                return self.verify_error(result);
            }
        }
        if let Some(stack) = e.ssl_error() {
            for err in stack.errors() {
                // OpenSSL reports a received alert as reason 1000 + alert description.
                let reason = err.reason_code();
                if (1000..1256).contains(&reason) {
                    let code = u8::try_from(reason - 1000).unwrap_or(u8::MAX);
                    return DtlsError::PeerAlert {
                        code,
                        description: ffi::alert_description(code),
                    };
                }
            }
            let reasons: Vec<String> = stack
                .errors()
                .iter()
                .map(|err| err.reason().unwrap_or("unknown reason").to_string())
                .collect();
            return DtlsError::Protocol {
                message: if reasons.is_empty() {
                    e.to_string()
                } else {
                    reasons.join("; ")
                },
            };
        }
        DtlsError::Protocol {
            message: e.to_string(),
        }
    }

    fn verify_error(&self, result: X509VerifyResult) -> DtlsError {
        let leaf = self.peer_leaf();
        let subject = leaf
            .as_deref()
            .map(x509_subject)
            .unwrap_or_else(|| "<no certificate>".into());
        let code = result.as_raw();
        let reason = result.error_string().to_string();
        match code {
            // X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
            62 | 64 => DtlsError::HostnameMismatch {
                expected: self.hostname.clone().unwrap_or_default(),
                presented: leaf.as_deref().map(x509_names).unwrap_or_default(),
            },
            // X509_V_ERR_CERT_HAS_EXPIRED
            10 => DtlsError::CertificateExpired {
                not_after: leaf
                    .as_deref()
                    .map(|c| c.not_after().to_string())
                    .unwrap_or_default(),
                subject,
            },
            // X509_V_ERR_CERT_NOT_YET_VALID
            9 => DtlsError::CertificateNotYetValid {
                not_before: leaf
                    .as_deref()
                    .map(|c| c.not_before().to_string())
                    .unwrap_or_default(),
                subject,
            },
            // unable to get issuer (2), self-signed leaf (18), self-signed in chain (19), unable to get
            // local issuer (20), unable to verify leaf (21), untrusted (27), rejected (28)
            2 | 18 | 19 | 20 | 21 | 27 | 28 => DtlsError::UntrustedCertificate {
                code,
                reason,
                subject,
            },
            _ => DtlsError::CertificateInvalid { code, reason },
        }
    }
}
