//! ENet's range coder on hostile input: decompressing arbitrary bytes must never panic, never
//! exceed its limit and never hang; compressing arbitrary bytes must round-trip exactly.
#![no_main]

use enet_proto::range_coder::RangeCoder;
use enet_proto::Compressor;
use libfuzzer_sys::fuzz_target;

/// The largest datagram ENet ever compresses (its maximum MTU).
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut coder = RangeCoder::new();
    let mut out = Vec::new();
    if let Some(n) = coder.decompress(data, LIMIT, &mut out) {
        assert_eq!(n, out.len());
        assert!(n <= LIMIT);
    }

    let input = &data[..data.len().min(LIMIT)];
    let mut packed = Vec::new();
    if let Some(n) = coder.compress(&[input], LIMIT, &mut packed) {
        assert_eq!(n, packed.len());
        let mut unpacked = Vec::new();
        let m = coder
            .decompress(&packed, LIMIT, &mut unpacked)
            .expect("our own output decompresses");
        assert_eq!(&unpacked[..m], input);
    }
});
