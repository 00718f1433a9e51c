//! The pluggable datagram compressor interface (C ENet's `ENetCompressor`).

/// A datagram compressor, interoperable with C ENet's `ENetCompressor` callbacks.
///
/// Compression covers everything after the datagram header. A compressed
/// datagram is marked with header flag `0x4000`; it is only used when it is
/// strictly smaller than the uncompressed commands.
pub trait Compressor: Send {
    /// Compress the concatenation of `input` into `out` (cleared first); None if the result would be
    /// larger than `limit` bytes (the datagram is then sent uncompressed).
    fn compress(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<usize>;
    /// Decompress `input` into `out` (cleared first), at most `limit` bytes; None on malformed input.
    fn decompress(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<usize>;
}
