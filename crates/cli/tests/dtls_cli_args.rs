//! `dtls-server` / `dtls-client` refuse bad arguments with one line that says what and why.

mod common;

use std::process::{Command, Output};

use common::bin;
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey};

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run enet-dtls")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let other = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    key.save(dir.path().join("key.pem"), KeyFormat::Pkcs8)
        .unwrap();
    other
        .save(dir.path().join("other.pem"), KeyFormat::Pkcs8)
        .unwrap();
    cert.save(dir.path().join("cert.pem")).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a pem file\n").unwrap();
    Files { dir }
}

#[test]
fn server_rejects_missing_mismatched_and_garbage_pem() {
    let f = files();
    let (key, cert, other, junk) = (
        f.path("key.pem"),
        f.path("cert.pem"),
        f.path("other.pem"),
        f.path("junk.pem"),
    );
    let missing = f.path("missing.pem");
    let cases: [(&[&str], &str); 4] = [
        (&["--key", &missing, "--cert", &cert], "missing.pem"),
        (&["--key", &other, "--cert", &cert], "does not match"),
        (&["--key", &cert, "--cert", &cert], "BEGIN CERTIFICATE"),
        (&["--key", &key, "--cert", &junk], "junk.pem"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["dtls-server", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "no LISTENING line for {args:?}");
        let e = stderr(&out);
        assert!(
            e.starts_with("error: ") && e.contains(needle),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
}

#[test]
fn client_rejects_bad_connect_and_ca() {
    let f = files();
    let out = run(&["dtls-client", "--connect", "no-port", "--send", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected HOST:PORT"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "dtls-client",
        "--connect",
        "127.0.0.1:9",
        "--ca",
        &f.path("key.pem"),
        "--send",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("BEGIN CERTIFICATE"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "dtls-client",
        "--connect",
        "127.0.0.1:9",
        "--send",
        "x",
        "--timeout",
        "0",
    ]);
    // Refused by the argument parser (usage error, status 2); see the block at the end.
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}

#[test]
fn server_timeout_ends_the_server_cleanly() {
    let f = files();
    let started = std::time::Instant::now();
    let out = run(&[
        "dtls-server",
        "--listen",
        "127.0.0.1:0",
        "--key",
        &f.path("key.pem"),
        "--cert",
        &f.path("cert.pem"),
        "--timeout",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let so = String::from_utf8_lossy(&out.stdout);
    let line = so.lines().next().unwrap_or_default();
    let addr = common::listening_addr(line);
    assert_ne!(addr.port(), 0, "the real port is printed");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

// ---------------------------------------------------------------------------------------------
// --timeout is checked while the command line is parsed (issue 6 §6): a finite number of
// seconds, greater than 0 and at most 365 days, or a usage error before anything is printed.
// ---------------------------------------------------------------------------------------------

/// Values that `--timeout` must refuse: not finite, not positive, too large, not a number.
const BAD_TIMEOUTS: [&str; 8] = ["nan", "inf", "1e30", "-1", "0", "31536001", "", "soon"];

/// Checks one refused `--timeout`: status 2, nothing on stdout (no LISTENING or CONNECTED
/// line), and a message that names the value and the allowed range.
fn assert_timeout_refused(out: &Output, value: &str) {
    let e = stderr(out);
    assert_eq!(out.status.code(), Some(2), "--timeout {value:?}: {e}");
    assert!(
        out.stdout.is_empty(),
        "--timeout {value:?} printed before failing: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        e.starts_with(&format!(
            "error: invalid value '{value}' for '--timeout <SECS>'"
        )) && e.contains("greater than 0 and at most 31536000"),
        "--timeout {value:?}: {e}"
    );
}

#[test]
fn server_refuses_bad_timeouts_before_listening() {
    let f = files();
    for value in BAD_TIMEOUTS {
        let timeout = format!("--timeout={value}");
        let out = run(&[
            "dtls-server",
            "--listen",
            "127.0.0.1:0",
            "--key",
            &f.path("key.pem"),
            "--cert",
            &f.path("cert.pem"),
            &timeout,
        ]);
        assert_timeout_refused(&out, value);
    }
}

#[test]
fn client_refuses_bad_timeouts_before_connecting() {
    for value in BAD_TIMEOUTS {
        let timeout = format!("--timeout={value}");
        let out = run(&[
            "dtls-client",
            "--connect",
            "127.0.0.1:9",
            "--insecure",
            "--send",
            "x",
            &timeout,
        ]);
        assert_timeout_refused(&out, value);
    }
    // `--timeout -1` as two words is a value too, not an unknown flag.
    let out = run(&[
        "dtls-client",
        "--connect",
        "127.0.0.1:9",
        "--send",
        "x",
        "--timeout",
        "-1",
    ]);
    assert_timeout_refused(&out, "-1");
}
