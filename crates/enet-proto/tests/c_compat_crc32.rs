//! `crc32` against C ENet's `enet_crc32` (libenet-dev), including its byte order.
//!
//! Needs gcc and libenet-dev: outside CI a missing one prints SKIP; with CI=true it fails.

#[path = "c/harness.rs"]
mod harness;

use enet_proto::crc32::crc32;

/// The same three-way split the C helper makes for `crc`.
fn split3(data: &[u8]) -> Vec<&[u8]> {
    let len = data.len();
    if len < 3 {
        return vec![data];
    }
    let (a, b) = (len / 3, 2 * len / 3);
    vec![&data[..a], &data[a..b], &data[b..]]
}

#[test]
fn crc32_matches_enet_crc32_on_the_wire() {
    let Some(exe) = harness::helper() else { return };
    let mut corpus = harness::corpus();
    corpus.push(("empty".into(), Vec::new()));
    corpus.push(("check".into(), b"123456789".to_vec()));
    let records: Vec<(usize, Vec<u8>)> = corpus.iter().map(|(_, d)| (0, d.clone())).collect();
    let c_out = harness::run(exe, "crc", &records);
    for ((name, data), c) in corpus.iter().zip(&c_out) {
        // `c` holds enet_crc32's return value as it lies in memory, which is what C ENet
        // copies into the datagram header: the big-endian bytes of the standard CRC.
        let ours = crc32(&split3(data));
        assert_eq!(ours, crc32(&[data]), "{name}: split changes the result");
        assert_eq!(
            c.as_slice(),
            ours.to_be_bytes(),
            "{name}: differs from enet_crc32"
        );
    }
    // Sanity: the check value is the published CRC-32 of "123456789".
    assert_eq!(c_out.last().unwrap().as_slice(), [0xCB, 0xF4, 0x39, 0x26]);
}
