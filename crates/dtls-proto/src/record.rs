//! Minimal DTLS record-header walking, used only to shield OpenSSL from records it mishandles.
//!
//! Measured with OpenSSL 3.0: an epoch-1 record shorter than the AEAD overhead (for example a 4-byte
//! body under AES-GCM, which needs 8 bytes of explicit nonce + 16 bytes of tag) is not silently
//! discarded as RFC 6347 section 4.1.2.7 requires, but fails the whole association with an internal
//! error, even when it arrives before the keys exist (OpenSSL buffers it). One spoofed 17-byte
//! datagram could therefore kill any handshake. We drop such records before OpenSSL sees them.

use std::borrow::Cow;

/// DTLS record header length.
pub(crate) const HEADER_LEN: usize = 13;

/// The smallest body an encrypted record can legitimately have: 16 for ChaCha20-Poly1305 / CCM8
/// (tag only), else 24 (8-byte explicit nonce + 16-byte tag for GCM/CCM; CBC records are larger still).
/// Before the cipher is known, 24: the only encrypted record that can precede it is a Finished
/// (24 bytes of plaintext plus overhead).
pub(crate) fn min_encrypted_body(cipher: Option<&str>) -> usize {
    match cipher {
        Some(name) if name.contains("CHACHA20") || name.contains("CCM8") => 16,
        _ => 24,
    }
}

/// Returns `data` without the records whose epoch is not 0 and whose body is shorter than `min_body`.
/// Records are otherwise passed through untouched (malformed tails included: OpenSSL drops those
/// correctly).
pub(crate) fn drop_short_encrypted(data: &[u8], min_body: usize) -> Cow<'_, [u8]> {
    let mut offset = 0;
    let mut kept: Option<Vec<u8>> = None;
    while data.len() - offset >= HEADER_LEN {
        let header = &data[offset..offset + HEADER_LEN];
        let epoch = u16::from_be_bytes([header[3], header[4]]);
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        let end = offset + HEADER_LEN + len;
        if end > data.len() {
            break;
        }
        let drop = epoch != 0 && len < min_body;
        if drop {
            tracing::trace!(
                epoch,
                len,
                "dtls dropped an encrypted record too short to be valid"
            );
            kept.get_or_insert_with(|| data[..offset].to_vec());
        } else if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&data[offset..end]);
        }
        offset = end;
    }
    match kept {
        None => Cow::Borrowed(data),
        Some(mut k) => {
            k.extend_from_slice(&data[offset..]);
            Cow::Owned(k)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u8, body: usize) -> Vec<u8> {
        let mut r = vec![23, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1, 0, body as u8];
        r.resize(13 + body, 9);
        r
    }

    #[test]
    fn keeps_valid_and_drops_short_encrypted_records() {
        let a = record(0, 3);
        let b = record(1, 4);
        let c = record(1, 30);
        let all = [a.clone(), b, c.clone()].concat();
        assert_eq!(
            drop_short_encrypted(&all, 24).as_ref(),
            [a.clone(), c.clone()].concat()
        );
        assert!(matches!(drop_short_encrypted(&c, 24), Cow::Borrowed(_)));
        // Truncated trailing record: passed through for OpenSSL to discard.
        let truncated = [a.clone(), vec![23, 0xfe]].concat();
        assert_eq!(
            drop_short_encrypted(&truncated, 24).as_ref(),
            truncated.as_slice()
        );
        assert_eq!(min_encrypted_body(Some("ECDHE-RSA-CHACHA20-POLY1305")), 16);
        assert_eq!(min_encrypted_body(Some("ECDHE-RSA-AES256-GCM-SHA384")), 24);
        assert_eq!(min_encrypted_body(None), 24);
    }
}
