//! The HMAC-SHA256 signature of a webhook body.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature when the webhook has a `secret`.
pub const SIGNATURE_HEADER: &str = "x-heartwatch-signature-256";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, the value of [`SIGNATURE_HEADER`]: the
/// receiver recomputes it over the raw body with the shared secret and compares (in constant
/// time, as [`verify`] does) to know the event came from this server and was not altered.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// Whether `header` is the signature of `body` under `secret`. Constant-time in the
/// signature's bytes; for receivers written in Rust, and for the tests.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = hex::decode(hex) else {
        return false;
    };
    mac(secret, body).verify_slice(&tag).is_ok()
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        // RFC 4231, test case 2.
        let signature = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &signature));
    }

    #[test]
    fn rejects_another_body_secret_or_shape() {
        let signature = sign(b"k", b"body");
        assert!(!verify(b"k", b"body!", &signature));
        assert!(!verify(b"K", b"body", &signature));
        assert!(!verify(b"k", b"body", &signature[7..]));
        assert!(!verify(b"k", b"body", "sha256=zz"));
    }
}
