//! [`DtlsServer`]: Godot's `DTLSServer` shape (a `UdpServer` hands out one UDP peer per
//! source, `take_connection` wraps it in DTLS).

use std::time::Instant;

use dtls_proto::keys::{Certificate, PrivateKey};
use dtls_proto::{CookieListener, DtlsError, ListenOutcome, ServerConfig, Status};
use tracing::{debug, trace};

use super::PacketPeerDtls;
use crate::udp::PacketPeerUdp;

/// Server-side DTLS setup, like Godot's `DTLSServer`: turns the UDP peers that a
/// [`UdpServer`](crate::udp::UdpServer) hands out into [`PacketPeerDtls`] connections.
///
/// ```no_run
/// use enet_dtls::dtls::{DtlsServer, Status};
/// use enet_dtls::dtls_proto::keys::{Certificate, PrivateKey};
/// use enet_dtls::udp::UdpServer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = PrivateKey::from_pem(&std::fs::read("key.pem")?)?;
/// let cert = Certificate::from_pem(&std::fs::read("cert.pem")?)?;
/// let mut dtls = DtlsServer::setup(&key, &cert, &[])?;
/// let mut udp = UdpServer::listen("127.0.0.1:4433")?;
/// let mut peers = Vec::new();
/// loop {
///     udp.poll()?;
///     while let Some(conn) = udp.take_connection() {
///         let peer = dtls.take_connection(conn);
///         // The cookie-less first ClientHello gives a peer in Status::Error (like Godot):
///         // drop it; the client's retry with the cookie comes as a new connection.
///         if peer.status() == Status::Handshaking {
///             peers.push(peer);
///         }
///     }
///     for p in &mut peers {
///         p.poll()?;
///         while let Some(d) = p.get_packet()? {
///             p.put_packet(&d)?;
///         }
///     }
/// #   break;
/// }
/// # Ok(()) }
/// ```
///
/// # Weakness, compared with [`DtlsListener`](super::DtlsListener)
///
/// The cookie exchange itself is stateless here too ([`CookieListener`]), but the
/// [`UdpServer`](crate::udp::UdpServer) in front of it keeps a pending peer (and its queued
/// datagrams) for every new source address *before* any DTLS check, so spoofed source
/// addresses fill its pending slots and crowd out real clients until the application takes
/// and drops them. The listener keeps nothing per source until a cookie checks out.
pub struct DtlsServer {
    cookies: CookieListener,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer").finish_non_exhaustive()
    }
}

impl DtlsServer {
    /// Sets the server up with a private key, its certificate and the chain sent after it
    /// (Godot's `setup(key, cert, chain)`; pass `&[]` for a self-signed certificate).
    ///
    /// # Errors
    /// [`DtlsError`] if the key does not match the certificate or OpenSSL refuses them.
    pub fn setup(
        key: &PrivateKey,
        cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<Self, DtlsError> {
        let config = ServerConfig::builder(key.clone(), cert.clone())
            .chain(chain.to_vec())
            .build()?;
        Self::with_config(&config)
    }

    /// Sets the server up from a complete [`ServerConfig`] (MTU, handshake timeout, ...).
    ///
    /// # Errors
    /// [`DtlsError`] if OpenSSL refuses the configuration.
    pub fn with_config(config: &ServerConfig) -> Result<Self, DtlsError> {
        Ok(Self {
            cookies: CookieListener::new(config)?,
        })
    }

    /// Wraps a UDP peer from a [`UdpServer`](crate::udp::UdpServer) in DTLS.
    ///
    /// It looks at the datagrams queued on `udp` (normally one ClientHello):
    /// * a ClientHello without a valid cookie is answered with a HelloVerifyRequest, and the
    ///   returned peer is in [`Status::Error`], exactly like Godot. Drop it: the client's
    ///   next ClientHello (with the cookie) arrives as a new connection on the `UdpServer`;
    /// * a ClientHello with a valid cookie starts the handshake: the peer is in
    ///   [`Status::Handshaking`]; [`poll`](PacketPeerDtls::poll) it until connected;
    /// * anything else gives a peer in [`Status::Error`].
    pub fn take_connection(&mut self, mut udp: PacketPeerUdp) -> PacketPeerDtls {
        let Some(from) = udp.remote_addr() else {
            debug!("take_connection: UDP peer without a remote address");
            return PacketPeerDtls::without_session(udp, Status::Error);
        };
        let now = Instant::now();
        loop {
            let datagram = match udp.get_packet() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => {
                    debug!(%from, error = %e, "take_connection: receive failed");
                    break;
                }
            };
            match self.cookies.handle_datagram(now, from, &datagram) {
                // `Refused` only answers `handle_datagram_admit(.., false)`, never used here.
                ListenOutcome::Drop | ListenOutcome::Refused => {
                    trace!(%from, "take_connection: datagram dropped")
                }
                ListenOutcome::Reply(hvr) => {
                    trace!(%from, "take_connection: HelloVerifyRequest sent");
                    if let Err(e) = udp.put_packet(&hvr) {
                        debug!(%from, error = %e, "take_connection: could not send HelloVerifyRequest");
                    }
                }
                ListenOutcome::Accept(session) => {
                    debug!(%from, "take_connection: cookie valid, handshake starts");
                    let mut peer = PacketPeerDtls::with_session(udp, session);
                    if let Err(e) = peer.poll() {
                        debug!(%from, error = %e, "take_connection: first poll failed");
                    }
                    return peer;
                }
            }
        }
        PacketPeerDtls::without_session(udp, Status::Error)
    }
}
