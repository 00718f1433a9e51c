//! [`DtlsError`]: why a DTLS session failed or an API call was refused.

use std::time::Duration;

/// Why a DTLS session failed, or why an API call was refused.
///
/// Certificate problems are told apart from OpenSSL's X.509 verify result (not just "certificate verify
/// failed"), so a user can see whether the peer is untrusted, expired or presents another name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The peer's certificate does not chain to a trusted certificate (X.509 verify codes such as
    /// 18 self-signed, 19 self-signed in chain, 20 unable to get local issuer, 21 unable to verify leaf,
    /// 2 unable to get issuer, 27 untrusted, 28 rejected).
    #[error(
        "untrusted peer certificate (X.509 verify error {code}: {reason}); subject: {subject}"
    )]
    UntrustedCertificate {
        /// OpenSSL's X.509 verify result code.
        code: i32,
        /// OpenSSL's text for that code.
        reason: String,
        /// Subject of the peer's leaf certificate, if it was received.
        subject: String,
    },
    /// The certificate is valid and trusted but issued for other names than the one we connect to.
    #[error(
        "certificate hostname mismatch: expected {expected:?}, certificate presents {presented:?}"
    )]
    HostnameMismatch {
        /// The hostname (or IP address) we wanted.
        expected: String,
        /// The names in the peer certificate: its DNS/IP subject alternative names, or its CN when it has none.
        presented: Vec<String>,
    },
    /// The peer's certificate is past its notAfter date (X.509 verify code 10).
    #[error("peer certificate expired (not after {not_after}); subject: {subject}")]
    CertificateExpired {
        /// The certificate's notAfter time as OpenSSL prints it.
        not_after: String,
        /// Subject of the expired certificate.
        subject: String,
    },
    /// The peer's certificate is not valid yet (X.509 verify code 9).
    #[error("peer certificate not yet valid (not before {not_before}); subject: {subject}")]
    CertificateNotYetValid {
        /// The certificate's notBefore time as OpenSSL prints it.
        not_before: String,
        /// Subject of the certificate.
        subject: String,
    },
    /// Any other X.509 verification failure (bad signature, invalid purpose, ...).
    #[error("peer certificate rejected (X.509 verify error {code}: {reason})")]
    CertificateInvalid {
        /// OpenSSL's X.509 verify result code.
        code: i32,
        /// OpenSSL's text for that code.
        reason: String,
    },
    /// The peer sent a fatal alert.
    #[error("peer sent fatal alert {code} ({description})")]
    PeerAlert {
        /// TLS alert description code (RFC 5246 section 7.2), e.g. 40 handshake_failure, 48 unknown_ca.
        code: u8,
        /// OpenSSL's name for the alert.
        description: String,
    },
    /// The handshake did not complete within the configured time.
    #[error("DTLS handshake did not complete within {timeout:?}")]
    HandshakeTimeout {
        /// The configured handshake timeout.
        timeout: Duration,
    },
    /// The operation needs an established session (`send` before the handshake completed or after close).
    #[error("DTLS session is not connected")]
    NotConnected,
    /// An application datagram larger than one DTLS record allows at the current MTU.
    #[error("packet of {size} bytes exceeds the DTLS data MTU of {max} bytes")]
    PacketTooLarge {
        /// Size of the rejected packet.
        size: usize,
        /// Largest payload that fits one datagram ([`crate::DtlsSession::data_mtu`]).
        max: usize,
    },
    /// An empty application datagram: DTLS sends no record for zero bytes, so the peer would never
    /// see it; refused instead of silently dropped.
    #[error("empty datagram: DTLS cannot carry a zero-length application datagram")]
    EmptyPacket,
    /// A DTLS protocol failure (bad handshake message, unsupported parameters, decrypt failure, ...).
    #[error("DTLS protocol error: {message}")]
    Protocol {
        /// OpenSSL's description of the failure.
        message: String,
    },
    /// A configuration value OpenSSL refused (cipher list, key/certificate pair, MTU, ...).
    #[error("invalid DTLS configuration: {message}")]
    Config {
        /// What was wrong.
        message: String,
    },
    /// A [`crate::SessionHandle`] that names no session of the [`crate::Endpoint`]: the session ended
    /// (its slot may since hold another one) or the handle came from another endpoint.
    #[error("no such DTLS session (stale or foreign handle)")]
    UnknownSession,
    /// [`crate::Endpoint::connect`] named an address that already has a session.
    #[error("a DTLS session with {addr} already exists")]
    SessionExists {
        /// The peer address.
        addr: std::net::SocketAddr,
    },
    /// [`crate::Endpoint::connect`] would exceed the endpoint's session limit.
    #[error("DTLS session limit ({max}) reached")]
    SessionLimit {
        /// The configured maximum number of sessions.
        max: usize,
    },
    /// An unexpected OpenSSL failure outside a handshake (allocation, internal error).
    #[error("OpenSSL error: {message}")]
    Openssl {
        /// OpenSSL's error queue, formatted.
        message: String,
    },
}

impl DtlsError {
    pub(crate) fn openssl(stack: &openssl::error::ErrorStack) -> Self {
        DtlsError::Openssl {
            message: stack.to_string(),
        }
    }

    pub(crate) fn config(what: &str, stack: &openssl::error::ErrorStack) -> Self {
        DtlsError::Config {
            message: format!("{what}: {stack}"),
        }
    }
}
