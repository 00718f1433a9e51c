//! Feeds arbitrary bytes to the decompressors of Godot's ENet compression modes (FastLZ,
//! zlib, zstd, range coder), as a received datagram's body is: no panic, never more output
//! than the limit; and what a compressor produced decompresses back to its input.
#![no_main]

use enet_dtls::multiplayer::CompressionMode;
use libfuzzer_sys::fuzz_target;

/// ENet's receive buffer (the decompression limit of every datagram).
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mode = CompressionMode::ALL[1 + usize::from(selector) % 4];
    let mut c = mode.compressor().expect("a compressing mode");
    let mut out = Vec::new();
    if let Some(n) = c.decompress(body, LIMIT, &mut out) {
        assert!(n <= LIMIT && n == out.len(), "{mode:?}: {n} bytes");
    }
    // Round trip of the input itself (split in two buffers, as ENet hands them over).
    let input = &body[..body.len().min(LIMIT)];
    if input.is_empty() {
        return; // ENet never compresses an empty datagram body.
    }
    let (a, b) = input.split_at(input.len() / 2);
    let mut packed = Vec::new();
    if let Some(n) = c.compress(&[a, b], LIMIT, &mut packed) {
        let mut back = Vec::new();
        let m = c
            .decompress(&packed[..n], LIMIT, &mut back)
            .unwrap_or_else(|| panic!("{mode:?}: cannot read its own output"));
        // FastLZ pads inputs shorter than 16 bytes with zeros (as Godot does).
        assert_eq!(&back[..input.len()], input, "{mode:?}");
        assert!(back[input.len()..m].iter().all(|&x| x == 0), "{mode:?}");
    }
});
