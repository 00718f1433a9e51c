//! Minimal DTLS record parsing: sniffing ClientHellos (for the listener's pre-filter, the RFC 6347
//! section 4.2.8 reconnect rule and the cheap cookie check before a refusal), and shielding OpenSSL from
//! records it mishandles.
//!
//! Measured with OpenSSL 3.0: an epoch-1 record shorter than the AEAD overhead (for example a 4-byte
//! body under AES-GCM, which needs 8 bytes of explicit nonce + 16 bytes of tag) is not silently
//! discarded as RFC 6347 section 4.1.2.7 requires, but fails the whole association with an internal
//! error, even when it arrives before the keys exist (OpenSSL buffers it). One spoofed 17-byte
//! datagram could therefore kill any handshake. We drop such records before OpenSSL sees them.

use std::borrow::Cow;

/// DTLS record header length.
pub(crate) const HEADER_LEN: usize = 13;

/// DTLS record header (13) + handshake header (12): the least a ClientHello datagram holds.
const MIN_CLIENT_HELLO: usize = 25;

/// A cheap pre-filter: a DTLS handshake record of epoch 0 whose message is a ClientHello.
pub(crate) fn looks_like_client_hello(data: &[u8]) -> bool {
    data.len() >= MIN_CLIENT_HELLO
        && data[0] == 22 // content type handshake
        && data[1] == 0xfe // DTLS major version
        && data[3] == 0
        && data[4] == 0 // epoch 0
        && data[13] == 1 // handshake type client_hello
}

/// The fields of an unfragmented ClientHello in the first record of a datagram that the endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientHello<'a> {
    /// The 32-byte `random`: tells a retransmitted ClientHello from a new one.
    pub(crate) random: [u8; 32],
    /// The cookie (empty in a first ClientHello).
    pub(crate) cookie: &'a [u8],
}

/// Parses the ClientHello at the start of `data` (record header 13 bytes, handshake header 12, then
/// client_version 2, random 32, session_id and cookie with one-byte lengths). `None` unless it is an
/// epoch-0 ClientHello whose first fragment holds at least the fields up to the cookie.
pub(crate) fn client_hello(data: &[u8]) -> Option<ClientHello<'_>> {
    if !looks_like_client_hello(data) {
        return None;
    }
    let record_len = usize::from(u16::from_be_bytes([data[11], data[12]]));
    let record = data.get(HEADER_LEN..HEADER_LEN + record_len)?;
    // Handshake header: type 1, length 3, message_seq 2, fragment_offset 3, fragment_length 3.
    if record.get(6..9)? != [0, 0, 0] {
        return None; // not the first fragment
    }
    let body = record.get(12..)?;
    let random: [u8; 32] = body.get(2..34)?.try_into().ok()?;
    let sid_len = usize::from(*body.get(34)?);
    let cookie_at = 35 + sid_len;
    let cookie_len = usize::from(*body.get(cookie_at)?);
    let cookie = body.get(cookie_at + 1..cookie_at + 1 + cookie_len)?;
    Some(ClientHello { random, cookie })
}

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

    #[test]
    fn parses_client_hello_random_and_cookie() {
        let mut body = vec![0xfe, 0xfd];
        body.extend([7u8; 32]); // random
        body.push(0); // session id
        body.push(3); // cookie
        body.extend([1, 2, 3]);
        body.extend([0, 2, 0xc0, 0x2b, 1, 0]); // suites, compression
        let mut hs = vec![
            1,
            0,
            0,
            body.len() as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            body.len() as u8,
        ];
        hs.extend(&body);
        let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, hs.len() as u8];
        rec.extend(&hs);
        let hello = client_hello(&rec).expect("a ClientHello");
        assert_eq!(hello.random, [7u8; 32]);
        assert_eq!(hello.cookie, &[1, 2, 3]);
        // Truncated anywhere: None, never a panic.
        for n in 0..rec.len() - 8 {
            let _ = client_hello(&rec[..n]);
        }
        assert_eq!(client_hello(&rec[..40]), None);
        // Not the first fragment.
        let mut frag = rec.clone();
        frag[13 + 8] = 1;
        assert_eq!(client_hello(&frag), None);
        // Epoch 1.
        let mut e1 = rec;
        e1[4] = 1;
        assert_eq!(client_hello(&e1), None);
    }

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
