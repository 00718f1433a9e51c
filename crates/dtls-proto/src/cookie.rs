//! Stateless DTLS cookies (RFC 6347 section 4.2.1): HMAC-SHA256 over the client's address with a secret
//! that rotates; the current and the previous secret are accepted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openssl::ex_data::Index;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::ssl::{Ssl, SslContextBuilder, SslRef};

use crate::DtlsError;

/// Length of the HMAC-SHA256 cookie.
pub(crate) const COOKIE_LEN: usize = 32;
const SECRET_LEN: usize = 32;

/// Per-SSL data the cookie callbacks read: the peer address (stateless listener, or a stateful server
/// told its peer) and a per-session nonce (stateful servers).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CookieBinding {
    /// The datagram's source address.
    pub(crate) peer: Option<SocketAddr>,
    /// Random bytes unique to one stateful session.
    pub(crate) nonce: Option<[u8; 16]>,
}

/// A [`CookieBinding`] shared between an SSL's ex_data and its owner, so the owner can change the peer
/// address between calls without needing `&mut SslRef` (which `SslStream` does not hand out).
pub(crate) type SharedBinding = Arc<Mutex<CookieBinding>>;

/// Reads a shared binding, tolerating a poisoned lock (the data is plain `Copy`).
pub(crate) fn read_binding(shared: &SharedBinding) -> CookieBinding {
    *shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replaces a shared binding.
pub(crate) fn write_binding(shared: &SharedBinding, binding: CookieBinding) {
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = binding;
}

/// The ex_data slot holding each server SSL's [`SharedBinding`].
pub(crate) fn binding_index() -> Result<Index<Ssl, SharedBinding>, DtlsError> {
    static INDEX: OnceLock<Result<Index<Ssl, SharedBinding>, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(|e| e.to_string()))
        .clone()
        .map_err(|message| DtlsError::Openssl { message })
}

#[derive(Debug)]
struct Secrets {
    current: MacKey,
    previous: Option<MacKey>,
    rotated_at: Option<Instant>,
}

/// One secret as an OpenSSL HMAC key, made once per rotation rather than once per cookie (making
/// the key costs about as much as the MAC itself). Cloning shares the key.
#[derive(Debug, Clone)]
struct MacKey(PKey<Private>);

/// The rotating HMAC secrets of one [`crate::ServerConfig`], shared by all its sessions and listeners.
#[derive(Debug)]
pub(crate) struct CookieSecrets {
    state: Mutex<Secrets>,
    period: Duration,
}

fn random_secret() -> Result<MacKey, DtlsError> {
    let mut s = [0u8; SECRET_LEN];
    openssl::rand::rand_bytes(&mut s).map_err(|e| DtlsError::openssl(&e))?;
    let key = PKey::hmac(&s).map_err(|e| DtlsError::openssl(&e))?;
    Ok(MacKey(key))
}

impl CookieSecrets {
    pub(crate) fn new(period: Duration) -> Result<Self, DtlsError> {
        Ok(CookieSecrets {
            state: Mutex::new(Secrets {
                current: random_secret()?,
                previous: None,
                rotated_at: None,
            }),
            period,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Secrets> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The rotation period.
    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Rotates the secret if a period has passed since the last rotation (the first call starts the clock).
    pub(crate) fn rotate_if_due(&self, now: Instant) {
        let mut s = self.lock();
        let Some(at) = s.rotated_at else {
            s.rotated_at = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(at);
        if elapsed < self.period {
            return;
        }
        let Ok(fresh) = random_secret() else {
            tracing::warn!("cannot draw a fresh cookie secret; keeping the current one");
            return;
        };
        // After two or more periods of silence the previous secret is stale too.
        let stale = std::mem::replace(&mut s.current, fresh);
        s.previous = (elapsed < self.period.saturating_mul(2)).then_some(stale);
        s.rotated_at = Some(now);
        tracing::debug!("rotated the DTLS cookie secret");
    }

    fn mac(key: &MacKey, binding: &CookieBinding) -> Option<[u8; COOKIE_LEN]> {
        let mut signer = Signer::new(MessageDigest::sha256(), &key.0).ok()?;
        match binding.peer {
            Some(SocketAddr::V4(a)) => {
                signer.update(&[4]).ok()?;
                signer.update(&a.ip().octets()).ok()?;
                signer.update(&a.port().to_be_bytes()).ok()?;
            }
            Some(SocketAddr::V6(a)) => {
                signer.update(&[6]).ok()?;
                signer.update(&a.ip().octets()).ok()?;
                signer.update(&a.port().to_be_bytes()).ok()?;
            }
            None => signer.update(&[0]).ok()?,
        }
        if let Some(nonce) = &binding.nonce {
            signer.update(nonce).ok()?;
        }
        let mut out = [0u8; COOKIE_LEN];
        let n = signer.sign(&mut out).ok()?;
        (n == COOKIE_LEN).then_some(out)
    }

    /// The cookie for `binding` under the current secret.
    pub(crate) fn generate(&self, binding: &CookieBinding) -> Option<[u8; COOKIE_LEN]> {
        let key = self.lock().current.clone();
        Self::mac(&key, binding)
    }

    /// Whether `cookie` was made for `binding` under the current or the previous secret.
    pub(crate) fn verify(&self, binding: &CookieBinding, cookie: &[u8]) -> bool {
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let (current, previous) = {
            let s = self.lock();
            (s.current.clone(), s.previous.clone())
        };
        [Some(current), previous].iter().flatten().any(|secret| {
            Self::mac(secret, binding).is_some_and(|mac| openssl::memcmp::eq(&mac, cookie))
        })
    }

    /// Installs the DTLS cookie callbacks on a server context.
    pub(crate) fn install(self: &Arc<Self>, ctx: &mut SslContextBuilder) -> Result<(), DtlsError> {
        let index = binding_index()?;
        let gen_secrets = Arc::clone(self);
        ctx.set_cookie_generate_cb(move |ssl: &mut SslRef, out: &mut [u8]| {
            let binding = ssl.ex_data(index).map(read_binding).unwrap_or_default();
            match gen_secrets.generate(&binding) {
                Some(cookie) if out.len() >= cookie.len() => {
                    out[..cookie.len()].copy_from_slice(&cookie);
                    Ok(cookie.len())
                }
                _ => Err(openssl::error::ErrorStack::get()),
            }
        });
        let verify_secrets = Arc::clone(self);
        ctx.set_cookie_verify_cb(move |ssl: &mut SslRef, cookie: &[u8]| {
            let binding = ssl.ex_data(index).map(read_binding).unwrap_or_default();
            verify_secrets.verify(&binding, cookie)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_bound_to_address_and_rotates() {
        let period = Duration::from_secs(10);
        let secrets = CookieSecrets::new(period).unwrap();
        let t0 = Instant::now();
        secrets.rotate_if_due(t0);
        let a = CookieBinding {
            peer: Some("127.0.0.1:1000".parse().unwrap()),
            nonce: None,
        };
        let b = CookieBinding {
            peer: Some("127.0.0.1:1001".parse().unwrap()),
            nonce: None,
        };
        let cookie = secrets.generate(&a).unwrap();
        assert!(secrets.verify(&a, &cookie));
        assert!(!secrets.verify(&b, &cookie));
        assert!(!secrets.verify(&a, &cookie[..31]));
        secrets.rotate_if_due(t0 + period + Duration::from_secs(1));
        assert!(
            secrets.verify(&a, &cookie),
            "previous secret still accepted"
        );
        assert_ne!(secrets.generate(&a).unwrap(), cookie);
        secrets.rotate_if_due(t0 + period * 2 + Duration::from_secs(2));
        assert!(
            !secrets.verify(&a, &cookie),
            "secret two rotations old rejected"
        );
    }
}
