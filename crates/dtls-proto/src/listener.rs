//! [`CookieListener`]: a stateless DTLS front door (RFC 6347 section 4.2.1) built on `DTLSv1_listen`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openssl::ssl::SslStream;

use crate::bio::Channel;
use crate::cookie::{write_binding, CookieBinding, SharedBinding};
use crate::record::{client_hello, looks_like_client_hello};
use crate::session::new_server_ssl;
use crate::{ffi, DtlsError, DtlsSession, ServerConfig};

/// What to do with one datagram given to [`CookieListener::handle_datagram`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ListenOutcome {
    /// Ignore it (not a ClientHello, malformed, or an answer would be larger than the request).
    Drop,
    /// Send this HelloVerifyRequest back to the datagram's source. Nothing was remembered about it.
    Reply(Vec<u8>),
    /// The ClientHello carried a valid cookie: this session is that client's, already holding the
    /// server's first flight in `poll_transmit`. Route the source address's future datagrams to it.
    Accept(DtlsSession),
    /// The ClientHello carried a valid cookie but the caller said it cannot admit a session
    /// ([`CookieListener::handle_datagram_admit`] with `admit == false`): nothing was built for it (no
    /// server flight, no signature); send nothing back.
    Refused,
}

/// What a [`CookieListener`] holds, for tests and monitoring: it never grows with the number of sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PendingState {
    /// SSL objects this listener created: one listening object at start plus one per accepted client.
    /// A stateful server would create one per source address instead.
    pub ssl_objects_created: u64,
    /// Datagrams buffered inside the listener between calls (always 0: every call drains its buffers).
    pub queued_datagrams: usize,
    /// Server handshakes started: valid-cookie ClientHellos for which OpenSSL built the server flight
    /// (ServerHello, Certificate, ServerKeyExchange with its signature, ...). Refusals never count.
    pub handshakes_started: u64,
}

/// A stateless DTLS cookie listener: answers cookie-less ClientHellos with a HelloVerifyRequest
/// without allocating anything for the sender, and hands out a [`DtlsSession`] only when a client proves
/// it receives datagrams at its source address by echoing the cookie.
///
/// The cookie is HMAC-SHA256 over the client's IP address and port with a secret that rotates every
/// [`ServerConfig::cookie_rotation`] (driven by the `now` passed in); cookies made with the current or
/// the previous secret are accepted.
///
/// ```
/// use std::time::Instant;
/// use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
/// use dtls_proto::{ClientConfig, CookieListener, DtlsSession, ListenOutcome, ServerConfig};
///
/// let now = Instant::now();
/// let key = PrivateKey::generate(KeyType::EcP256).unwrap();
/// let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
/// let mut listener = CookieListener::new(&ServerConfig::builder(key, cert).build().unwrap()).unwrap();
/// let mut client = DtlsSession::client(&ClientConfig::builder().verify(false).build().unwrap(), now).unwrap();
/// let from = "127.0.0.1:5000".parse().unwrap();
/// let hello = client.poll_transmit().unwrap();
/// let ListenOutcome::Reply(hvr) = listener.handle_datagram(now, from, &hello) else { panic!() };
/// client.handle_datagram(now, &hvr);
/// let hello2 = client.poll_transmit().unwrap();
/// let ListenOutcome::Accept(mut server) = listener.handle_datagram(now, from, &hello2) else { panic!() };
/// assert!(server.poll_transmit().is_some()); // ServerHello...
/// ```
pub struct CookieListener {
    config: ServerConfig,
    listening: SslStream<Channel>,
    binding: SharedBinding,
    ssl_objects_created: u64,
    handshakes_started: u64,
}

impl std::fmt::Debug for CookieListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieListener")
            .field("config", &self.config)
            .field("state", &self.pending_state())
            .finish_non_exhaustive()
    }
}

impl CookieListener {
    /// A listener for `config` (its cookie secret is shared with clones of `config`).
    ///
    /// # Errors
    /// [`DtlsError::Openssl`] if OpenSSL cannot create the listening SSL object.
    pub fn new(config: &ServerConfig) -> Result<Self, DtlsError> {
        let binding: SharedBinding = Arc::new(Mutex::new(CookieBinding::default()));
        let listening = Self::listening_stream(config, &binding)?;
        Ok(CookieListener {
            config: config.clone(),
            listening,
            binding,
            ssl_objects_created: 1,
            handshakes_started: 0,
        })
    }

    fn listening_stream(
        config: &ServerConfig,
        binding: &SharedBinding,
    ) -> Result<SslStream<Channel>, DtlsError> {
        let ssl = new_server_ssl(config, binding)?;
        SslStream::new(ssl, Channel::default()).map_err(|e| DtlsError::openssl(&e))
    }

    /// Handles one datagram from `from` that belongs to no existing session.
    ///
    /// * garbage, truncated or non-ClientHello input: [`ListenOutcome::Drop`];
    /// * a ClientHello without a valid cookie: [`ListenOutcome::Reply`] with a HelloVerifyRequest no
    ///   larger than the ClientHello (else `Drop`), keeping no state;
    /// * a ClientHello with a valid cookie for `from`: [`ListenOutcome::Accept`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> ListenOutcome {
        self.handle_datagram_admit(now, from, data, true)
    }

    /// Like [`handle_datagram`](Self::handle_datagram), for a caller that already knows whether it can
    /// take one more session from `from`. With `admit == false`, a ClientHello whose cookie is valid is
    /// answered with [`ListenOutcome::Refused`] *before* OpenSSL does any work for it: the cookie is
    /// checked in Rust (one HMAC), so a replayed valid-cookie ClientHello against a full table costs
    /// neither an SSL object nor the server flight's signature. Cookie-less ClientHellos still get their
    /// (cheap, stateless) HelloVerifyRequest.
    pub fn handle_datagram_admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        admit: bool,
    ) -> ListenOutcome {
        self.config.cookies.rotate_if_due(now);
        if !admit {
            let binding = CookieBinding {
                peer: Some(from),
                nonce: None,
            };
            if client_hello(data).is_some_and(|h| {
                !h.cookie.is_empty() && self.config.cookies.verify(&binding, h.cookie)
            }) {
                tracing::trace!(%from, "dtls listener refused a valid-cookie ClientHello before any work");
                return ListenOutcome::Refused;
            }
        }
        if !looks_like_client_hello(data) {
            tracing::trace!(%from, len = data.len(), "dtls listener dropped a non-ClientHello datagram");
            return ListenOutcome::Drop;
        }
        // The cookie callbacks read the source address from here (our BIO has no peer address).
        // A fresh binding per listening SSL: an accepted session keeps the old one, untouched.
        write_binding(
            &self.binding,
            CookieBinding {
                peer: Some(from),
                nonce: None,
            },
        );
        self.listening.get_mut().push_incoming(data);
        let result = ffi::dtls_listen(&mut self.listening);
        let replies: Vec<Vec<u8>> = self.listening.get_mut().outgoing.drain(..).collect();
        self.listening.get_mut().incoming.clear();
        match result {
            ffi::ListenResult::Accepted if !admit => {
                // A ClientHello our parser could not read but OpenSSL accepted: still refuse before the
                // flight; the listening SSL consumed it, so replace it.
                match Self::listening_stream(&self.config, &self.binding) {
                    Ok(fresh) => {
                        self.ssl_objects_created += 1;
                        self.listening = fresh;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dtls listener cannot create a new listening SSL")
                    }
                }
                ListenOutcome::Refused
            }
            ffi::ListenResult::Accepted => self.accept(now, from),
            ffi::ListenResult::Pending => {
                // Drain the error queue of ignored input so it does not leak into later calls.
                let _ = openssl::error::ErrorStack::get();
                match <[Vec<u8>; 1]>::try_from(replies) {
                    Ok([hvr]) if hvr.len() <= data.len() => {
                        tracing::trace!(%from, "dtls listener sent a HelloVerifyRequest");
                        ListenOutcome::Reply(hvr)
                    }
                    Ok([hvr]) => {
                        tracing::trace!(%from, hvr = hvr.len(), hello = data.len(),
                            "dtls listener dropped a HelloVerifyRequest larger than its ClientHello");
                        ListenOutcome::Drop
                    }
                    Err(_) => ListenOutcome::Drop,
                }
            }
            ffi::ListenResult::Failed => {
                let stack = openssl::error::ErrorStack::get();
                tracing::trace!(%from, error = %stack, "dtls listener rejected a datagram");
                ListenOutcome::Drop
            }
        }
    }

    fn accept(&mut self, now: Instant, from: SocketAddr) -> ListenOutcome {
        let binding: SharedBinding = Arc::new(Mutex::new(CookieBinding::default()));
        let fresh = match Self::listening_stream(&self.config, &binding) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "dtls listener cannot create a new listening SSL; dropping the client");
                return ListenOutcome::Drop;
            }
        };
        self.ssl_objects_created += 1;
        let accepted = std::mem::replace(&mut self.listening, fresh);
        // The accepted SSL keeps the old binding (still `from`) for its own cookie checks.
        self.binding = binding;
        let mut session = DtlsSession::server_from_stream(accepted, &self.config, now);
        self.handshakes_started += 1;
        session.continue_accepted();
        tracing::debug!(%from, "dtls listener accepted a client with a valid cookie");
        ListenOutcome::Accept(session)
    }

    /// What the listener holds; see [`PendingState`]. Tests use it to check that ClientHellos from any
    /// number of sources leave no per-source state.
    pub fn pending_state(&self) -> PendingState {
        PendingState {
            ssl_objects_created: self.ssl_objects_created,
            queued_datagrams: self.listening.get_ref().queued(),
            handshakes_started: self.handshakes_started,
        }
    }

    /// The configuration this listener serves.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}
