//! `RangeCoder` against the real C ENet 1.3 range coder (libenet-dev), both directions.
//!
//! Needs gcc and libenet-dev: outside CI a missing one prints SKIP; with CI=true it fails.

#[path = "c/harness.rs"]
mod harness;

use enet_proto::range_coder::RangeCoder;
use enet_proto::Compressor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Output room that never limits compression of these inputs.
fn roomy(len: usize) -> usize {
    len * 2 + 64
}

/// Rust compression of `parts` into at most `limit` bytes (empty = did not fit / nothing).
fn rust_compress(coder: &mut RangeCoder, parts: &[&[u8]], limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match coder.compress(parts, limit, &mut out) {
        Some(n) => {
            assert_eq!(n, out.len());
            assert!(n <= limit);
            out
        }
        None => {
            assert!(out.is_empty());
            Vec::new()
        }
    }
}

/// Rust decompression into at most `limit` bytes (empty = C's "0").
fn rust_decompress(coder: &mut RangeCoder, input: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match coder.decompress(input, limit, &mut out) {
        Some(n) => {
            assert_eq!(n, out.len());
            assert!(n <= limit);
            out
        }
        None => {
            assert!(out.is_empty());
            Vec::new()
        }
    }
}

/// The same three-way split the C helper's `compress3` mode makes.
fn split3(data: &[u8]) -> Vec<&[u8]> {
    let len = data.len();
    if len < 3 {
        return vec![data];
    }
    let (a, b) = (len / 3, 2 * len / 3);
    vec![&data[..a], &data[a..b], &data[b..]]
}

#[test]
fn compress_matches_c_byte_for_byte() {
    let Some(exe) = harness::helper() else { return };
    let corpus = harness::corpus();
    let records: Vec<(usize, Vec<u8>)> = corpus
        .iter()
        .map(|(_, d)| (roomy(d.len()), d.clone()))
        .collect();
    let c_single = harness::run(exe, "compress", &records);
    let c_split = harness::run(exe, "compress3", &records);
    let mut coder = RangeCoder::new();
    let mut compared = 0;
    for (((name, data), c1), c3) in corpus.iter().zip(&c_single).zip(&c_split) {
        assert!(!c1.is_empty(), "{name}: C did not compress");
        let rust = rust_compress(&mut coder, &[data], roomy(data.len()));
        assert_eq!(&rust, c1, "{name}: compressed bytes differ from C ENet");
        assert_eq!(c3, c1, "{name}: C output depends on buffer split");
        let rust3 = rust_compress(&mut coder, &split3(data), roomy(data.len()));
        assert_eq!(&rust3, c3, "{name}: split compression differs from C ENet");
        compared += 1;
    }
    assert_eq!(compared, corpus.len());
    // The corpus exercises real compression, not just expansion.
    let shrunk = corpus
        .iter()
        .zip(&c_single)
        .filter(|((_, d), c)| c.len() < d.len())
        .count();
    assert!(shrunk > 20, "only {shrunk} inputs compressed");
}

#[test]
fn c_decompresses_rust_output() {
    let Some(exe) = harness::helper() else { return };
    let corpus = harness::corpus();
    let mut coder = RangeCoder::new();
    let mut records = Vec::new();
    for (_, data) in &corpus {
        let packed = rust_compress(&mut coder, &[data], roomy(data.len()));
        // Exactly enough room, and plenty.
        records.push((data.len(), packed.clone()));
        records.push((data.len() + 1000, packed));
    }
    let c_out = harness::run(exe, "decompress", &records);
    for (i, (name, data)) in corpus.iter().enumerate() {
        assert_eq!(
            &c_out[2 * i],
            data,
            "{name}: C could not decompress our output (exact limit)"
        );
        assert_eq!(
            &c_out[2 * i + 1],
            data,
            "{name}: C could not decompress our output"
        );
    }
}

#[test]
fn rust_decompresses_c_output() {
    let Some(exe) = harness::helper() else { return };
    let corpus = harness::corpus();
    let records: Vec<(usize, Vec<u8>)> = corpus
        .iter()
        .map(|(_, d)| (roomy(d.len()), d.clone()))
        .collect();
    let c_packed = harness::run(exe, "compress", &records);
    let mut coder = RangeCoder::new();
    for ((name, data), packed) in corpus.iter().zip(&c_packed) {
        assert_eq!(
            &rust_decompress(&mut coder, packed, data.len()),
            data,
            "{name} (exact limit)"
        );
        assert_eq!(
            &rust_decompress(&mut coder, packed, 1 << 20),
            data,
            "{name}"
        );
    }
}

#[test]
fn output_limits_behave_like_c() {
    let Some(exe) = harness::helper() else { return };
    let corpus = harness::corpus();
    let mut coder = RangeCoder::new();
    let mut compress_records = Vec::new();
    let mut decompress_records = Vec::new();
    let mut expected = Vec::new();
    for (name, data) in &corpus {
        let packed = rust_compress(&mut coder, &[data], roomy(data.len()));
        let n = packed.len();
        for limit in [0, 1, n / 2, n - 1, n] {
            compress_records.push((limit, data.clone()));
            let rust = rust_compress(&mut coder, &[data], limit);
            assert_eq!(
                rust.is_empty(),
                limit < n,
                "{name}: compress limit {limit} of {n}"
            );
            expected.push((format!("{name} compress limit {limit}"), rust));
        }
        for limit in [0, 1, data.len() / 2, data.len() - 1, data.len()] {
            decompress_records.push((limit, packed.clone()));
            let rust = rust_decompress(&mut coder, &packed, limit);
            assert_eq!(
                rust.is_empty(),
                limit < data.len(),
                "{name}: decompress limit {limit}"
            );
            expected.push((format!("{name} decompress limit {limit}"), rust));
        }
    }
    let mut c_out = Vec::new();
    let c_comp = harness::run(exe, "compress", &compress_records);
    let c_decomp = harness::run(exe, "decompress", &decompress_records);
    let (mut ci, mut di) = (c_comp.into_iter(), c_decomp.into_iter());
    for _ in &corpus {
        c_out.extend(ci.by_ref().take(5));
        c_out.extend(di.by_ref().take(5));
    }
    assert_eq!(c_out.len(), expected.len());
    for ((what, rust), c) in expected.iter().zip(&c_out) {
        assert_eq!(rust, c, "{what}");
    }
}

#[test]
fn empty_input_is_not_compressed_by_either() {
    let Some(exe) = harness::helper() else { return };
    let c = harness::run(exe, "compress", &[(100, Vec::new())]);
    assert!(c[0].is_empty());
    let mut coder = RangeCoder::new();
    assert!(rust_compress(&mut coder, &[], 100).is_empty());
    assert!(rust_compress(&mut coder, &[b"", b""], 100).is_empty());
    let c = harness::run(exe, "decompress", &[(100, Vec::new())]);
    assert!(c[0].is_empty());
    assert!(rust_decompress(&mut coder, &[], 100).is_empty());
}

/// Hostile and damaged streams: our decoder must give exactly C's answer (same bytes, or
/// failure where C returns 0), without panicking.
#[test]
fn garbage_decodes_exactly_like_c() {
    let Some(exe) = harness::helper() else { return };
    let mut rng = StdRng::seed_from_u64(0xBAD_C0DE);
    let mut records: Vec<(usize, Vec<u8>)> = Vec::new();
    for _ in 0..3000 {
        let len = rng.gen_range(1..200);
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let limit = if rng.gen_bool(0.5) {
            4096
        } else {
            rng.gen_range(0..300)
        };
        records.push((limit, data));
    }
    // Valid streams with damage: bit flips, truncation, extension, bytes from a small set.
    let mut coder = RangeCoder::new();
    for (_, data) in harness::corpus().into_iter().take(120) {
        let packed = rust_compress(&mut coder, &[&data], roomy(data.len()));
        for _ in 0..8 {
            let mut bad = packed.clone();
            match rng.gen_range(0..4) {
                0 => {
                    let i = rng.gen_range(0..bad.len());
                    bad[i] ^= 1 << rng.gen_range(0..8);
                }
                1 => bad.truncate(rng.gen_range(1..=bad.len())),
                2 => bad.extend((0..rng.gen_range(1..20)).map(|_| rng.gen::<u8>())),
                _ => {
                    for b in bad.iter_mut() {
                        if rng.gen_bool(0.3) {
                            *b = [0x00, 0xFF, 0x80, 0x01][rng.gen_range(0..4)];
                        }
                    }
                }
            }
            records.push((8192, bad));
        }
    }
    for pattern in [0x00u8, 0xFF, 0x80, 0x7F, 0x01] {
        for len in [1, 2, 3, 4, 5, 16, 100] {
            records.push((4096, vec![pattern; len]));
        }
    }
    let c_out = harness::run(exe, "decompress", &records);
    let mut decoded = 0;
    for ((limit, input), c) in records.iter().zip(&c_out) {
        let rust = rust_decompress(&mut coder, input, *limit);
        assert_eq!(&rust, c, "input {input:02x?} limit {limit}");
        decoded += usize::from(!c.is_empty());
    }
    // Most garbage decodes to *something* in C ENet; the comparison must cover those cases.
    assert!(decoded > 500, "only {decoded} garbage inputs decoded");
}
