//! Signed unsubscribe links: the digest's "stop these emails" works without logging in, and only
//! for the user it was sent to.

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(key: &[u8], user_id: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("unsubscribe:{user_id}").as_bytes());
    mac
}

pub fn token(key: &[u8], user_id: i64) -> String {
    hex::encode(mac(key, user_id).finalize().into_bytes())
}

pub fn verify(key: &[u8], user_id: i64, token: &str) -> bool {
    let Ok(bytes) = hex::decode(token) else {
        return false;
    };
    // Constant-time comparison.
    mac(key, user_id).verify_slice(&bytes).is_ok()
}

pub fn link(public_url: &str, key: &[u8], user_id: i64) -> String {
    format!(
        "{}/unsubscribe?u={user_id}&t={}",
        public_url.trim_end_matches('/'),
        token(key, user_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_user_and_key() {
        let t = token(b"key", 7);
        assert!(verify(b"key", 7, &t));
        assert!(!verify(b"key", 8, &t));
        assert!(!verify(b"other", 7, &t));
        assert!(!verify(b"key", 7, "zz"));
    }
}
