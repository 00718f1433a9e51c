//! The capture hook (`enet_dtls::capture`) under real ENet hosts, plain and over DTLS, and its
//! pcap file as tshark decodes it.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey, SubjectAltName};
use dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};
use enet_dtls::capture::{write_pcap, Capture, CaptureSocket, CapturedDatagram, Direction};
use enet_dtls::enet::{DtlsEnetSocket, EnetHost, EnetSocket, UdpEnetSocket};
use enet_proto::{Event, HostConfig, Packet};

const SECRET: &[u8] = b"secret-payload-0123456789";

/// Connects `client` to `server`, sends SECRET reliably, gets it echoed back.
fn exchange<A: EnetSocket, B: EnetSocket>(server: &mut EnetHost<A>, client: &mut EnetHost<B>) {
    let addr: SocketAddr = server.local_addr().unwrap();
    let peer = client.connect(addr, 2, 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    loop {
        assert!(Instant::now() < deadline, "exchange timed out");
        if let Some(Event::Receive {
            peer,
            channel,
            packet,
        }) = server.service(Duration::from_millis(5)).unwrap()
        {
            server.send(peer, channel, packet).unwrap();
        }
        match client.service(Duration::from_millis(5)).unwrap() {
            Some(Event::Connect { .. }) if !sent => {
                client
                    .send(peer, 0, Packet::reliable(SECRET.to_vec()))
                    .unwrap();
                sent = true;
            }
            Some(Event::Receive { packet, .. }) => {
                assert_eq!(packet.data.as_ref() as &[u8], SECRET);
                break;
            }
            _ => {}
        }
    }
    client.disconnect(peer, 0);
    for _ in 0..20 {
        let _ = server.service(Duration::from_millis(5));
        let _ = client.service(Duration::from_millis(5));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `tshark -r FILE -T fields -e FIELD`, one line per packet.
fn tshark_fields(file: &std::path::Path, field: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-e", field])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn pcap(datagrams: &[CapturedDatagram]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    write_pcap(std::fs::File::create(file.path()).unwrap(), datagrams).unwrap();
    file
}

#[test]
fn plain_capture_shows_the_payload_and_tshark_reads_udp() {
    let capture = Capture::new();
    let mut server = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    let socket =
        CaptureSocket::new(UdpEnetSocket::bind("127.0.0.1:0").unwrap(), capture.clone()).unwrap();
    let local = socket.local_addr().unwrap();
    let mut client = EnetHost::with_socket(socket, HostConfig::default()).unwrap();
    exchange(&mut server, &mut client);
    let d = capture.datagrams();
    assert!(d
        .iter()
        .any(|d| d.direction == Direction::Sent && contains(&d.data, SECRET)));
    assert!(d
        .iter()
        .any(|d| d.direction == Direction::Received && contains(&d.data, SECRET)));
    assert!(d.iter().all(|d| d.local == local));
    if !common::require_program("tshark") {
        return;
    }
    let file = pcap(&d);
    let ports = tshark_fields(file.path(), "udp.srcport");
    assert_eq!(ports.len(), d.len(), "tshark saw every datagram");
    for (line, dg) in ports.iter().zip(&d) {
        assert_eq!(line.parse::<u16>().unwrap(), dg.source().port());
    }
    let lens = tshark_fields(file.path(), "udp.length");
    for (line, dg) in lens.iter().zip(&d) {
        assert_eq!(line.parse::<usize>().unwrap(), dg.data.len() + 8);
    }
}

#[test]
fn capture_under_dtls_sees_only_records_and_tshark_decodes_them() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let params = CertificateParams::new("localhost")
        .subject_alt_name(SubjectAltName::Dns("localhost".into()));
    let cert = Certificate::self_signed(&key, &params).unwrap();
    let server_config = ServerConfig::builder(key, cert.clone()).build().unwrap();
    let client_config = ClientConfig::builder()
        .verify(true)
        .hostname("localhost")
        .trusted_certificate(cert)
        .build()
        .unwrap();
    let wire = Capture::new();
    let above = Capture::new();
    let server_socket =
        DtlsEnetSocket::server("127.0.0.1:0", &server_config, EndpointConfig::default()).unwrap();
    let mut server = EnetHost::with_socket(server_socket, HostConfig::default()).unwrap();
    let udp =
        CaptureSocket::new(UdpEnetSocket::bind("127.0.0.1:0").unwrap(), wire.clone()).unwrap();
    let dtls = DtlsEnetSocket::client_over(udp, &client_config).unwrap();
    let mut client = EnetHost::with_socket(
        CaptureSocket::new(dtls, above.clone()).unwrap(),
        HostConfig::default(),
    )
    .unwrap();
    exchange(&mut server, &mut client);
    let d = wire.datagrams();
    assert!(!d.is_empty());
    assert!(
        d.iter().all(|d| !contains(&d.data, SECRET)),
        "the payload is visible on the wire"
    );
    // Above the DTLS socket the same exchange is plaintext ENet.
    assert!(above.datagrams().iter().any(|d| contains(&d.data, SECRET)));
    // Every wire datagram starts with a DTLS record header (version 1.2, or 1.0 in the
    // record layer of the first ClientHello, as OpenSSL sends it).
    for dg in &d {
        assert!(matches!(dg.data[0], 20..=23), "{:?}", &dg.data[..4]);
        assert!(
            matches!(&dg.data[1..3], [0xfe, 0xfd] | [0xfe, 0xff]),
            "{:?}",
            &dg.data[..4]
        );
    }
    assert!(d.iter().any(|d| d.data[0] == 22), "no handshake record");
    assert!(
        d.iter().any(|d| d.data[0] == 23),
        "no application data record"
    );
    if !common::require_program("tshark") {
        return;
    }
    let file = pcap(&d);
    let types = tshark_fields(file.path(), "dtls.record.content_type");
    assert_eq!(types.len(), d.len());
    let all: Vec<&str> = types.iter().flat_map(|l| l.split(',')).collect();
    for t in ["20", "22", "23"] {
        assert!(
            all.contains(&t),
            "tshark shows no DTLS record of type {t}: {types:?}"
        );
    }
    let hs = tshark_fields(file.path(), "dtls.handshake.type");
    let hs: Vec<&str> = hs.iter().flat_map(|l| l.split(',')).collect();
    // ClientHello (1) and HelloVerifyRequest (3): the cookie exchange is on the wire.
    assert!(hs.contains(&"1") && hs.contains(&"3"), "{hs:?}");
}
