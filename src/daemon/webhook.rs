//! `POST /hooks/git`: GitHub push webhooks, authenticated by `X-Hub-Signature-256`
//! (HMAC-SHA256 of the body with `BATON_WEBHOOK_SECRET`), compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// True when `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    given.len() == expected.len() && bool::from(expected.as_slice().ct_eq(&given))
}

/// The signature header value for `body` (used by tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The branch a push payload names (`ref: refs/heads/<branch>`), if any.
pub fn pushed_branch(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("ref")?
        .as_str()?
        .strip_prefix("refs/heads/")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, body), good);
        assert!(verify(secret, body, Some(good)));
        assert!(!verify(secret, b"Hello, World?", Some(good)));
        assert!(!verify(b"other", body, Some(good)));
        assert!(!verify(secret, body, None));
        assert!(!verify(secret, body, Some("sha256=zz")));
        assert!(!verify(secret, body, Some(&good[..20])));
    }

    #[test]
    fn branch_of_push_payload() {
        assert_eq!(
            pushed_branch(br#"{"ref":"refs/heads/main"}"#).as_deref(),
            Some("main")
        );
        assert_eq!(pushed_branch(br#"{"zen":"hi"}"#), None);
    }
}
