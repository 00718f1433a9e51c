//! Godot 3.2 Variants on hostile input: decoding arbitrary bytes never panics, never charges
//! more memory than its limit (the charge bounds what it allocates) and never recurses deeper
//! than the depth limit; whatever decodes re-encodes to a fixed point.
#![no_main]

use godot_proto::{decode_counting, DecodeLimits, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Encodings are multiples of 4 bytes; an input one byte longer ends with a byte that picks
    // tight limits, to reach the limit checks. Other inputs use the default limits.
    let (limits, bytes) = match data.split_last() {
        Some((&b, rest)) if data.len() % 4 == 1 => (
            DecodeLimits {
                max_depth: usize::from(b >> 5),
                max_alloc: usize::from(b) * 16,
            },
            rest,
        ),
        _ => (DecodeLimits::default(), data),
    };
    match decode_counting(bytes, &limits) {
        Ok((v, used, charged)) => {
            assert!(used <= bytes.len());
            assert!(charged <= limits.max_alloc);
            let again = v.to_bytes();
            assert_eq!(again.len() % 4, 0);
            let (w, n) = Variant::decode(&again, &DecodeLimits::default())
                .expect("our own encoding decodes");
            assert_eq!(n, again.len());
            assert_eq!(w.to_bytes(), again);
        }
        Err((_, charged)) => assert!(charged <= limits.max_alloc),
    }
});
