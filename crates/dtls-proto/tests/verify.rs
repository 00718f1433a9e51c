//! Certificate verification: trusted CA / pinned certificate, and every failure told apart.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey, SubjectAltName};
use dtls_proto::{ClientConfig, ClientConfigBuilder, DtlsError, DtlsSession, ServerConfig, Status};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509Builder, X509NameBuilder};
use support::{drive_clean, ec_identity};

fn connect(
    server_key: PrivateKey,
    server_cert: Certificate,
    chain: Vec<Certificate>,
    client: ClientConfigBuilder,
) -> (DtlsSession, DtlsSession) {
    let now = Instant::now();
    let server_cfg = ServerConfig::builder(server_key, server_cert)
        .chain(chain)
        .build()
        .unwrap();
    let mut client = DtlsSession::client(&client.build().unwrap(), now).unwrap();
    let mut server = DtlsSession::server(&server_cfg, now).unwrap();
    drive_clean(&mut client, &mut server);
    (client, server)
}

/// A certificate for `key` with CN `cn`, issued by (`issuer_cert`, `issuer_key`) or self-signed,
/// valid from `from_days` to `to_days` relative to now (negative = past).
fn make_cert(
    key: &PrivateKey,
    cn: &str,
    issuer: Option<(&Certificate, &PrivateKey)>,
    ca: bool,
    from_days: i64,
    to_days: i64,
) -> Certificate {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((c, _)) => b.set_issuer_name(c.x509().subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(key.pkey()).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now + from_days * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + to_days * 86_400).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    }
    let signer = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signer.pkey(), MessageDigest::sha256()).unwrap();
    Certificate::from_x509(b.build())
}

fn rand_serial() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_be_bytes(b) >> 1
}

#[test]
fn pinned_self_signed_certificate_is_trusted() {
    let (key, cert) = ec_identity("localhost");
    let (client, server) = connect(
        key,
        cert.clone(),
        vec![],
        ClientConfig::builder()
            .hostname("localhost")
            .trusted_certificate(cert),
    );
    assert_eq!(client.status(), Status::Connected, "{:?}", client.error());
    assert_eq!(server.status(), Status::Connected);
}

#[test]
fn ca_and_intermediate_chain_is_trusted() {
    let root_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let root = make_cert(&root_key, "Test Root", None, true, -1, 30);
    let mid_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mid = make_cert(
        &mid_key,
        "Test Intermediate",
        Some((&root, &root_key)),
        true,
        -1,
        30,
    );
    let leaf_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = make_cert(
        &leaf_key,
        "server.test",
        Some((&mid, &mid_key)),
        false,
        -1,
        30,
    );
    let client = ClientConfig::builder()
        .hostname("server.test")
        .trusted_certificate(root.clone());
    let (client, _) = connect(leaf_key.clone(), leaf.clone(), vec![mid], client);
    assert_eq!(client.status(), Status::Connected, "{:?}", client.error());

    // Without the intermediate the chain cannot be built: untrusted (unable to get local issuer).
    let client = ClientConfig::builder()
        .hostname("server.test")
        .trusted_certificate(root);
    let (client, _) = connect(leaf_key, leaf, vec![], client);
    match client.error() {
        Some(DtlsError::UntrustedCertificate { code, .. }) => assert!([20, 21].contains(code)),
        other => panic!("expected UntrustedCertificate, got {other:?}"),
    }
}

#[test]
fn wrong_ca_is_untrusted_and_the_server_sees_the_alert() {
    let (key, cert) = ec_identity("localhost");
    let (_, other_cert) = ec_identity("localhost");
    let (client, server) = connect(
        key,
        cert,
        vec![],
        ClientConfig::builder()
            .hostname("localhost")
            .trusted_certificate(other_cert),
    );
    assert_eq!(client.status(), Status::Error);
    let err = client.error().unwrap();
    match err {
        DtlsError::UntrustedCertificate { code, subject, .. } => {
            assert_eq!(*code, 18, "self-signed certificate not trusted");
            assert!(subject.contains("localhost"), "{subject}");
        }
        other => panic!("expected UntrustedCertificate, got {other:?}"),
    }
    assert!(err.to_string().contains("untrusted"), "{err}");
    assert_eq!(server.status(), Status::Error);
    match server.error() {
        Some(DtlsError::PeerAlert { code, description }) => {
            assert_eq!(*code, 48, "unknown_ca");
            assert!(
                description.to_lowercase().contains("unknown ca"),
                "{description}"
            );
        }
        other => panic!("expected PeerAlert, got {other:?}"),
    }
}

#[test]
fn system_store_does_not_trust_a_self_signed_certificate() {
    let (key, cert) = ec_identity("localhost");
    let (client, _) = connect(
        key,
        cert,
        vec![],
        ClientConfig::builder().hostname("localhost"),
    );
    assert!(
        matches!(
            client.error(),
            Some(DtlsError::UntrustedCertificate { code: 18, .. })
        ),
        "{:?}",
        client.error()
    );
}

#[test]
fn wrong_hostname_names_both_names() {
    let (key, cert) = ec_identity("localhost");
    let (client, server) = connect(
        key,
        cert.clone(),
        vec![],
        ClientConfig::builder()
            .hostname("wronghost.example")
            .trusted_certificate(cert),
    );
    assert_eq!(client.status(), Status::ErrorHostnameMismatch);
    let err = client.error().unwrap();
    assert_eq!(
        err,
        &DtlsError::HostnameMismatch {
            expected: "wronghost.example".into(),
            presented: vec!["localhost".into()],
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("wronghost.example") && text.contains("localhost"),
        "{text}"
    );
    assert_eq!(server.status(), Status::Error);
    assert!(matches!(server.error(), Some(DtlsError::PeerAlert { .. })));
}

#[test]
fn subject_alt_names_are_matched_and_reported() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let params = CertificateParams::new("ignored-cn")
        .subject_alt_name(SubjectAltName::Dns("game.example".into()))
        .subject_alt_name(SubjectAltName::Ip("127.0.0.1".parse().unwrap()));
    let cert = Certificate::self_signed(&key, &params).unwrap();
    for good in ["game.example", "127.0.0.1"] {
        let builder = ClientConfig::builder()
            .hostname(good)
            .trusted_certificate(cert.clone());
        let (client, _) = connect(key.clone(), cert.clone(), vec![], builder);
        assert_eq!(
            client.status(),
            Status::Connected,
            "{good}: {:?}",
            client.error()
        );
    }
    // With SANs present the CN is not used for matching.
    for bad in ["ignored-cn", "other.example", "127.0.0.2"] {
        let builder = ClientConfig::builder()
            .hostname(bad)
            .trusted_certificate(cert.clone());
        let (client, _) = connect(key.clone(), cert.clone(), vec![], builder);
        assert_eq!(client.status(), Status::ErrorHostnameMismatch, "{bad}");
        assert_eq!(
            client.error(),
            Some(&DtlsError::HostnameMismatch {
                expected: bad.into(),
                presented: vec!["game.example".into(), "127.0.0.1".into()],
            })
        );
    }
}

#[test]
fn expired_certificate() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = make_cert(&key, "localhost", None, true, -10, -1);
    let builder = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert.clone());
    let (client, _) = connect(key, cert.clone(), vec![], builder);
    assert_eq!(client.status(), Status::Error);
    match client.error() {
        Some(DtlsError::CertificateExpired { not_after, subject }) => {
            assert_eq!(not_after, &cert.not_after());
            assert!(subject.contains("localhost"));
        }
        other => panic!("expected CertificateExpired, got {other:?}"),
    }
}

#[test]
fn not_yet_valid_certificate() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = make_cert(&key, "localhost", None, true, 2, 30);
    let builder = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert.clone());
    let (client, _) = connect(key, cert.clone(), vec![], builder);
    match client.error() {
        Some(DtlsError::CertificateNotYetValid { not_before, .. }) => {
            assert_eq!(not_before, &cert.not_before())
        }
        other => panic!("expected CertificateNotYetValid, got {other:?}"),
    }
}

#[test]
fn verify_off_accepts_anything() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let expired = make_cert(&key, "someone-else", None, false, -10, -1);
    let (_, other) = ec_identity("x");
    let builder = ClientConfig::builder()
        .verify(false)
        .hostname("localhost")
        .trusted_certificate(other);
    let (client, server) = connect(key, expired.clone(), vec![], builder);
    assert_eq!(client.status(), Status::Connected, "{:?}", client.error());
    assert_eq!(server.status(), Status::Connected);
    assert_eq!(client.peer_certificate(), Some(expired));
}

#[test]
fn key_certificate_mismatch_is_a_config_error() {
    let (key, _) = ec_identity("a");
    let (_, cert) = ec_identity("b");
    let err = ServerConfig::builder(key, cert).build().unwrap_err();
    match &err {
        DtlsError::Config { message } => {
            assert!(
                message.contains("does not match") && message.contains("CN=b"),
                "{message}"
            )
        }
        other => panic!("expected Config, got {other:?}"),
    }
}

#[test]
fn bad_builder_values_are_refused() {
    let (key, cert) = ec_identity("a");
    for mtu in [0, 100, 70_000] {
        let err = ServerConfig::builder(key.clone(), cert.clone())
            .mtu(mtu)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(&format!("MTU {mtu}")), "{err}");
        assert!(ClientConfig::builder().mtu(mtu).build().is_err());
    }
    assert!(ClientConfig::builder()
        .handshake_timeout(Duration::ZERO)
        .build()
        .is_err());
    assert!(ServerConfig::builder(key, cert)
        .cookie_rotation(Duration::ZERO)
        .build()
        .is_err());
    assert!(ClientConfig::builder()
        .hostname("bad host")
        .build()
        .is_err());
}
