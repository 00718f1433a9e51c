//! [`ServerConfig`] and [`ClientConfig`]: OpenSSL DTLS 1.2 contexts built once and shared by sessions.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{
    SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};

use crate::cookie::CookieSecrets;
use crate::keys::{Certificate, PrivateKey};
use crate::DtlsError;

/// Default DTLS MTU: the largest datagram (DTLS record header included, IP/UDP headers excluded) this
/// crate writes. 1440 bytes fits a 1500-byte Ethernet path over IPv6 (1500 - 40 - 8 = 1452) and leaves a
/// [`crate::DtlsSession::data_mtu`] of 1403 bytes with AES-GCM (1411 with ChaCha20-Poly1305), so ENet's
/// default 1392/1400-byte datagrams fit one record. The ENet layer must still cap its datagrams at
/// `data_mtu()` because OpenSSL never splits application records.
pub const DEFAULT_MTU: usize = 1440;
/// Smallest MTU accepted by the builders (OpenSSL cannot fragment a handshake below this).
pub const MIN_MTU: usize = 256;
/// Largest MTU accepted by the builders (one DTLS record carries at most 16 KiB of plaintext).
pub const MAX_MTU: usize = 16_384;
/// Default time a handshake may take, measured from the `now` a session is created at.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default period after which the cookie secret rotates; a cookie stays valid for one to two periods.
pub const DEFAULT_COOKIE_ROTATION: Duration = Duration::from_secs(30);

/// `NO_QUERY_MTU`: keep our MTU (without it OpenSSL resets it to 256 bytes at the handshake, since our
/// in-memory BIO cannot report a path MTU). No session tickets, no renegotiation: neither is used by
/// Godot and both only add state and attack surface.
const DTLS_OPTIONS: SslOptions = SslOptions::NO_QUERY_MTU
    .union(SslOptions::NO_TICKET)
    .union(SslOptions::NO_RENEGOTIATION);

fn check_mtu(mtu: usize) -> Result<(), DtlsError> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(DtlsError::Config {
            message: format!("MTU {mtu} is outside {MIN_MTU}..={MAX_MTU}"),
        })
    }
}

fn check_timeout(timeout: Duration) -> Result<(), DtlsError> {
    if timeout.is_zero() {
        return Err(DtlsError::Config {
            message: "handshake timeout must be greater than zero".into(),
        });
    }
    Ok(())
}

fn dtls12_only(builder: &mut SslContextBuilder) -> Result<(), DtlsError> {
    builder
        .set_min_proto_version(Some(SslVersion::DTLS1_2))
        .map_err(|e| DtlsError::config("cannot require DTLS 1.2", &e))?;
    builder
        .set_max_proto_version(Some(SslVersion::DTLS1_2))
        .map_err(|e| DtlsError::config("cannot require DTLS 1.2", &e))?;
    builder.set_options(DTLS_OPTIONS);
    Ok(())
}

/// The default DTLS 1.2 cipher list of both sides: AES-128-GCM first, then OpenSSL's defaults
/// in their order (AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM with DHE, the CBC suites).
///
/// Why AES-128-GCM: ENet over DTLS seals and opens one record per datagram, and on machines
/// with AES instructions it is the cheapest AEAD OpenSSL has. Measured here (criterion,
/// `cargo bench -p dtls-proto --bench dtls -- record/suite`, seal + open of one record):
/// AES-128-GCM 0.93 us at 1,200 bytes, AES-256-GCM 1.02 us, ChaCha20-Poly1305 2.09 us (1.49 us
/// even at 200 bytes: OpenSSL 3.0 sets ChaCha up again for every record). Godot's mbedTLS
/// client, which offers ChaCha20-Poly1305 first, gets AES-128-GCM from a server with this list,
/// since servers pick by their own order ([`ServerConfigBuilder::cipher_list`]). Every suite
/// in it is also offered by Godot 3.2's mbedTLS and by `openssl s_client`.
///
/// (`DEFAULT` cannot follow other entries in OpenSSL's syntax, so the rest is written as
/// `ALL:!COMPLEMENTOFDEFAULT:!eNULL`, which is the same set as `DEFAULT`, in the same order.)
pub const DEFAULT_CIPHER_LIST: &str =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ALL:!COMPLEMENTOFDEFAULT:!eNULL";

fn set_ciphers(builder: &mut SslContextBuilder, list: Option<&str>) -> Result<(), DtlsError> {
    let list = list.unwrap_or(DEFAULT_CIPHER_LIST);
    builder
        .set_cipher_list(list)
        .map_err(|e| DtlsError::config(&format!("cipher list {list:?} refused"), &e))?;
    Ok(())
}

/// Server-side DTLS settings: the key and certificate (chain) presented to clients, MTU, handshake timeout
/// and the cookie secret. Cheap to clone (the OpenSSL context is reference counted); clones share the
/// cookie secret.
///
/// Accepts Godot 3.2 (mbedTLS) clients: empty SNI, no x25519, no RSA-PSS, and Godot-shaped certificates.
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) ctx: SslContext,
    pub(crate) mtu: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) cookies: Arc<CookieSecrets>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("mtu", &self.mtu)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Starts a builder for a server presenting `cert` (signed for `key`).
    ///
    /// ```
    /// use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
    /// use dtls_proto::ServerConfig;
    /// let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    /// let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    /// let config = ServerConfig::builder(key, cert).mtu(1200).build().unwrap();
    /// assert_eq!(config.mtu(), 1200);
    /// ```
    pub fn builder(key: PrivateKey, cert: Certificate) -> ServerConfigBuilder {
        ServerConfigBuilder {
            key,
            cert,
            chain: Vec::new(),
            mtu: DEFAULT_MTU,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            cookie_rotation: DEFAULT_COOKIE_ROTATION,
            cipher_list: None,
        }
    }

    /// The configured DTLS MTU (largest datagram written).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The configured handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The configured cookie secret rotation period.
    pub fn cookie_rotation(&self) -> Duration {
        self.cookies.period()
    }
}

/// Builder for [`ServerConfig`]; see [`ServerConfig::builder`].
#[derive(Debug)]
#[must_use]
pub struct ServerConfigBuilder {
    key: PrivateKey,
    cert: Certificate,
    chain: Vec<Certificate>,
    mtu: usize,
    handshake_timeout: Duration,
    cookie_rotation: Duration,
    cipher_list: Option<String>,
}

impl ServerConfigBuilder {
    /// Restricts the DTLS 1.2 cipher suites (OpenSSL cipher-list syntax, e.g.
    /// `ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256`). Default:
    /// [`DEFAULT_CIPHER_LIST`]. The server picks the first suite of this list that the client
    /// offers (OpenSSL's `SSL_OP_CIPHER_SERVER_PREFERENCE`), not the client's favourite.
    pub fn cipher_list(mut self, ciphers: impl Into<String>) -> Self {
        self.cipher_list = Some(ciphers.into());
        self
    }

    /// Intermediate certificates sent after the leaf certificate (leaf's issuer first).
    pub fn chain(mut self, chain: Vec<Certificate>) -> Self {
        self.chain = chain;
        self
    }

    /// DTLS MTU: largest datagram written, record header included (default [`DEFAULT_MTU`]).
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Time a handshake may take from the session's creation (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Period after which the cookie HMAC secret rotates (default [`DEFAULT_COOKIE_ROTATION`]).
    /// Rotation is driven by the `now` passed to the listener and sessions.
    pub fn cookie_rotation(mut self, period: Duration) -> Self {
        self.cookie_rotation = period;
        self
    }

    /// Builds the OpenSSL context.
    ///
    /// # Errors
    /// [`DtlsError::Config`] when the key does not match the certificate, the MTU is outside
    /// [`MIN_MTU`]..=[`MAX_MTU`], a period is zero, or OpenSSL refuses the key or a certificate.
    pub fn build(self) -> Result<ServerConfig, DtlsError> {
        check_mtu(self.mtu)?;
        check_timeout(self.handshake_timeout)?;
        if self.cookie_rotation.is_zero() {
            return Err(DtlsError::Config {
                message: "cookie rotation period must be greater than zero".into(),
            });
        }
        self.cert
            .check_key(&self.key)
            .map_err(|e| DtlsError::Config {
                message: e.to_string(),
            })?;
        let mut b = SslContextBuilder::new(SslMethod::dtls_server())
            .map_err(|e| DtlsError::config("cannot create a DTLS server context", &e))?;
        dtls12_only(&mut b)?;
        set_ciphers(&mut b, self.cipher_list.as_deref())?;
        // Our order, not the client's: the cheapest AEAD per record (see DEFAULT_CIPHER_LIST).
        b.set_options(SslOptions::COOKIE_EXCHANGE | SslOptions::CIPHER_SERVER_PREFERENCE);
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        b.set_verify(SslVerifyMode::NONE);
        b.set_certificate(self.cert.x509())
            .map_err(|e| DtlsError::config("certificate refused", &e))?;
        for c in &self.chain {
            b.add_extra_chain_cert(c.x509().to_owned())
                .map_err(|e| DtlsError::config("chain certificate refused", &e))?;
        }
        b.set_private_key(self.key.pkey())
            .map_err(|e| DtlsError::config("private key refused", &e))?;
        b.check_private_key().map_err(|e| {
            DtlsError::config(
                &format!(
                    "the private key does not match the certificate {}",
                    self.cert.subject()
                ),
                &e,
            )
        })?;
        let cookies = Arc::new(CookieSecrets::new(self.cookie_rotation)?);
        cookies.install(&mut b)?;
        Ok(ServerConfig {
            ctx: b.build(),
            mtu: self.mtu,
            handshake_timeout: self.handshake_timeout,
            cookies,
        })
    }
}

/// Client-side DTLS settings: certificate verification, the expected hostname, trust anchors, MTU and
/// handshake timeout. Cheap to clone.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) ctx: SslContext,
    pub(crate) verify: bool,
    pub(crate) hostname: Option<String>,
    pub(crate) mtu: usize,
    pub(crate) handshake_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("verify", &self.verify)
            .field("hostname", &self.hostname)
            .field("mtu", &self.mtu)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Starts a builder: verification on, no hostname, the system trust store, [`DEFAULT_MTU`],
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    ///
    /// ```
    /// use dtls_proto::ClientConfig;
    /// // Like Godot's `verify = false`: accept any server certificate.
    /// let insecure = ClientConfig::builder().verify(false).build().unwrap();
    /// assert!(!insecure.verifies());
    /// ```
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder {
            verify: true,
            hostname: None,
            trusted: Vec::new(),
            mtu: DEFAULT_MTU,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            cipher_list: None,
            any_hostname: false,
        }
    }

    /// Whether the server certificate is verified.
    pub fn verifies(&self) -> bool {
        self.verify
    }

    /// The hostname sent as SNI and checked against the certificate, if any.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The configured DTLS MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The configured handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

/// Builder for [`ClientConfig`]; see [`ClientConfig::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientConfigBuilder {
    verify: bool,
    hostname: Option<String>,
    trusted: Vec<Certificate>,
    mtu: usize,
    handshake_timeout: Duration,
    cipher_list: Option<String>,
    any_hostname: bool,
}

impl ClientConfigBuilder {
    /// Restricts the DTLS 1.2 cipher suites offered (OpenSSL cipher-list syntax), in order of
    /// preference. Default: [`DEFAULT_CIPHER_LIST`].
    pub fn cipher_list(mut self, ciphers: impl Into<String>) -> Self {
        self.cipher_list = Some(ciphers.into());
        self
    }

    /// Verify the server certificate (default `true`). With `false` any certificate is accepted
    /// (Godot's `verify = false`), and no hostname is checked.
    ///
    /// With verification on, [`build`](Self::build) also wants the server's name
    /// ([`hostname`](Self::hostname)), or the explicit choice not to check it
    /// ([`allow_any_hostname`](Self::allow_any_hostname)).
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// With verification on and no [`hostname`](Self::hostname), accept a certificate for any
    /// name, as long as it chains to a trusted root (Godot's `connect_to_peer` with
    /// `validate_certs = true` and an empty `for_hostname`).
    ///
    /// Without this call such a configuration is refused by [`build`](Self::build): with the
    /// system trust store, "any name" means any server that holds any publicly trusted
    /// certificate, which is rarely what a client wants. It is reasonable when the only trusted
    /// root is your own (a [`trusted_certificate`](Self::trusted_certificate) that signs
    /// nothing else, or the pinned server certificate itself).
    pub fn allow_any_hostname(mut self) -> Self {
        self.any_hostname = true;
        self
    }

    /// The server's name: sent as SNI (unless it is an IP address) and, with verification on, matched
    /// against the certificate's DNS/IP subject alternative names, or its CN when it has none.
    /// An empty string means "no hostname" (no SNI, no name check), as in Godot.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        let h = hostname.into();
        self.hostname = (!h.is_empty()).then_some(h);
        self
    }

    /// Trusts `cert` as a root: a CA certificate, or the server's own self-signed certificate (pinning).
    /// Once any certificate is added, the system trust store is not used.
    pub fn trusted_certificate(mut self, cert: Certificate) -> Self {
        self.trusted.push(cert);
        self
    }

    /// Trusts each certificate of `certs`; see [`ClientConfigBuilder::trusted_certificate`].
    pub fn trusted_certificates(mut self, certs: impl IntoIterator<Item = Certificate>) -> Self {
        self.trusted.extend(certs);
        self
    }

    /// DTLS MTU: largest datagram written, record header included (default [`DEFAULT_MTU`]).
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Time a handshake may take from the session's creation (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Builds the OpenSSL context.
    ///
    /// # Errors
    /// [`DtlsError::Config`] for an MTU outside [`MIN_MTU`]..=[`MAX_MTU`], a zero timeout, a hostname
    /// OpenSSL refuses, verification without a hostname and without
    /// [`allow_any_hostname`](Self::allow_any_hostname), or a trust store failure.
    pub fn build(self) -> Result<ClientConfig, DtlsError> {
        check_mtu(self.mtu)?;
        check_timeout(self.handshake_timeout)?;
        if let Some(h) = &self.hostname {
            if h.parse::<IpAddr>().is_err()
                && (h.len() > 253 || h.bytes().any(|b| b == 0 || b.is_ascii_whitespace()))
            {
                return Err(DtlsError::Config {
                    message: format!("invalid hostname {h:?}"),
                });
            }
        }
        if self.verify && self.hostname.is_none() && !self.any_hostname {
            let roots = if self.trusted.is_empty() {
                "the system trust store"
            } else {
                "the trusted certificates"
            };
            return Err(DtlsError::Config {
                message: format!(
                    "certificate verification is on but no hostname is set, so any certificate \
                     chaining to {roots} would be accepted: set .hostname(name), or call \
                     .allow_any_hostname() to accept that, or .verify(false)"
                ),
            });
        }
        let mut b = SslContextBuilder::new(SslMethod::dtls_client())
            .map_err(|e| DtlsError::config("cannot create a DTLS client context", &e))?;
        dtls12_only(&mut b)?;
        set_ciphers(&mut b, self.cipher_list.as_deref())?;
        if self.verify {
            b.set_verify(SslVerifyMode::PEER);
            if self.trusted.is_empty() {
                b.set_default_verify_paths()
                    .map_err(|e| DtlsError::config("cannot load the system trust store", &e))?;
            } else {
                for cert in &self.trusted {
                    b.cert_store_mut()
                        .add_cert(cert.x509().to_owned())
                        .map_err(|e| {
                            DtlsError::config(
                                &format!("cannot trust certificate {}", cert.subject()),
                                &e,
                            )
                        })?;
                }
            }
        } else {
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(ClientConfig {
            ctx: b.build(),
            verify: self.verify,
            hostname: self.hostname,
            mtu: self.mtu,
            handshake_timeout: self.handshake_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CertificateParams, KeyType};

    fn self_signed() -> Certificate {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap()
    }

    #[test]
    fn verification_without_a_hostname_is_an_explicit_choice() {
        // The default (verify on, no hostname, system store) is refused, with a reason.
        let err = ClientConfig::builder().build().unwrap_err();
        let DtlsError::Config { message } = &err else {
            panic!("expected Config, got {err:?}");
        };
        assert!(
            message.contains("no hostname") && message.contains("system trust store"),
            "{message}"
        );
        assert!(message.contains("allow_any_hostname"), "{message}");
        // The same with trusted roots, and with an empty hostname (Godot's "no hostname").
        let err = ClientConfig::builder()
            .trusted_certificate(self_signed())
            .hostname("")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("trusted certificates"), "{err}");

        // Each explicit choice builds.
        let any = ClientConfig::builder()
            .allow_any_hostname()
            .build()
            .unwrap();
        assert!(any.verifies() && any.hostname().is_none());
        let named = ClientConfig::builder()
            .hostname("localhost")
            .build()
            .unwrap();
        assert_eq!(named.hostname(), Some("localhost"));
        let off = ClientConfig::builder().verify(false).build().unwrap();
        assert!(!off.verifies());
        let pinned = ClientConfig::builder()
            .trusted_certificate(self_signed())
            .allow_any_hostname()
            .build()
            .unwrap();
        assert!(pinned.verifies());
    }
}
