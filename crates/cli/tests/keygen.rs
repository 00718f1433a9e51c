//! `enet-dtls keygen` against the real `openssl` CLI and real Godot 3 (`godot3-server`), and Godot's
//! own keys against `dtls_proto::keys`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{bin, godot, require_program, Proc};
use dtls_proto::keys::{Certificate, KeyType, PrivateKey};

/// Runs `enet-dtls keygen ARGS` and returns its output.
fn keygen(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("keygen")
        .args(args)
        .output()
        .expect("run enet-dtls keygen")
}

/// Runs keygen into a fresh directory and returns (tempdir guard, dir, stdout).
fn keygen_ok(args: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let mut all = vec!["--out", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = keygen(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keygen {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, dir, stdout)
}

/// Runs `openssl ARGS` and returns (success, stdout + stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `openssl x509 -text` of `cert`.
fn cert_text(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-in", p(cert), "-noout", "-text"]);
    assert!(ok, "openssl x509 -text failed: {text}");
    text
}

/// The public key of a certificate and of a private key, as `openssl` prints them: equal means
/// the key belongs to the certificate.
fn assert_key_matches_cert(key: &Path, cert: &Path) {
    let (ok1, from_cert) = openssl(&["x509", "-in", p(cert), "-noout", "-pubkey"]);
    let (ok2, from_key) = openssl(&["pkey", "-in", p(key), "-pubout"]);
    assert!(ok1 && ok2, "openssl failed: {from_cert}\n{from_key}");
    assert!(from_cert.contains("BEGIN PUBLIC KEY"), "{from_cert}");
    assert_eq!(
        from_cert, from_key,
        "the key does not belong to the certificate"
    );
}

/// `openssl x509 -checkend SECS` succeeds iff the certificate is still valid SECS from now.
fn valid_in(cert: &Path, secs: u64) -> bool {
    openssl(&[
        "x509",
        "-in",
        p(cert),
        "-noout",
        "-checkend",
        &secs.to_string(),
    ])
    .0
}

const DAY: u64 = 86_400;

#[test]
fn rsa_defaults_are_godot_shaped_and_verify_with_openssl() {
    if !require_program("openssl") {
        return;
    }
    let (_tmp, dir, stdout) = keygen_ok(&[]);
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    assert!(
        stdout.contains(&format!("wrote {}", key.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("wrote {}", cert.display())),
        "{stdout}"
    );

    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS#1 like Godot: {key_pem:.40}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let (ok, check) = openssl(&["rsa", "-in", p(&key), "-check", "-noout"]);
    assert!(ok && check.contains("RSA key ok"), "{check}");

    let text = cert_text(&cert);
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("Subject: CN = localhost"), "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert_key_matches_cert(&key, &cert);

    // 365 days by default.
    assert!(valid_in(&cert, 364 * DAY));
    assert!(!valid_in(&cert, 366 * DAY));

    // Self-signed and CA:TRUE: it verifies as its own trust anchor, for its hostname.
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&cert),
        "-verify_hostname",
        "localhost",
        p(&cert),
    ]);
    assert!(ok && out.contains(": OK"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&cert),
        "-verify_hostname",
        "not-localhost",
        p(&cert),
    ]);
    assert!(!ok, "the wrong hostname must not verify: {out}");

    // And our own loader reads both back.
    let k = PrivateKey::load(&key).unwrap();
    assert_eq!(k.key_type(), Some(KeyType::Rsa(2048)));
    let c = Certificate::load(&cert).unwrap();
    c.check_key(&k).unwrap();
    assert_eq!(c.common_name().as_deref(), Some("localhost"));
}

#[test]
fn ec_with_sans_and_days() {
    if !require_program("openssl") {
        return;
    }
    let (_tmp, dir, _) = keygen_ok(&[
        "--ec",
        "--cn",
        "game.example",
        "--san",
        "alt.example",
        "--san",
        "127.0.0.1",
        "--san",
        "::1",
        "--days",
        "30",
    ]);
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let text = cert_text(&cert);
    assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    assert!(text.contains("Subject: CN = game.example"), "{text}");
    for san in [
        "DNS:game.example",
        "DNS:alt.example",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(text.contains(san), "missing {san} in:\n{text}");
    }
    assert_key_matches_cert(&key, &cert);
    assert!(valid_in(&cert, 29 * DAY));
    assert!(!valid_in(&cert, 31 * DAY));
    for check in [
        ["-verify_hostname", "alt.example"],
        ["-verify_ip", "127.0.0.1"],
        ["-verify_ip", "::1"],
    ] {
        let (ok, out) = openssl(&["verify", "-CAfile", p(&cert), check[0], check[1], p(&cert)]);
        assert!(ok, "{check:?}: {out}");
    }
    let (ok, check) = openssl(&["ec", "-in", p(&key), "-check", "-noout"]);
    assert!(ok, "{check}");
    assert_eq!(
        PrivateKey::load(&key).unwrap().key_type(),
        Some(KeyType::EcP256)
    );
}

#[test]
fn rsa_4096_is_accepted() {
    if !require_program("openssl") {
        return;
    }
    let (_tmp, dir, _) = keygen_ok(&["--rsa", "4096", "--cn", "big.example"]);
    assert!(cert_text(&dir.join("cert.pem")).contains("Public-Key: (4096 bit)"));
    assert_key_matches_cert(&dir.join("key.pem"), &dir.join("cert.pem"));
}

#[test]
fn bad_arguments_are_clear_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never");
    let d = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--rsa", "1000"], "unsupported RSA key size 1000"),
        (&["--rsa", "1024"], "2048, 3072, 4096"),
        (&["--days", "0"], "--days"),
        (
            &["--san", "not a name"],
            "invalid value 'not a name' for '--san <NAME>'",
        ),
        (&["--rsa", "2048", "--ec"], "cannot be used with"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--out", d];
        all.extend_from_slice(args);
        let out = keygen(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
        assert!(!dir.exists(), "{args:?} must not create {d}");
    }
}

#[test]
fn unwritable_directory_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let bad = file.join("keys");
    let out = keygen(&["--out", bad.to_str().unwrap(), "--ec"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(stderr.contains("cannot create directory"), "{stderr}");
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let (_tmp, dir, _) = keygen_ok(&["--ec"]);
    let key = dir.join("key.pem");
    let before = std::fs::read(&key).unwrap();
    let out = keygen(&["--out", dir.to_str().unwrap(), "--ec"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the old key is untouched"
    );

    let out = keygen(&["--out", dir.to_str().unwrap(), "--ec", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read(&key).unwrap(),
        before,
        "--force writes a new key"
    );
    Certificate::load(dir.join("cert.pem"))
        .unwrap()
        .check_key(&PrivateKey::load(&key).unwrap())
        .unwrap();
}

/// Runs Godot's `load_cert.gd` on a key/cert pair and waits for its `DTLSServer.setup` line.
fn godot_loads(key: &Path, cert: &Path) {
    let args = vec![
        format!("key={}", key.display()),
        format!("cert={}", cert.display()),
    ];
    let mut g = Proc::spawn("godot load_cert.gd", godot("load_cert.gd", &args));
    let line = g.expect_line("LOAD DTLSServer.setup", Duration::from_secs(30));
    assert_eq!(
        line.trim(),
        "LOAD DTLSServer.setup OK",
        "all lines: {:?}",
        g.seen
    );
    let code = g.wait(Duration::from_secs(30));
    let seen = g.drain().to_vec();
    assert_eq!(code, Some(0), "godot exit code; lines: {seen:?}");
    for what in ["CryptoKey.load key", "X509Certificate.load cert"] {
        assert!(
            seen.iter()
                .any(|l| l.contains(what) && l.trim_end().ends_with(" OK")),
            "{what} not OK in {seen:?}"
        );
    }
}

#[test]
fn godot_loads_our_rsa_key_and_certificate() {
    if !require_program("godot3-server") {
        return;
    }
    let (_tmp, dir, _) = keygen_ok(&[]);
    godot_loads(&dir.join("key.pem"), &dir.join("cert.pem"));
}

#[test]
fn godot_loads_our_ec_key_and_certificate() {
    if !require_program("godot3-server") {
        return;
    }
    let (_tmp, dir, _) = keygen_ok(&["--ec", "--san", "127.0.0.1"]);
    godot_loads(&dir.join("key.pem"), &dir.join("cert.pem"));
}

#[test]
fn keys_made_by_godot_load_in_dtls_proto() {
    if !require_program("godot3-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gd");
    let args = vec![
        format!("out={}", out.display()),
        "bits=2048".into(),
        "cn=localhost".into(),
    ];
    let mut g = Proc::spawn("godot gen_cert.gd", godot("gen_cert.gd", &args));
    let line = g.expect_line("GEN_", Duration::from_secs(60));
    assert!(line.starts_with("GEN_OK "), "{line}");
    assert_eq!(g.wait(Duration::from_secs(30)), Some(0));
    let field = |name: &str| -> PathBuf {
        let prefix = format!("{name}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    let (key_path, cert_path) = (field("key"), field("cert"));

    let key = PrivateKey::load(&key_path).expect("Godot's PKCS#1 key loads");
    assert_eq!(key.key_type(), Some(KeyType::Rsa(2048)));
    let cert = Certificate::load(&cert_path).expect("Godot's certificate loads");
    cert.check_key(&key)
        .expect("Godot's key matches its certificate");
    assert_eq!(cert.common_name().as_deref(), Some("localhost"));
    assert!(
        cert.subject().contains("O=enet-dtls tests"),
        "{}",
        cert.subject()
    );
}

// ---------------------------------------------------------------------------------------------
// Names, days: refused with a reason before anything is written (issue 6 §6)
// ---------------------------------------------------------------------------------------------

/// Runs keygen into a directory that must stay absent; returns (exit code, stdout, stderr).
fn keygen_refused(args: &[&str]) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never");
    let mut all = vec!["--out", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = keygen(&all);
    assert!(!dir.exists(), "{args:?} must not create {}", dir.display());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A CN that names no host, with no --san, would give a certificate without any subject
/// alternative name (it printed "SAN " with nothing after it): refused, saying how to fix it.
#[test]
fn cn_that_names_no_host_needs_a_san() {
    let (code, stdout, stderr) = keygen_refused(&["--cn", "bad name!"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: --cn \"bad name!\" names no host")
            && stderr.contains("--san NAME"),
        "{stderr}"
    );
    let (code, _, stderr) = keygen_refused(&["--cn", "1.2.3.999"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not a valid IPv4 address"), "{stderr}");
    for cn in ["", &"x".repeat(65)] {
        let (code, _, stderr) = keygen_refused(&["--cn", cn, "--san", "ok.example"]);
        assert_eq!(code, Some(1), "{cn:?}");
        assert!(stderr.contains("1 to 64 bytes"), "{cn:?}: {stderr}");
    }
}

/// Free text as the CN is fine when a --san names the host; the SAN list is then the --san only.
#[test]
fn free_form_cn_with_a_san_is_accepted() {
    let (_tmp, dir, stdout) = keygen_ok(&["--ec", "--cn", "My Game", "--san", "game.example"]);
    assert!(stdout.contains("CN=My Game, SAN game.example,"), "{stdout}");
    let cert = Certificate::load(dir.join("cert.pem")).unwrap();
    assert_eq!(cert.common_name().as_deref(), Some("My Game"));
    assert_eq!(cert.subject_alt_names(), ["game.example"]);
}

/// A --san that is neither a DNS name nor an IP address is refused by the parser, and a
/// mistyped IPv4 or IPv6 address is refused as an address, never taken as a DNS name.
#[test]
fn invalid_sans_are_refused_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        ("1.2.3.999", "not a valid IPv4 address"),
        ("10.0.0", "not a valid IPv4 address"),
        ("fe80::zz", "not a valid IPv6 address"),
        ("bad name!", "not a DNS name or an IP address"),
        ("a..example", "not a DNS name or an IP address"),
        ("-x.example", "not a DNS name or an IP address"),
        ("a.*.example", "not a DNS name or an IP address"),
    ];
    for (san, why) in cases {
        // `--san=VALUE`, so that "-x.example" is a value and not an unknown flag.
        let (code, stdout, stderr) = keygen_refused(&["--ec", &format!("--san={san}")]);
        assert_eq!(code, Some(2), "{san}: clap's usage error status; {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{san}' for '--san <NAME>': {why}"
            )),
            "{san}: {stderr}"
        );
    }
}

/// --days is 1 to 36500; a negative or huge value gets that range in the message, not a
/// parser complaint about an unexpected argument.
#[test]
fn days_out_of_range_name_the_range() {
    for days in ["-1", "0", "36501", "4294967296", "1.5", "soon"] {
        let (code, stdout, stderr) = keygen_refused(&["--ec", "--days", days]);
        assert_eq!(code, Some(2), "{days}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.starts_with(&format!("error: invalid value '{days}' for '--days <N>'"))
                && stderr.contains("from 1 to 36500"),
            "{days}: {stderr}"
        );
    }
    // The bounds themselves are accepted: notAfter ("Nov  8 19:08:10 2126 GMT") is 100 years
    // after the one of a 1-day certificate, give or take the day.
    let year = |days: &str| -> i32 {
        let (_tmp, dir, _) = keygen_ok(&["--ec", "--days", days]);
        let not_after = Certificate::load(dir.join("cert.pem")).unwrap().not_after();
        not_after
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|y| y.parse().ok())
            .unwrap_or_else(|| panic!("no year in {not_after:?}"))
    };
    let (one_day, max) = (year("1"), year("36500"));
    assert!((99..=101).contains(&(max - one_day)), "{one_day} -> {max}");
}
