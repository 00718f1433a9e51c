//! Godot 3.2's ENet compression modes as [`Compressor`]s (see [`CompressionMode`]).

use std::io::{Read, Write};

use enet_proto::range_coder::RangeCoder;
use enet_proto::Compressor;

/// Godot's `NetworkedMultiplayerENet.CompressionMode`: how every ENet datagram's commands are
/// compressed. Both ends must use the same mode (nothing on the wire says which one), as in
/// Godot. The discriminants are Godot's enum values.
///
/// What Godot does (`modules/enet/networked_multiplayer_enet.cpp`, `core/io/compression.cpp`),
/// and so what these do:
///
/// * ENet hands the compressor the commands of one datagram (everything after the datagram
///   header) as several buffers; Godot copies them into one buffer and compresses that whole.
///   The result is used only if it is smaller than the input (ENet's rule; Godot also refuses
///   anything larger than ENet's output limit), otherwise the datagram goes out uncompressed,
///   without the `0x4000` header flag. Decompression is bounded by ENet's 4096-byte buffer.
/// * [`CompressionMode::RangeCoder`] is ENet's own range coder
///   (`enet_host_compress_with_range_coder`).
/// * [`CompressionMode::FastLz`]: FastLZ, level 1 below 64 KiB of input (always, for ENet's
///   datagrams). An input shorter than 16 bytes is padded with zeros to 16 bytes before it is
///   compressed (FastLZ's minimum), so the receiver decodes 16 bytes; the zero bytes after the
///   commands read as ENet's "no command" and end the datagram.
/// * [`CompressionMode::Zlib`]: deflate *with the zlib wrapper* (2-byte header and Adler-32
///   trailer, window bits 15; Godot's `MODE_DEFLATE`), level 6 (`Z_DEFAULT_COMPRESSION`).
/// * [`CompressionMode::Zstd`]: one zstd frame per datagram, level 3 (Godot's
///   `zstd_level` default), no long-distance matching.
///
/// The compressed bytes need not equal Godot's bit for bit (a different deflate or FastLZ
/// encoder may choose other matches); every encoding is a valid stream that Godot's decoder
/// reads, and ours reads Godot's: the interop tests run every mode against Godot 3.2.3.
///
/// ```
/// use enet_dtls::multiplayer::{CompressionMode, MultiplayerPeer};
/// let mode = CompressionMode::from_godot(4).unwrap(); // COMPRESS_ZSTD
/// assert_eq!(mode, CompressionMode::Zstd);
/// let server = MultiplayerPeer::server(0).compression(mode);
/// # drop(server);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionMode {
    /// No compression (`COMPRESS_NONE`, the default).
    #[default]
    None = 0,
    /// ENet's built-in adaptive range coder (`COMPRESS_RANGE_CODER`).
    RangeCoder = 1,
    /// FastLZ (`COMPRESS_FASTLZ`).
    FastLz = 2,
    /// zlib-wrapped deflate (`COMPRESS_ZLIB`).
    Zlib = 3,
    /// Zstandard (`COMPRESS_ZSTD`).
    Zstd = 4,
}

impl CompressionMode {
    /// Every mode, in Godot's order.
    pub const ALL: [CompressionMode; 5] = [
        CompressionMode::None,
        CompressionMode::RangeCoder,
        CompressionMode::FastLz,
        CompressionMode::Zlib,
        CompressionMode::Zstd,
    ];

    /// The mode with Godot's enum value `value` (0 to 4).
    pub fn from_godot(value: i64) -> Option<CompressionMode> {
        CompressionMode::ALL
            .into_iter()
            .find(|m| *m as i64 == value)
    }

    /// A fresh compressor for an ENet host (`None` for [`CompressionMode::None`]).
    pub fn compressor(self) -> Option<Box<dyn Compressor>> {
        match self {
            CompressionMode::None => None,
            CompressionMode::RangeCoder => Some(Box::new(RangeCoder::new())),
            CompressionMode::FastLz => Some(Box::new(FastLzCompressor::new())),
            CompressionMode::Zlib => Some(Box::new(ZlibCompressor::new())),
            CompressionMode::Zstd => Some(Box::new(ZstdCompressor::new())),
        }
    }
}

/// Godot pads FastLZ inputs shorter than this with zeros (FastLZ's minimum block).
const FASTLZ_MIN_INPUT: usize = 16;
/// Godot's zlib level (`Z_DEFAULT_COMPRESSION`, i.e. 6).
const ZLIB_LEVEL: u32 = 6;
/// Godot's default `zstd_level`.
const ZSTD_LEVEL: i32 = 3;

/// Copies the buffers into `buf` (cleared first), as Godot's `enet_compress` does.
fn concat(input: &[&[u8]], buf: &mut Vec<u8>) {
    buf.clear();
    for part in input {
        buf.extend_from_slice(part);
    }
}

/// Keeps `out` only if it fits `limit` (Godot: "do not bother" when larger).
fn within(out: &mut Vec<u8>, limit: usize) -> Option<usize> {
    if out.is_empty() || out.len() > limit {
        out.clear();
        None
    } else {
        Some(out.len())
    }
}

/// Godot's `COMPRESS_FASTLZ` (see [`CompressionMode`]).
pub struct FastLzCompressor {
    state: Box<fastlz_rs::CompressState>,
    input: Vec<u8>,
}

impl FastLzCompressor {
    /// A new compressor.
    pub fn new() -> FastLzCompressor {
        FastLzCompressor {
            state: Box::new(fastlz_rs::CompressState::new()),
            input: Vec::new(),
        }
    }
}

impl Default for FastLzCompressor {
    fn default() -> Self {
        FastLzCompressor::new()
    }
}

impl std::fmt::Debug for FastLzCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastLzCompressor")
    }
}

impl Compressor for FastLzCompressor {
    fn compress(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        concat(input, &mut self.input);
        if self.input.len() < FASTLZ_MIN_INPUT {
            self.input.resize(FASTLZ_MIN_INPUT, 0);
        }
        // FastLZ's worst case is the input plus 1/32 and a little (Godot allocates 6 % and at
        // least 66 bytes).
        out.clear();
        out.resize((self.input.len() + self.input.len() * 6 / 100).max(66), 0);
        match self
            .state
            .compress_to_buf(&self.input, out, fastlz_rs::CompressionLevel::Default)
        {
            Ok(n) => out.truncate(n),
            Err(_) => out.clear(),
        }
        within(out, limit)
    }

    fn decompress(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        out.resize(limit, 0);
        match fastlz_rs::decompress_to_buf(input, out) {
            Ok(n) if n > 0 => {
                out.truncate(n);
                Some(n)
            }
            _ => {
                out.clear();
                None
            }
        }
    }
}

/// Godot's `COMPRESS_ZLIB` (see [`CompressionMode`]).
#[derive(Debug, Default)]
pub struct ZlibCompressor {
    input: Vec<u8>,
}

impl ZlibCompressor {
    /// A new compressor.
    pub fn new() -> ZlibCompressor {
        ZlibCompressor::default()
    }
}

impl Compressor for ZlibCompressor {
    fn compress(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        concat(input, &mut self.input);
        out.clear();
        let mut encoder = flate2::write::ZlibEncoder::new(
            std::mem::take(out),
            flate2::Compression::new(ZLIB_LEVEL),
        );
        let written = encoder
            .write_all(&self.input)
            .and_then(|()| encoder.finish());
        match written {
            Ok(buf) => *out = buf,
            Err(_) => out.clear(),
        }
        within(out, limit)
    }

    fn decompress(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        let mut decoder = flate2::read::ZlibDecoder::new(input);
        // Read one byte past the limit: more output than that is an error (ENet's buffer).
        let read = (&mut decoder).take(limit as u64 + 1).read_to_end(out);
        match read {
            Ok(n) if n > 0 && n <= limit => Some(n),
            _ => {
                out.clear();
                None
            }
        }
    }
}

/// Godot's `COMPRESS_ZSTD` (see [`CompressionMode`]).
pub struct ZstdCompressor {
    input: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl ZstdCompressor {
    /// A new compressor.
    pub fn new() -> ZstdCompressor {
        ZstdCompressor {
            input: Vec::new(),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
            decompressor: zstd::bulk::Decompressor::new().ok(),
        }
    }
}

impl Default for ZstdCompressor {
    fn default() -> Self {
        ZstdCompressor::new()
    }
}

impl std::fmt::Debug for ZstdCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZstdCompressor")
    }
}

impl Compressor for ZstdCompressor {
    fn compress(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        concat(input, &mut self.input);
        out.clear();
        let compressor = self.compressor.as_mut()?;
        out.reserve(zstd::zstd_safe::compress_bound(self.input.len()));
        if compressor.compress_to_buffer(&self.input, out).is_err() {
            out.clear();
        }
        within(out, limit)
    }

    fn decompress(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        let decompressor = self.decompressor.as_mut()?;
        out.reserve(limit);
        match decompressor.decompress_to_buffer(input, out) {
            Ok(n) if n > 0 && n <= limit => Some(n),
            _ => {
                out.clear();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        // ENet-like commands: repetitive, as game traffic is.
        let mut v = Vec::new();
        for i in 0..40u8 {
            v.extend_from_slice(&[0x86, 1, 0, i, 0, 12, 0x9e, 0xcd, 0x0a, 0x20, 1, 0, 0, 0]);
        }
        v
    }

    #[test]
    fn every_mode_round_trips_in_two_buffers() {
        let data = sample();
        let (a, b) = data.split_at(100);
        for mode in CompressionMode::ALL {
            let Some(mut c) = mode.compressor() else {
                continue;
            };
            let mut packed = Vec::new();
            let n = c
                .compress(&[a, b], data.len(), &mut packed)
                .unwrap_or_else(|| panic!("{mode:?} did not compress"));
            assert!(n < data.len(), "{mode:?}: {n} >= {}", data.len());
            let mut unpacked = Vec::new();
            let m = c.decompress(&packed, 4096, &mut unpacked).unwrap();
            assert_eq!(&unpacked[..m], &data[..], "{mode:?}");
        }
    }

    #[test]
    fn larger_output_than_the_limit_is_refused() {
        // Incompressible input: each mode's output is at least as large.
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for mode in CompressionMode::ALL {
            let Some(mut c) = mode.compressor() else {
                continue;
            };
            let mut out = vec![1, 2, 3];
            assert_eq!(c.compress(&[&noise], 150, &mut out), None, "{mode:?}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn fastlz_pads_short_inputs_to_sixteen_bytes() {
        let mut c = FastLzCompressor::new();
        let mut out = Vec::new();
        let n = c.compress(&[&[0x85, 0xff, 0, 1]], 100, &mut out).unwrap();
        let mut back = Vec::new();
        let m = c.decompress(&out[..n], 4096, &mut back).unwrap();
        assert_eq!(m, 16);
        assert_eq!(&back[..4], &[0x85, 0xff, 0, 1]);
        assert!(back[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zlib_output_has_the_zlib_wrapper() {
        let mut c = ZlibCompressor::new();
        let mut out = Vec::new();
        c.compress(&[&sample()], 4096, &mut out).unwrap();
        // CMF 0x78 (deflate, 32 KiB window); (CMF*256 + FLG) % 31 == 0.
        assert_eq!(out[0], 0x78);
        assert_eq!((u16::from(out[0]) * 256 + u16::from(out[1])) % 31, 0);
    }

    #[test]
    fn zstd_output_is_one_frame_with_its_size() {
        let mut c = ZstdCompressor::new();
        let mut out = Vec::new();
        let data = sample();
        c.compress(&[&data], 4096, &mut out).unwrap();
        assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&out).ok(),
            Some(Some(data.len() as u64))
        );
    }

    #[test]
    fn garbage_and_oversize_outputs_are_refused() {
        let data = vec![b'a'; 3000];
        for mode in CompressionMode::ALL {
            let Some(mut c) = mode.compressor() else {
                continue;
            };
            let mut packed = Vec::new();
            c.compress(&[&data], data.len(), &mut packed).unwrap();
            let mut out = Vec::new();
            // Decompressing 3000 bytes into a 1000-byte limit fails.
            assert_eq!(c.decompress(&packed, 1000, &mut out), None, "{mode:?}");
            assert!(out.len() <= 1000);
            for garbage in [&[][..], &[0xff; 7][..], &packed[..packed.len() / 2]] {
                let r = c.decompress(garbage, 4096, &mut out);
                assert!(r.is_none() || r.is_some_and(|n| n <= 4096), "{mode:?}");
            }
        }
    }

    #[test]
    fn godot_values() {
        for (i, mode) in CompressionMode::ALL.into_iter().enumerate() {
            assert_eq!(CompressionMode::from_godot(i as i64), Some(mode));
        }
        assert_eq!(CompressionMode::from_godot(5), None);
    }
}
