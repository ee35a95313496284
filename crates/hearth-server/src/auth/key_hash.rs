//! API key material: generation from the OS RNG, the stored hash, the listed prefix.
//!
//! A key is `hth_` + 64 hex digits (32 random bytes). Only its SHA-256 is stored, so
//! a stolen key file gives no usable key; the first 8 hex digits are kept in clear
//! so an operator can tell keys apart in `hearth keys list`.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

pub const KEY_PREFIX: &str = "hth_";
const KEY_BYTES: usize = 32;
/// Hex digits after `hth_` shown by `keys list` (4 of the 32 bytes: not enough to guess).
const SHOWN_DIGITS: usize = 8;

/// A fresh key, to be shown once.
pub fn generate_key() -> Result<String, AuthError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Rng(e.to_string()))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// What the store keeps for a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The non-secret part of a key shown in listings, e.g. `hth_1a2b3c4d`.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + SHOWN_DIGITS).collect()
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 64);
        assert!(a[KEY_PREFIX.len()..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(display_prefix(&a).len(), 12);
        assert!(a.starts_with(&display_prefix(&a)));
    }

    #[test]
    fn hash_compare() {
        let k = "hth_00";
        assert!(hashes_equal(&hash_key(k), &hash_key(k)));
        assert!(!hashes_equal(&hash_key(k), &hash_key("hth_01")));
        assert!(!hashes_equal(&hash_key(k), &hash_key(k)[..31]));
    }
}
