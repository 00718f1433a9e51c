//! The CRC-32 checksum ENet puts in a datagram header when checksums are enabled.
//!
//! This is the standard CRC-32 (IEEE 802.3; reflected polynomial `0xEDB8_8320`, initial value
//! and final xor `0xFFFF_FFFF`), the same function as zlib's `crc32` and C ENet's
//! `enet_crc32`.
//!
//! # Byte order on the wire
//!
//! C ENet's `enet_crc32` returns `htonl(crc)`, and the host copies that 32-bit value into the
//! datagram with `memcpy`, so the checksum travels **big-endian**: write
//! `crc32(..).to_be_bytes()` and compare against `u32::from_be_bytes(..)`.
//!
//! ```
//! use enet_proto::crc32::crc32;
//!
//! // The standard check value of CRC-32.
//! assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
//! // Buffers are checksummed as if concatenated.
//! assert_eq!(crc32(&[b"1234", b"", b"56789"]), 0xCBF4_3926);
//! // On the wire (big-endian):
//! assert_eq!(crc32(&[b"123456789"]).to_be_bytes(), [0xCB, 0xF4, 0x39, 0x26]);
//! ```

/// The reflected CRC-32 polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// `TABLE[b]` is the CRC register contribution of byte `b`, computed at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Standard CRC-32 over the concatenation of `buffers`.
///
/// Returns the checksum in host order; C ENet stores it big-endian (see the
/// [module docs](self)).
pub fn crc32(buffers: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for buffer in buffers {
        for &byte in *buffer {
            crc = (crc >> 8) ^ TABLE[usize::from((crc as u8) ^ byte)];
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLYNOMIAL
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn empty_input() {
        assert_eq!(crc32(&[]), 0);
        assert_eq!(crc32(&[b""]), 0);
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
    }

    #[test]
    fn table_matches_bitwise_definition() {
        let data: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 2, 7, 64, 1000, 2048] {
            assert_eq!(crc32(&[&data[..len]]), bitwise(&data[..len]), "len {len}");
        }
    }

    #[test]
    fn split_anywhere_gives_the_same_result() {
        let data = b"The quick brown fox jumps over the lazy dog";
        let whole = crc32(&[data]);
        assert_eq!(whole, 0x414F_A339);
        for i in 0..=data.len() {
            let (a, b) = data.split_at(i);
            assert_eq!(crc32(&[a, b]), whole);
            assert_eq!(crc32(&[b"", a, b"", b]), whole);
        }
    }
}
