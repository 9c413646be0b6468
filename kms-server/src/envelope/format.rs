//! Byte layout of envelope v1 and the canonical context (SPEC §3). No keys here: this
//! module only parses and encodes, and is the fuzz target's subject.

use sha2::{Digest, Sha256};

use super::labels;

/// Format byte of envelope v1.
pub const FORMAT_V1: u8 = 0x01;
/// Algorithm byte: AES-256-GCM-SIV with an HMAC-SHA256 key commitment.
pub const ALG_AES256GCMSIV_HMACSHA256: u8 = 0x01;
/// Length of the tenant fingerprint.
pub const TFP_LEN: usize = 8;
/// Length of the AES-GCM-SIV nonce (RFC 8452 §4).
pub const NONCE_LEN: usize = 12;
/// Length of the header: format, algorithm, version, tfp, nonce.
pub const HEADER_LEN: usize = 1 + 1 + 4 + TFP_LEN + NONCE_LEN;
/// Length of the commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the AES-GCM-SIV tag (RFC 8452 §4).
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext: 74.
pub const OVERHEAD: usize = HEADER_LEN + COMMITMENT_LEN + TAG_LEN;

/// Why bytes are not an envelope v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedEnvelope {
    /// Shorter than the 74 bytes of overhead.
    #[error("envelope is {0} bytes; at least 74 are required")]
    TooShort(usize),
    /// A format byte other than 0x01.
    #[error("unknown envelope format 0x{0:02x}")]
    UnknownFormat(u8),
    /// An algorithm byte other than 0x01.
    #[error("unknown envelope algorithm 0x{0:02x}")]
    UnknownAlgorithm(u8),
    /// Key version 0.
    #[error("envelope key version must be at least 1")]
    ZeroVersion,
}

/// The public header of an envelope: everything before the commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The tenant key version that sealed the envelope (≥ 1).
    pub version: u32,
    /// `SHA-256("hygo-kms/v1/tenant-id" || tenant_id)[0..8]`.
    pub tfp: [u8; TFP_LEN],
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The 26 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (fixed, rest) = out.split_at_mut(2);
        fixed.copy_from_slice(&[FORMAT_V1, ALG_AES256GCMSIV_HMACSHA256]);
        let (version, rest) = rest.split_at_mut(4);
        version.copy_from_slice(&self.version.to_be_bytes());
        let (tfp, nonce) = rest.split_at_mut(TFP_LEN);
        tfp.copy_from_slice(&self.tfp);
        nonce.copy_from_slice(&self.nonce);
        out
    }
}

/// An envelope split into its parts, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The decoded header.
    pub header: Header,
    /// The header's bytes, as received.
    pub header_bytes: &'a [u8; HEADER_LEN],
    /// The commitment.
    pub commitment: &'a [u8; COMMITMENT_LEN],
    /// Ciphertext and tag.
    pub body: &'a [u8],
}

/// Parses an envelope v1: at least 74 bytes, known format and algorithm, version ≥ 1.
/// Depends only on public bytes; never panics.
pub fn parse(envelope: &[u8]) -> Result<Parsed<'_>, MalformedEnvelope> {
    if envelope.len() < OVERHEAD {
        return Err(MalformedEnvelope::TooShort(envelope.len()));
    }
    let (header_bytes, rest) = envelope
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(MalformedEnvelope::TooShort(envelope.len()))?;
    let (commitment, body) = rest
        .split_first_chunk::<COMMITMENT_LEN>()
        .ok_or(MalformedEnvelope::TooShort(envelope.len()))?;
    let [format, alg, v0, v1, v2, v3, fields @ ..] = *header_bytes;
    if format != FORMAT_V1 {
        return Err(MalformedEnvelope::UnknownFormat(format));
    }
    if alg != ALG_AES256GCMSIV_HMACSHA256 {
        return Err(MalformedEnvelope::UnknownAlgorithm(alg));
    }
    let version = u32::from_be_bytes([v0, v1, v2, v3]);
    if version == 0 {
        return Err(MalformedEnvelope::ZeroVersion);
    }
    let (tfp, nonce) = fields.split_at(TFP_LEN);
    let header = Header {
        version,
        tfp: tfp.try_into().unwrap_or_default(),
        nonce: nonce.try_into().unwrap_or_default(),
    };
    Ok(Parsed {
        header,
        header_bytes,
        commitment,
        body,
    })
}

/// The tenant fingerprint `SHA-256("hygo-kms/v1/tenant-id" || tenant_id)[0..8]`: a
/// public hint to report cross-tenant ciphertexts, not a security binding.
pub fn tenant_fingerprint(tenant_id: &[u8]) -> [u8; TFP_LEN] {
    let digest = Sha256::new()
        .chain_update(labels::TENANT_FINGERPRINT)
        .chain_update(tenant_id)
        .finalize();
    let mut tfp = [0u8; TFP_LEN];
    tfp.copy_from_slice(digest.get(..TFP_LEN).unwrap_or_default());
    tfp
}

/// A length or count that does not fit the format's u16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {len}, over the format maximum of 65535")]
pub struct TooLong {
    /// Which field.
    pub what: &'static str,
    /// Its length or count.
    pub len: usize,
}

fn u16be(what: &'static str, len: usize) -> Result<[u8; 2], TooLong> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| TooLong { what, len })
}

/// The canonical context of SPEC §3:
///
/// ```text
/// u16be(len(tenant)) || tenant || u16be(pairs)
///   || for each pair, keys in memcmp order: u16be(len(k)) || k || u16be(len(v)) || v
/// ```
///
/// `pairs` must already be sorted by key bytes and free of duplicate keys (a
/// [`crate::keys::Context`] is); this is checked, and an unsorted or repeated key is
/// refused rather than encoded ambiguously. Every length must fit a u16: the encoder
/// fails, never truncates.
pub fn encode_context<'a, I>(tenant_id: &[u8], pairs: I) -> Result<Vec<u8>, ContextEncodingError>
where
    I: ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut out = Vec::with_capacity(4 + tenant_id.len());
    out.extend_from_slice(&u16be("tenant id length", tenant_id.len())?);
    out.extend_from_slice(tenant_id);
    out.extend_from_slice(&u16be("context pair count", pairs.len())?);
    let mut previous: Option<&[u8]> = None;
    for (k, v) in pairs {
        if previous.is_some_and(|p| p >= k) {
            return Err(ContextEncodingError::NotCanonical);
        }
        previous = Some(k);
        out.extend_from_slice(&u16be("context key length", k.len())?);
        out.extend_from_slice(k);
        out.extend_from_slice(&u16be("context value length", v.len())?);
        out.extend_from_slice(v);
    }
    Ok(out)
}

/// Why a context could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextEncodingError {
    /// A length or count over 65535.
    #[error(transparent)]
    TooLong(#[from] TooLong),
    /// Keys not strictly increasing in memcmp order.
    #[error("context keys must be unique and in memcmp order")]
    NotCanonical,
}

#[cfg(test)]
mod test {
    use super::*;

    fn enc(t: &str, pairs: &[(&str, &str)]) -> Result<Vec<u8>, ContextEncodingError> {
        encode_context(
            t.as_bytes(),
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        )
    }

    #[test]
    fn context_bytes_are_exact() {
        assert_eq!(enc("t", &[]).unwrap(), b"\x00\x01t\x00\x00");
        assert_eq!(
            enc("t", &[("a", "bc")]).unwrap(),
            b"\x00\x01t\x00\x01\x00\x01a\x00\x02bc"
        );
        assert_ne!(enc("t", &[("ab", "c")]), enc("t", &[("a", "bc")]));
    }

    #[test]
    fn context_encoder_refuses_instead_of_truncating() {
        let long = "k".repeat(65536);
        assert_eq!(
            enc("t", &[(&long, "")]),
            Err(ContextEncodingError::TooLong(TooLong {
                what: "context key length",
                len: 65536
            }))
        );
        assert!(enc("t", &[("k", &long)]).is_err());
        assert!(enc(&long, &[]).is_err());
        assert!(enc("t", &[("k", &"v".repeat(65535))]).is_ok());
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..65536u32)
            .map(|i| (format!("{i:06}").into_bytes(), Vec::new()))
            .collect();
        let r = encode_context(b"t", many.iter().map(|(k, v)| (&k[..], &v[..])));
        assert!(matches!(r, Err(ContextEncodingError::TooLong(_))));
    }

    #[test]
    fn context_encoder_refuses_unsorted_or_repeated_keys() {
        assert_eq!(
            enc("t", &[("b", ""), ("a", "")]),
            Err(ContextEncodingError::NotCanonical)
        );
        assert_eq!(
            enc("t", &[("a", ""), ("a", "")]),
            Err(ContextEncodingError::NotCanonical)
        );
        // A proper prefix sorts first.
        assert!(enc("t", &[("a", ""), ("ab", "")]).is_ok());
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            version: 0xdead_beef,
            tfp: [7; TFP_LEN],
            nonce: [9; NONCE_LEN],
        };
        let mut env = h.encode().to_vec();
        env.extend_from_slice(&[0u8; COMMITMENT_LEN + TAG_LEN]);
        let p = parse(&env).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.header_bytes, &h.encode());
        assert_eq!(p.body.len(), TAG_LEN);
    }

    #[test]
    fn parse_rejects_malformed() {
        let mut env = vec![1u8, 1, 0, 0, 0, 1];
        env.resize(OVERHEAD, 0);
        assert!(parse(&env).is_ok());
        assert_eq!(
            parse(&env[..OVERHEAD - 1]),
            Err(MalformedEnvelope::TooShort(73))
        );
        let mut bad = env.clone();
        bad[0] = 2;
        assert_eq!(parse(&bad), Err(MalformedEnvelope::UnknownFormat(2)));
        let mut bad = env.clone();
        bad[1] = 0;
        assert_eq!(parse(&bad), Err(MalformedEnvelope::UnknownAlgorithm(0)));
        let mut bad = env;
        bad[5] = 0;
        assert_eq!(parse(&bad), Err(MalformedEnvelope::ZeroVersion));
    }
}
