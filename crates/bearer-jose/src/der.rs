//! The few DER structures a private JWK becomes, written by hand:
//! jsonwebtoken takes private keys only as PEM or DER, and the layouts
//! (PKCS#1 RSAPrivateKey, PKCS#8 around an RFC 5915 EC key or an RFC 8410
//! Ed25519 seed) are fixed and short. Every buffer holding key bytes is
//! zeroized when dropped.

use zeroize::Zeroizing;

pub(crate) type Der = Zeroizing<Vec<u8>>;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
/// `[1]` explicit, constructed: ECPrivateKey's publicKey.
const CONTEXT_1: u8 = 0xa1;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// An EC curve this crate signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The byte length of a coordinate and of the private scalar.
    pub(crate) fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
        }
    }
}

fn tlv(tag: u8, content: &[u8]) -> Der {
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 6));
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn concat(parts: &[&[u8]]) -> Der {
    let mut out = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn unsigned_integer(magnitude: &[u8]) -> Der {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    if trimmed.is_empty() {
        return tlv(INTEGER, &[0]);
    }
    if trimmed[0] & 0x80 != 0 {
        tlv(INTEGER, &concat(&[&[0], trimmed]))
    } else {
        tlv(INTEGER, trimmed)
    }
}

/// PKCS#1 RSAPrivateKey (two-prime): what jsonwebtoken's RSA signers read.
/// The parameters in order: n, e, d, p, q, dp, dq, qi.
pub(crate) fn rsa_pkcs1(params: [&[u8]; 8]) -> Der {
    let mut body = Zeroizing::new(vec![INTEGER, 1, 0]);
    for param in params {
        body.extend_from_slice(&unsigned_integer(param));
    }
    tlv(SEQUENCE, &body)
}

/// PKCS#8 around an ECPrivateKey with its public point, the form both
/// backends read (and the one aws-lc generates).
pub(crate) fn ec_pkcs8(curve: Curve, d: &[u8], x: &[u8], y: &[u8]) -> Der {
    let algorithm = tlv(SEQUENCE, &concat(&[OID_EC_PUBLIC_KEY, curve.oid()]));
    let point = tlv(BIT_STRING, &concat(&[&[0, 0x04], x, y]));
    let ec_key = tlv(
        SEQUENCE,
        &concat(&[
            &[INTEGER, 1, 1],
            &tlv(OCTET_STRING, d),
            &tlv(CONTEXT_1, &point),
        ]),
    );
    tlv(
        SEQUENCE,
        &concat(&[&[INTEGER, 1, 0], &algorithm, &tlv(OCTET_STRING, &ec_key)]),
    )
}

/// PKCS#8 v1 around an Ed25519 seed (RFC 8410 §7).
pub(crate) fn ed25519_pkcs8(seed: &[u8]) -> Der {
    let algorithm = tlv(SEQUENCE, OID_ED25519);
    let private = tlv(OCTET_STRING, &tlv(OCTET_STRING, seed));
    tlv(SEQUENCE, &concat(&[&[INTEGER, 1, 0], &algorithm, &private]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_long_form() {
        let content = vec![7u8; 300];
        let out = tlv(SEQUENCE, &content);
        assert_eq!(&out[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(out.len(), 304);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(&*unsigned_integer(&[0, 0, 5]), &[2, 1, 5]);
        assert_eq!(&*unsigned_integer(&[0x80]), &[2, 2, 0, 0x80]);
        assert_eq!(&*unsigned_integer(&[]), &[2, 1, 0]);
    }

    #[test]
    fn an_ed25519_seed_gets_the_rfc_8410_prefix() {
        let der = ed25519_pkcs8(&[1u8; 32]);
        assert_eq!(
            &der[..16],
            &[
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
    }

    #[test]
    fn a_p256_key_has_the_usual_pkcs8_length() {
        let der = ec_pkcs8(Curve::P256, &[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(der.len(), 138);
        assert_eq!(&der[..3], &[0x30, 0x81, 0x87]);
    }
}
