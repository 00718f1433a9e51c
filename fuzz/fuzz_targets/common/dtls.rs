//! What the DTLS fuzz targets share (`dtls_server_input`, `enet_dtls_input`; each includes this
//! file with `#[path]`): a server identity and a client configuration made once per process,
//! addresses, the input reader and the datagram corruption.

use std::net::SocketAddr;
use std::sync::OnceLock;

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use dtls_proto::{ClientConfig, ServerConfig};

/// A server with a self-signed P-256 certificate (made once: key generation is slow).
pub fn server_config() -> &'static ServerConfig {
    static CONFIG: OnceLock<ServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let key = PrivateKey::generate(KeyType::EcP256).expect("key");
        let cert = Certificate::self_signed(&key, &CertificateParams::new("fuzz")).expect("cert");
        ServerConfig::builder(key, cert).build().expect("config")
    })
}

/// A client that does not verify the server.
pub fn client_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        ClientConfig::builder()
            .verify(false)
            .build()
            .expect("client config")
    })
}

/// A socket address from its text.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The fuzz input, read front to back; past its end every read is zero or empty.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> usize {
        let hi = self.byte().unwrap_or(0);
        let lo = self.byte().unwrap_or(0);
        usize::from(u16::from_be_bytes([hi, lo]))
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// Applies `[pos: u16][xor: u8]` from the input to `datagram` (xor 0 keeps it intact).
pub fn corrupt(input: &mut Input<'_>, mut datagram: Vec<u8>) -> Vec<u8> {
    let pos = input.u16();
    let xor = input.byte().unwrap_or(0);
    if !datagram.is_empty() {
        let i = pos % datagram.len();
        datagram[i] ^= xor;
    }
    datagram
}
