//! `enet-dtls demo`: exits 0; the plaintext capture shows the RPC method name and the encrypted
//! one does not; its pcap opens in tshark, which shows UDP for the plaintext run and DTLS
//! records for the encrypted one.

mod common;

use std::process::Command;

use common::bin;

/// The side-by-side dump: (left ASCII, right ASCII), each joined over the dump's lines.
fn dump_columns(stdout: &str) -> (String, String) {
    let mut left = String::new();
    let mut right = String::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line.starts_with("offset  ") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        // "0000    xx xx ..  ascii  | xx xx ..  ascii"; a line of another shape ends the dump.
        let is_row = line.len() > 8
            && line[..4].bytes().all(|b| b.is_ascii_hexdigit())
            && line.contains(" | ");
        if !is_row {
            break;
        }
        let (l, r) = line.split_once(" | ").unwrap();
        // Each side: 8 hex bytes (23 characters), two spaces, then the ASCII column.
        let l = &l[8..];
        left.push_str(l.get(25..).unwrap_or("").trim_end_matches(' '));
        right.push_str(r.get(25..).unwrap_or(""));
    }
    (left, right)
}

#[test]
fn demo_shows_plaintext_vs_ciphertext_and_writes_a_pcap() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("demo.pcap");
    let out = Command::new(bin())
        .arg("demo")
        .arg("--pcap")
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("== demo OK"), "{stdout}");

    // The dump: the method name and its argument readable on the left only.
    let (left, right) = dump_columns(&stdout);
    assert!(
        left.contains("send_message"),
        "left column: {left:?}\n{stdout}"
    );
    assert!(left.contains("hello, Godot!"), "left column: {left:?}");
    assert!(!right.is_empty());
    assert!(
        !right.contains("send_message") && !right.contains("hello"),
        "{right:?}"
    );

    // The summary.
    for needle in [
        "DTLS handshake (ClientHello to Finished)",
        "RPC round trip",
        "DTLS overhead per packet:",
        "cipher suite: ",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in {stdout}");
    }
    let cipher = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cipher suite: "))
        .unwrap();
    assert!(
        cipher.contains("AES") || cipher.contains("CHACHA"),
        "{cipher}"
    );
    let overhead: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DTLS overhead per packet: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    // At least a record header plus an AEAD tag; less than one ENet MTU.
    assert!((13.0 + 16.0..1400.0).contains(&overhead), "{overhead}");

    // Every datagram of the DTLS run is a DTLS record, and the session ends with an alert
    // (close_notify).
    let census = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DTLS records on the wire (whole run): "))
        .unwrap_or_else(|| panic!("no record census in {stdout}"));
    assert!(!census.contains("other"), "{census}");
    let count_of = |what: &str| -> u32 {
        census
            .split(", ")
            .find_map(|p| p.strip_prefix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what} in {census}"))
    };
    assert!(count_of("handshake ") >= 6, "{census}");
    assert!(count_of("application_data ") > 0, "{census}");
    assert!(count_of("alert ") >= 1, "{census}");

    // The pcap.
    assert!(pcap.is_file());
    let count: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PCAP "))
        .and_then(|l| l.split_once(": "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no PCAP line in {stdout}"));
    if !common::require_program("tshark") {
        return;
    }
    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "udp.length",
            "-e",
            "dtls.record.content_type",
        ])
        .output()
        .unwrap();
    assert!(fields.status.success(), "{fields:?}");
    let text = String::from_utf8_lossy(&fields.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), count, "tshark saw every datagram");
    let dtls_rows = rows
        .iter()
        .filter(|r| r.split('\t').nth(1).is_some_and(|t| !t.is_empty()))
        .count();
    let types: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.split('\t').nth(1))
        .flat_map(|t| t.split(','))
        .collect();
    assert!(types.contains(&"22") && types.contains(&"23"), "{types:?}");
    // Plaintext run: UDP only; DTLS run: every datagram a DTLS record.
    assert!(
        dtls_rows > 0 && dtls_rows < rows.len(),
        "{dtls_rows} of {}",
        rows.len()
    );
    let summary = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(summary.contains("Application Data"), "{summary}");
    assert!(summary.contains("Client Hello"), "{summary}");
    assert!(summary.contains("UDP"), "{summary}");
}
