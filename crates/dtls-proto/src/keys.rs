//! Keys and certificates: RSA / ECDSA P-256 generation, Godot-shaped self-signed certificates
//! (basicConstraints CA:TRUE, so one certificate works both pinned and as a trust anchor), and PEM I/O
//! (PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, certificates and chains).
//!
//! ```
//! use dtls_proto::keys::{Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey, SubjectAltName};
//! let key = PrivateKey::generate(KeyType::EcP256).unwrap();
//! let params = CertificateParams::new("game.example")
//!     .validity_days(30)
//!     .subject_alt_name(SubjectAltName::Dns("game.example".into()));
//! let cert = Certificate::self_signed(&key, &params).unwrap();
//! let pem = key.to_pem(KeyFormat::Pkcs8).unwrap();
//! let again = PrivateKey::from_pem(&pem).unwrap();
//! cert.check_key(&again).unwrap();
//! assert_eq!(cert.names(), vec!["game.example".to_string()]);
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509Ref, X509};

/// RSA key sizes [`PrivateKey::generate`] accepts.
pub const RSA_KEY_SIZES: [u32; 3] = [2048, 3072, 4096];

/// What went wrong with a key, certificate or PEM file.
///
/// Variants that wrap another error (an I/O error, OpenSSL's error queue) print it in their
/// message and do not return it from [`source`](std::error::Error::source), so that a report
/// that walks the chain shows it once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {error}", path = path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error (printed in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The input is not the PEM object that was expected.
    #[error(
        "{origin}: expected {expected}, found {found}{}",
        detail_suffix(detail)
    )]
    BadPem {
        /// The file path, or `<memory>` for in-memory PEM.
        origin: String,
        /// What was expected, e.g. "a PEM private key (PKCS#1, PKCS#8 or SEC1)".
        expected: &'static str,
        /// What was found, e.g. "BEGIN CERTIFICATE" or "no PEM header".
        found: String,
        /// OpenSSL's reason, when it had one.
        detail: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key ({key}) does not match the certificate {subject} ({cert_key})")]
    KeyMismatch {
        /// Subject of the certificate.
        subject: String,
        /// Description of the private key.
        key: String,
        /// Description of the certificate's public key.
        cert_key: String,
    },
    /// An RSA size other than [`RSA_KEY_SIZES`].
    #[error("unsupported RSA key size {bits} (supported: 2048, 3072, 4096)")]
    UnsupportedKeySize {
        /// The requested size in bits.
        bits: u32,
    },
    /// The key's algorithm cannot be used for the requested operation (e.g. PKCS#1 output of an EC key).
    #[error("unsupported key type: {message}")]
    UnsupportedKeyType {
        /// What was attempted on what kind of key.
        message: String,
    },
    /// Certificate parameters OpenSSL refused (empty or over-long CN, zero validity, ...).
    #[error("invalid certificate parameters: {message}")]
    InvalidParams {
        /// What was wrong.
        message: String,
    },
    /// An unexpected OpenSSL failure.
    #[error("OpenSSL error while {context}: {stack}")]
    Openssl {
        /// What we were doing.
        context: &'static str,
        /// OpenSSL's error queue (printed in the message, so not also a `source()`).
        stack: ErrorStack,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn ossl(context: &'static str) -> impl FnOnce(ErrorStack) -> KeyError {
    move |stack| KeyError::Openssl { context, stack }
}

/// The first `-----BEGIN X-----` label of `pem`, for error messages.
fn pem_label(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    match text.find("-----BEGIN ") {
        Some(start) => {
            let rest = &text[start + 5..];
            let end = rest.find("-----").unwrap_or(rest.len()).min(64);
            rest[..end].to_string()
        }
        None if pem.is_empty() => "an empty input".to_string(),
        None => "no PEM header (-----BEGIN ...-----)".to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|error| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        error,
    })
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    std::fs::write(path, data).map_err(|error| KeyError::Io {
        action: "write",
        path: path.to_path_buf(),
        error,
    })
}

/// Writes a private key file: created with mode 0600 on Unix, and an existing file is
/// tightened to 0600 before the key is written into it (truncating keeps the old mode).
fn write_private_file(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let io_err = |error| KeyError::Io {
        action: "write",
        path: path.to_path_buf(),
        error,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut file = opts.open(path).map_err(io_err)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
        file.write_all(data).map_err(io_err)
    }
    #[cfg(not(unix))]
    {
        let mut file = opts.open(path).map_err(io_err)?;
        file.write_all(data).map_err(io_err)
    }
}

/// Kind of private key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA with this many bits (2048, 3072 or 4096). Godot's `Crypto.generate_rsa` keys are RSA.
    Rsa(u32),
    /// ECDSA on NIST P-256 (prime256v1): much faster handshakes than RSA.
    EcP256,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyType::EcP256 => f.write_str("ECDSA P-256"),
        }
    }
}

/// PEM encoding of a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFormat {
    /// `BEGIN RSA PRIVATE KEY` (RSA only; what Godot's `CryptoKey.save` writes).
    Pkcs1,
    /// `BEGIN PRIVATE KEY` (any algorithm; what `openssl req -newkey` writes).
    Pkcs8,
    /// `BEGIN EC PRIVATE KEY` (EC only).
    Sec1,
}

/// A private key (RSA or EC), wrapping an OpenSSL `PKey`.
#[derive(Clone)]
pub struct PrivateKey {
    pkey: PKey<Private>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey({})", self.describe())
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedKeySize`] for RSA sizes other than [`RSA_KEY_SIZES`].
    pub fn generate(kind: KeyType) -> Result<Self, KeyError> {
        let pkey = match kind {
            KeyType::Rsa(bits) => {
                if !RSA_KEY_SIZES.contains(&bits) {
                    return Err(KeyError::UnsupportedKeySize { bits });
                }
                let rsa = Rsa::generate(bits).map_err(ossl("generating an RSA key"))?;
                PKey::from_rsa(rsa).map_err(ossl("wrapping an RSA key"))?
            }
            KeyType::EcP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
                    .map_err(ossl("loading the P-256 curve"))?;
                let ec = EcKey::generate(&group).map_err(ossl("generating a P-256 key"))?;
                PKey::from_ec_key(ec).map_err(ossl("wrapping an EC key"))?
            }
        };
        Ok(PrivateKey { pkey })
    }

    /// Parses an unencrypted PEM private key: PKCS#1, PKCS#8 or SEC1.
    ///
    /// # Errors
    /// [`KeyError::BadPem`] naming what was found instead (for example a certificate, or an encrypted key).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem_named(pem, "<memory>")
    }

    fn from_pem_named(pem: &[u8], origin: &str) -> Result<Self, KeyError> {
        const EXPECTED: &str =
            "an unencrypted PEM private key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)";
        let label = pem_label(pem);
        let text = String::from_utf8_lossy(pem);
        if label.contains("ENCRYPTED") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(KeyError::BadPem {
                origin: origin.to_string(),
                expected: EXPECTED,
                found: format!("an encrypted key ({label})"),
                detail: "encrypted keys are not supported".into(),
            });
        }
        // The passphrase variant never prompts on a terminal (the plain one would for encrypted keys).
        PKey::private_key_from_pem_passphrase(pem, b"")
            .map(|pkey| PrivateKey { pkey })
            .map_err(|e| KeyError::BadPem {
                origin: origin.to_string(),
                expected: EXPECTED,
                found: label,
                detail: first_reason(&e),
            })
    }

    /// Reads a PEM private key file (see [`PrivateKey::from_pem`]).
    ///
    /// # Errors
    /// [`KeyError::Io`] with the path when the file cannot be read, [`KeyError::BadPem`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        Self::from_pem_named(&pem, &path.display().to_string())
    }

    /// Encodes the key as PEM in `format`.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedKeyType`] for PKCS#1 of a non-RSA key or SEC1 of a non-EC key.
    pub fn to_pem(&self, format: KeyFormat) -> Result<Vec<u8>, KeyError> {
        match format {
            KeyFormat::Pkcs8 => self
                .pkey
                .private_key_to_pem_pkcs8()
                .map_err(ossl("encoding a PKCS#8 key")),
            KeyFormat::Pkcs1 => {
                let rsa = self.pkey.rsa().map_err(|_| KeyError::UnsupportedKeyType {
                    message: format!("PKCS#1 needs an RSA key, this is {}", self.describe()),
                })?;
                rsa.private_key_to_pem()
                    .map_err(ossl("encoding a PKCS#1 key"))
            }
            KeyFormat::Sec1 => {
                let ec = self
                    .pkey
                    .ec_key()
                    .map_err(|_| KeyError::UnsupportedKeyType {
                        message: format!("SEC1 needs an EC key, this is {}", self.describe()),
                    })?;
                ec.private_key_to_pem().map_err(ossl("encoding a SEC1 key"))
            }
        }
    }

    /// The natural PEM form: PKCS#1 for RSA (Godot-compatible), SEC1 for EC, PKCS#8 otherwise.
    pub fn default_format(&self) -> KeyFormat {
        match self.pkey.id() {
            Id::RSA => KeyFormat::Pkcs1,
            Id::EC => KeyFormat::Sec1,
            _ => KeyFormat::Pkcs8,
        }
    }

    /// Writes the key to `path` as PEM in `format` (the file is created or truncated). On Unix
    /// the file gets mode 0600 (owner read/write only), also when it existed with a wider mode.
    ///
    /// # Errors
    /// As [`PrivateKey::to_pem`], plus [`KeyError::Io`] with the path.
    pub fn save(&self, path: impl AsRef<Path>, format: KeyFormat) -> Result<(), KeyError> {
        let pem = self.to_pem(format)?;
        write_private_file(path.as_ref(), &pem)
    }

    /// The key's type, or `None` for algorithms [`PrivateKey::generate`] does not make (other curves,
    /// odd RSA sizes, Ed25519 ...), which still work if OpenSSL accepts them.
    pub fn key_type(&self) -> Option<KeyType> {
        match self.pkey.id() {
            Id::RSA => Some(KeyType::Rsa(self.pkey.bits())),
            Id::EC => {
                let ec = self.pkey.ec_key().ok()?;
                (ec.group().curve_name() == Some(Nid::X9_62_PRIME256V1)).then_some(KeyType::EcP256)
            }
            _ => None,
        }
    }

    /// A short human description such as `RSA-2048` or `ECDSA P-256` (never key material).
    pub fn describe(&self) -> String {
        describe_pkey(&self.pkey)
    }

    /// The inner OpenSSL key.
    pub fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }

    /// Wraps an OpenSSL key.
    pub fn from_pkey(pkey: PKey<Private>) -> Self {
        PrivateKey { pkey }
    }

    /// Unwraps the OpenSSL key.
    pub fn into_pkey(self) -> PKey<Private> {
        self.pkey
    }
}

fn describe_pkey<T: HasPublic>(pkey: &PKeyRef<T>) -> String {
    match pkey.id() {
        Id::RSA => format!("RSA-{}", pkey.bits()),
        Id::EC => format!("EC-{}", pkey.bits()),
        Id::ED25519 => "Ed25519".into(),
        Id::ED448 => "Ed448".into(),
        other => format!("key type {}", other.as_raw()),
    }
}

fn first_reason(e: &ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|err| err.reason())
        .unwrap_or("")
        .to_string()
}

/// A subject alternative name for [`CertificateParams`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// A DNS name, e.g. `localhost`.
    Dns(String),
    /// An IP address, e.g. `127.0.0.1`.
    Ip(IpAddr),
}

/// Parameters of a self-signed certificate; see [`Certificate::self_signed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateParams {
    /// Subject and issuer CN.
    pub common_name: String,
    /// Days from now until notAfter (notBefore is now).
    pub validity_days: u32,
    /// Subject alternative names; empty gives a CN-only certificate like Godot's.
    pub subject_alt_names: Vec<SubjectAltName>,
    /// Mark the certificate `basicConstraints: critical, CA:TRUE` (default, as Godot does), so clients
    /// can trust it either as a pinned certificate or as a CA.
    pub ca: bool,
}

impl CertificateParams {
    /// CN `common_name`, 365 days, no SANs, CA:TRUE.
    pub fn new(common_name: impl Into<String>) -> Self {
        CertificateParams {
            common_name: common_name.into(),
            validity_days: 365,
            subject_alt_names: Vec::new(),
            ca: true,
        }
    }

    /// Sets the validity in days from now.
    #[must_use]
    pub fn validity_days(mut self, days: u32) -> Self {
        self.validity_days = days;
        self
    }

    /// Adds a subject alternative name.
    #[must_use]
    pub fn subject_alt_name(mut self, san: SubjectAltName) -> Self {
        self.subject_alt_names.push(san);
        self
    }

    /// Sets whether basicConstraints says CA:TRUE.
    #[must_use]
    pub fn ca(mut self, ca: bool) -> Self {
        self.ca = ca;
        self
    }
}

/// An X.509 certificate, wrapping an OpenSSL `X509`.
#[derive(Clone)]
pub struct Certificate {
    x509: X509,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("not_after", &self.not_after())
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        match (self.x509.to_der(), other.x509.to_der()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Certificate {
    /// Makes a self-signed certificate for `key`: X.509 v3, random 128-bit serial, SHA-256 signature,
    /// subject = issuer = CN, subjectKeyIdentifier, optional SANs, and CA:TRUE unless `params.ca` is false.
    ///
    /// # Errors
    /// [`KeyError::InvalidParams`] for an empty or over-long (> 64 bytes) CN or zero validity.
    pub fn self_signed(key: &PrivateKey, params: &CertificateParams) -> Result<Self, KeyError> {
        if params.common_name.is_empty() || params.common_name.len() > 64 {
            return Err(KeyError::InvalidParams {
                message: format!(
                    "common name must be 1 to 64 bytes, got {} bytes",
                    params.common_name.len()
                ),
            });
        }
        if params.validity_days == 0 {
            return Err(KeyError::InvalidParams {
                message: "validity must be at least one day".into(),
            });
        }
        let mut b = X509Builder::new().map_err(ossl("creating a certificate"))?;
        b.set_version(2).map_err(ossl("setting the version"))?;
        let mut serial = BigNum::new().map_err(ossl("creating a serial"))?;
        serial
            .rand(128, MsbOption::MAYBE_ZERO, false)
            .map_err(ossl("drawing a random serial"))?;
        let serial = serial
            .to_asn1_integer()
            .map_err(ossl("encoding the serial"))?;
        b.set_serial_number(&serial)
            .map_err(ossl("setting the serial"))?;
        let mut name = X509NameBuilder::new().map_err(ossl("creating a name"))?;
        name.append_entry_by_nid(Nid::COMMONNAME, &params.common_name)
            .map_err(|e| KeyError::InvalidParams {
                message: format!("common name {:?} refused: {e}", params.common_name),
            })?;
        let name = name.build();
        b.set_subject_name(&name)
            .map_err(ossl("setting the subject"))?;
        b.set_issuer_name(&name)
            .map_err(ossl("setting the issuer"))?;
        b.set_pubkey(key.pkey())
            .map_err(ossl("setting the public key"))?;
        let not_before = Asn1Time::days_from_now(0).map_err(ossl("computing notBefore"))?;
        let not_after =
            Asn1Time::days_from_now(params.validity_days).map_err(|e| KeyError::InvalidParams {
                message: format!("validity of {} days refused: {e}", params.validity_days),
            })?;
        b.set_not_before(&not_before)
            .map_err(ossl("setting notBefore"))?;
        b.set_not_after(&not_after)
            .map_err(ossl("setting notAfter"))?;
        if params.ca {
            let bc = BasicConstraints::new()
                .critical()
                .ca()
                .build()
                .map_err(ossl("building basicConstraints"))?;
            b.append_extension(bc)
                .map_err(ossl("adding basicConstraints"))?;
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(ossl("building subjectKeyIdentifier"))?;
        b.append_extension(ski)
            .map_err(ossl("adding subjectKeyIdentifier"))?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(None, None))
            .map_err(ossl("building authorityKeyIdentifier"))?;
        b.append_extension(aki)
            .map_err(ossl("adding authorityKeyIdentifier"))?;
        if !params.subject_alt_names.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for name in &params.subject_alt_names {
                match name {
                    SubjectAltName::Dns(d) => san.dns(d),
                    SubjectAltName::Ip(ip) => san.ip(&ip.to_string()),
                };
            }
            let san =
                san.build(&b.x509v3_context(None, None))
                    .map_err(|e| KeyError::InvalidParams {
                        message: format!("subject alternative names refused: {e}"),
                    })?;
            b.append_extension(san)
                .map_err(ossl("adding subjectAltName"))?;
        }
        b.sign(key.pkey(), MessageDigest::sha256())
            .map_err(ossl("signing the certificate"))?;
        Ok(Certificate { x509: b.build() })
    }

    /// Parses the first PEM certificate in `pem`.
    ///
    /// # Errors
    /// [`KeyError::BadPem`] naming what was found instead.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem_named(pem, "<memory>")
    }

    fn from_pem_named(pem: &[u8], origin: &str) -> Result<Self, KeyError> {
        X509::from_pem(pem)
            .map(|x509| Certificate { x509 })
            .map_err(|e| KeyError::BadPem {
                origin: origin.to_string(),
                expected: "a PEM certificate (BEGIN CERTIFICATE)",
                found: pem_label(pem),
                detail: first_reason(&e),
            })
    }

    /// Parses every PEM certificate in `pem` (a chain, leaf first), requiring at least one.
    ///
    /// # Errors
    /// [`KeyError::BadPem`] when there is no certificate or one is malformed.
    pub fn chain_from_pem(pem: &[u8]) -> Result<Vec<Self>, KeyError> {
        Self::chain_from_pem_named(pem, "<memory>")
    }

    fn chain_from_pem_named(pem: &[u8], origin: &str) -> Result<Vec<Self>, KeyError> {
        let bad = |found: String, detail: String| KeyError::BadPem {
            origin: origin.to_string(),
            expected: "one or more PEM certificates (BEGIN CERTIFICATE)",
            found,
            detail,
        };
        let stack = X509::stack_from_pem(pem).map_err(|e| bad(pem_label(pem), first_reason(&e)))?;
        if stack.is_empty() {
            return Err(bad(pem_label(pem), String::new()));
        }
        Ok(stack.into_iter().map(|x509| Certificate { x509 }).collect())
    }

    /// Reads the first certificate of a PEM file.
    ///
    /// # Errors
    /// [`KeyError::Io`] with the path, or [`KeyError::BadPem`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        Self::from_pem_named(&pem, &path.display().to_string())
    }

    /// Reads every certificate of a PEM file (a chain, leaf first).
    ///
    /// # Errors
    /// [`KeyError::Io`] with the path, or [`KeyError::BadPem`] naming the file.
    pub fn load_chain(path: impl AsRef<Path>) -> Result<Vec<Self>, KeyError> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        Self::chain_from_pem_named(&pem, &path.display().to_string())
    }

    /// Encodes the certificate as PEM (`BEGIN CERTIFICATE`).
    ///
    /// # Errors
    /// [`KeyError::Openssl`] if OpenSSL cannot encode it.
    pub fn to_pem(&self) -> Result<Vec<u8>, KeyError> {
        self.x509.to_pem().map_err(ossl("encoding a certificate"))
    }

    /// Writes the certificate to `path` as PEM.
    ///
    /// # Errors
    /// [`KeyError::Io`] with the path.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_file(path.as_ref(), &self.to_pem()?)
    }

    /// Writes `chain` (leaf first) to `path` as concatenated PEM certificates.
    ///
    /// # Errors
    /// [`KeyError::Io`] with the path.
    pub fn save_chain(chain: &[Certificate], path: impl AsRef<Path>) -> Result<(), KeyError> {
        let mut pem = Vec::new();
        for c in chain {
            pem.extend_from_slice(&c.to_pem()?);
        }
        write_file(path.as_ref(), &pem)
    }

    /// Checks that `key` is the private key of this certificate.
    ///
    /// # Errors
    /// [`KeyError::KeyMismatch`] naming the certificate's subject and both key types.
    pub fn check_key(&self, key: &PrivateKey) -> Result<(), KeyError> {
        let public = self
            .x509
            .public_key()
            .map_err(ossl("reading the certificate's public key"))?;
        if public.public_eq(key.pkey()) {
            Ok(())
        } else {
            Err(KeyError::KeyMismatch {
                subject: self.subject(),
                key: key.describe(),
                cert_key: describe_pkey(&public),
            })
        }
    }

    /// The subject as `CN=...` style text.
    pub fn subject(&self) -> String {
        x509_subject(&self.x509)
    }

    /// The subject CN, if any.
    pub fn common_name(&self) -> Option<String> {
        x509_common_name(&self.x509)
    }

    /// The DNS and IP subject alternative names, as text.
    pub fn subject_alt_names(&self) -> Vec<String> {
        x509_sans(&self.x509)
    }

    /// The names a hostname check looks at: the SANs, or the CN when there are none.
    pub fn names(&self) -> Vec<String> {
        x509_names(&self.x509)
    }

    /// notBefore as OpenSSL prints it (e.g. `Jan  1 00:00:00 2025 GMT`).
    pub fn not_before(&self) -> String {
        self.x509.not_before().to_string()
    }

    /// notAfter as OpenSSL prints it.
    pub fn not_after(&self) -> String {
        self.x509.not_after().to_string()
    }

    /// SHA-256 fingerprint as colon-separated upper-case hex (what `openssl x509 -fingerprint -sha256` shows).
    ///
    /// # Errors
    /// [`KeyError::Openssl`] if hashing fails.
    pub fn sha256_fingerprint(&self) -> Result<String, KeyError> {
        let digest = self
            .x509
            .digest(MessageDigest::sha256())
            .map_err(ossl("hashing a certificate"))?;
        Ok(digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"))
    }

    /// The inner OpenSSL certificate.
    pub fn x509(&self) -> &X509Ref {
        &self.x509
    }

    /// Wraps an OpenSSL certificate.
    pub fn from_x509(x509: X509) -> Self {
        Certificate { x509 }
    }

    /// Unwraps the OpenSSL certificate.
    pub fn into_x509(self) -> X509 {
        self.x509
    }
}

pub(crate) fn x509_subject(x: &X509Ref) -> String {
    let parts: Vec<String> = x
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}

pub(crate) fn x509_common_name(x: &X509Ref) -> Option<String> {
    x.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

pub(crate) fn x509_sans(x: &X509Ref) -> Vec<String> {
    let Some(names) = x.subject_alt_names() else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|n| {
            if let Some(d) = n.dnsname() {
                Some(d.to_string())
            } else {
                n.ipaddress().and_then(|ip| match ip.len() {
                    4 => <[u8; 4]>::try_from(ip)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(ip)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    _ => None,
                })
            }
        })
        .collect()
}

pub(crate) fn x509_names(x: &X509Ref) -> Vec<String> {
    let sans = x509_sans(x);
    if sans.is_empty() {
        x509_common_name(x).into_iter().collect()
    } else {
        sans
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_keys_are_saved_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        // A new file.
        let fresh = dir.path().join("fresh.pem");
        key.save(&fresh, KeyFormat::Pkcs8).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        // An existing world-readable file is tightened, not just truncated.
        let old = dir.path().join("old.pem");
        std::fs::write(&old, b"previous contents, longer than nothing").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        key.save(&old, key.default_format()).unwrap();
        assert_eq!(mode(&old), 0o600);
        // The key reads back, and nothing of the previous contents is left.
        let back = PrivateKey::load(&old).unwrap();
        assert_eq!(
            back.to_pem(KeyFormat::Pkcs8).unwrap(),
            key.to_pem(KeyFormat::Pkcs8).unwrap()
        );
        assert!(!std::fs::read_to_string(&old).unwrap().contains("previous"));
        // Certificates stay readable by others (they are public).
        let cert = Certificate::self_signed(&key, &CertificateParams::new("x")).unwrap();
        let cert_path = dir.path().join("cert.pem");
        cert.save(&cert_path).unwrap();
        assert_ne!(mode(&cert_path), 0o600);
    }

    #[test]
    fn wrapped_errors_are_printed_once() {
        use std::error::Error as _;
        let missing = Path::new("/nonexistent-dir/key.pem");
        let err = PrivateKey::load(missing).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent-dir/key.pem") && text.contains("No such file"),
            "{text}"
        );
        assert!(
            err.source().is_none(),
            "the cause is in the message already"
        );
        let err = ossl("testing")(ErrorStack::get());
        assert!(
            err.to_string().starts_with("OpenSSL error while testing"),
            "{err}"
        );
        assert!(err.source().is_none());
    }
}
