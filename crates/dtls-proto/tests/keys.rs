//! keys: generation, Godot-shaped certificates and PEM round trips with clear errors.

use dtls_proto::keys::{
    Certificate, CertificateParams, KeyError, KeyFormat, KeyType, PrivateKey, SubjectAltName,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509};

fn begins_with(pem: &[u8], label: &str) {
    let text = String::from_utf8_lossy(pem);
    assert!(
        text.starts_with(&format!("-----BEGIN {label}-----")),
        "{text}"
    );
}

fn same_key(a: &PrivateKey, b: &PrivateKey) {
    assert!(a.pkey().public_eq(b.pkey()));
    assert_eq!(
        a.to_pem(KeyFormat::Pkcs8).unwrap(),
        b.to_pem(KeyFormat::Pkcs8).unwrap()
    );
}

#[test]
fn rsa_2048_pkcs1_and_pkcs8_round_trip() {
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    assert_eq!(key.key_type(), Some(KeyType::Rsa(2048)));
    assert_eq!(key.default_format(), KeyFormat::Pkcs1);
    let pkcs1 = key.to_pem(KeyFormat::Pkcs1).unwrap();
    begins_with(&pkcs1, "RSA PRIVATE KEY");
    same_key(&key, &PrivateKey::from_pem(&pkcs1).unwrap());
    let pkcs8 = key.to_pem(KeyFormat::Pkcs8).unwrap();
    begins_with(&pkcs8, "PRIVATE KEY");
    same_key(&key, &PrivateKey::from_pem(&pkcs8).unwrap());
    let err = key.to_pem(KeyFormat::Sec1).unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedKeyType { .. }), "{err}");
    assert!(err.to_string().contains("RSA-2048"), "{err}");
}

#[test]
fn p256_sec1_and_pkcs8_round_trip() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert_eq!(key.key_type(), Some(KeyType::EcP256));
    let sec1 = key.to_pem(KeyFormat::Sec1).unwrap();
    begins_with(&sec1, "EC PRIVATE KEY");
    same_key(&key, &PrivateKey::from_pem(&sec1).unwrap());
    let pkcs8 = key.to_pem(KeyFormat::Pkcs8).unwrap();
    begins_with(&pkcs8, "PRIVATE KEY");
    same_key(&key, &PrivateKey::from_pem(&pkcs8).unwrap());
    assert!(matches!(
        key.to_pem(KeyFormat::Pkcs1),
        Err(KeyError::UnsupportedKeyType { .. })
    ));
    // Debug output never shows key material.
    assert_eq!(format!("{key:?}"), "PrivateKey(EC-256)");
}

#[test]
fn unsupported_rsa_sizes_are_refused() {
    for bits in [0, 512, 1024, 2047, 8192] {
        match PrivateKey::generate(KeyType::Rsa(bits)) {
            Err(KeyError::UnsupportedKeySize { bits: b }) => assert_eq!(b, bits),
            other => panic!("{bits}: {other:?}"),
        }
    }
}

#[test]
fn self_signed_certificate_is_godot_shaped_and_usable_as_a_ca() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert =
        Certificate::self_signed(&key, &CertificateParams::new("localhost").validity_days(3))
            .unwrap();
    assert_eq!(cert.common_name().as_deref(), Some("localhost"));
    assert!(cert.subject_alt_names().is_empty());
    assert_eq!(cert.names(), vec!["localhost".to_string()]);
    assert_eq!(cert.x509().version(), 2, "X.509 v3");
    assert_eq!(
        cert.x509().signature_algorithm().object().nid(),
        openssl::nid::Nid::ECDSA_WITH_SHA256
    );
    cert.check_key(&key).unwrap();
    let text = String::from_utf8(cert.x509().to_text().unwrap()).unwrap();
    assert!(text.contains("CA:TRUE"), "{text}");
    let fingerprint = cert.sha256_fingerprint().unwrap();
    assert_eq!(fingerprint.len(), 32 * 3 - 1);

    // Usable as a CA: a leaf it signs verifies against a store holding only it.
    let leaf_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "leaf").unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_issuer_name(cert.x509().subject_name()).unwrap();
    b.set_pubkey(leaf_key.pkey()).unwrap();
    b.set_not_before(cert.x509().not_before()).unwrap();
    b.set_not_after(cert.x509().not_after()).unwrap();
    b.sign(key.pkey(), openssl::hash::MessageDigest::sha256())
        .unwrap();
    let leaf: X509 = b.build();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(cert.x509().to_owned()).unwrap();
    let store = store.build();
    let mut ctx = X509StoreContext::new().unwrap();
    let chain = Stack::new().unwrap();
    let ok = ctx
        .init(&store, &leaf, &chain, |c| c.verify_cert())
        .unwrap();
    assert!(
        ok,
        "{}: a leaf signed by the self-signed certificate must verify",
        ctx.error()
    );
}

#[test]
fn certificate_with_sans_and_rsa_4096() {
    let key = PrivateKey::generate(KeyType::Rsa(4096)).unwrap();
    assert_eq!(key.key_type(), Some(KeyType::Rsa(4096)));
    let params = CertificateParams::new("srv")
        .subject_alt_name(SubjectAltName::Dns("srv.example".into()))
        .subject_alt_name(SubjectAltName::Ip("::1".parse().unwrap()))
        .ca(false);
    let cert = Certificate::self_signed(&key, &params).unwrap();
    assert_eq!(
        cert.subject_alt_names(),
        vec!["srv.example".to_string(), "::1".to_string()]
    );
    assert_eq!(cert.names(), cert.subject_alt_names());
    let text = String::from_utf8(cert.x509().to_text().unwrap()).unwrap();
    assert!(!text.contains("CA:TRUE"), "{text}");
}

#[test]
fn bad_certificate_params() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    for params in [
        CertificateParams::new(""),
        CertificateParams::new("x".repeat(65)),
        CertificateParams::new("ok").validity_days(0),
    ] {
        assert!(matches!(
            Certificate::self_signed(&key, &params),
            Err(KeyError::InvalidParams { .. })
        ));
    }
}

#[test]
fn certificates_and_chains_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let a = Certificate::self_signed(&key, &CertificateParams::new("a")).unwrap();
    let b = Certificate::self_signed(&key, &CertificateParams::new("b")).unwrap();
    let single = dir.path().join("cert.crt");
    a.save(&single).unwrap();
    begins_with(&std::fs::read(&single).unwrap(), "CERTIFICATE");
    assert_eq!(Certificate::load(&single).unwrap(), a);
    let chain_path = dir.path().join("chain.pem");
    Certificate::save_chain(&[a.clone(), b.clone()], &chain_path).unwrap();
    assert_eq!(
        Certificate::load_chain(&chain_path).unwrap(),
        vec![a.clone(), b]
    );
    // The first certificate of a chain file.
    assert_eq!(Certificate::load(&chain_path).unwrap(), a);

    for format in [KeyFormat::Pkcs8, KeyFormat::Sec1] {
        let path = dir.path().join(format!("key-{format:?}.key"));
        key.save(&path, format).unwrap();
        same_key(&key, &PrivateKey::load(&path).unwrap());
    }
}

#[test]
fn key_certificate_mismatch_names_the_certificate() {
    let k1 = PrivateKey::generate(KeyType::EcP256).unwrap();
    let k2 = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let cert = Certificate::self_signed(&k1, &CertificateParams::new("mine")).unwrap();
    let err = cert.check_key(&k2).unwrap_err();
    assert!(matches!(err, KeyError::KeyMismatch { .. }));
    let text = err.to_string();
    assert!(
        text.contains("CN=mine") && text.contains("RSA-2048") && text.contains("EC-256"),
        "{text}"
    );
}

#[test]
fn unreadable_and_bad_pem_files_say_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = PrivateKey::load(&missing).unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }));
    assert!(err.to_string().contains("nope.pem"), "{err}");
    assert!(Certificate::load(&missing)
        .unwrap_err()
        .to_string()
        .contains("nope.pem"));

    // A certificate where a key is expected.
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("c")).unwrap();
    let cert_path = dir.path().join("cert.pem");
    cert.save(&cert_path).unwrap();
    let err = PrivateKey::load(&cert_path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyError::BadPem { .. }));
    assert!(text.contains("cert.pem"), "{text}");
    assert!(
        text.contains("expected an unencrypted PEM private key"),
        "{text}"
    );
    assert!(text.contains("found BEGIN CERTIFICATE"), "{text}");

    // A key where a certificate is expected.
    let key_path = dir.path().join("key.pem");
    key.save(&key_path, KeyFormat::Pkcs8).unwrap();
    let text = Certificate::load(&key_path).unwrap_err().to_string();
    assert!(
        text.contains("key.pem") && text.contains("found BEGIN PRIVATE KEY"),
        "{text}"
    );
    let text = Certificate::load_chain(&key_path).unwrap_err().to_string();
    assert!(
        text.contains("key.pem") && text.contains("one or more PEM certificates"),
        "{text}"
    );

    // Not PEM at all, empty, corrupted base64, encrypted.
    let text = PrivateKey::from_pem(b"hello").unwrap_err().to_string();
    assert!(text.contains("no PEM header"), "{text}");
    let text = Certificate::from_pem(b"").unwrap_err().to_string();
    assert!(text.contains("empty input"), "{text}");
    let corrupt = b"-----BEGIN PRIVATE KEY-----\nnot base64!!\n-----END PRIVATE KEY-----\n";
    let text = PrivateKey::from_pem(corrupt).unwrap_err().to_string();
    assert!(
        text.contains("<memory>") && text.contains("found BEGIN PRIVATE KEY"),
        "{text}"
    );
    let encrypted = key
        .pkey()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret")
        .unwrap();
    let text = PrivateKey::from_pem(&encrypted).unwrap_err().to_string();
    assert!(text.contains("encrypted"), "{text}");
}
