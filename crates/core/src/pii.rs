//! Personal data (个人信息): phone, email and name.
//!
//! - [`Secret`] holds a value that must not leak: `Debug` prints `***` and it has no `Serialize`.
//! - [`PiiCipher`] encrypts at rest (AES-256-GCM, random nonce) and makes keyed look-up hashes
//!   (HMAC-SHA256 of the normalised value) so equal phones match without decrypting.
//! - `mask_*` produce what a caller without the `pii` scope sees: `138****1234`, `a***@example.com`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

/// A value that must not appear in logs or responses unless deliberately exposed.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The only way to read the value; grep for `expose` to audit every use.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which kind of personal data a look-up hash is for; part of the hashed input so a phone and an
/// email with equal text never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    Phone,
    Email,
}

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("the personal-data key must be 32 bytes in base64 (44 characters), got {0} bytes")]
    BadKeyLength(usize),
    #[error("the personal-data key is not valid base64")]
    BadKeyEncoding,
    #[error("stored personal data could not be decrypted (wrong key or corrupted)")]
    Decrypt,
}

/// Format version written before every ciphertext, so keys and algorithms can rotate.
const CIPHERTEXT_VERSION: u8 = 1;

/// Encryption and look-up hashing of personal data with keys derived from one master key.
pub struct PiiCipher {
    aead: Aes256Gcm,
    lookup_key: [u8; 32],
}

impl std::fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiCipher(***)")
    }
}

impl Drop for PiiCipher {
    fn drop(&mut self) {
        self.lookup_key.zeroize();
    }
}

impl PiiCipher {
    /// From a 32-byte master key encoded as standard base64.
    pub fn from_base64(key: &str) -> Result<Self, PiiError> {
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| PiiError::BadKeyEncoding)?;
        let result = Self::from_master_key(&bytes);
        bytes.zeroize();
        result
    }

    pub fn from_master_key(master: &[u8]) -> Result<Self, PiiError> {
        if master.len() != 32 {
            return Err(PiiError::BadKeyLength(master.len()));
        }
        let mut enc_key = derive(master, b"shopgrowth pii encryption v1");
        let lookup_key = derive(master, b"shopgrowth pii lookup v1");
        let aead = Aes256Gcm::new((&enc_key).into());
        enc_key.zeroize();
        Ok(Self { aead, lookup_key })
    }

    /// A fresh random master key, base64-encoded (for `shopgrowth demo` and key generation).
    pub fn generate_key() -> String {
        let key: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// `version || nonce(12) || ciphertext+tag`.
    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // AES-GCM encryption only fails for inputs beyond 64 GiB; personal fields are tiny.
        let sealed = self
            .aead
            .encrypt(nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 12 + sealed.len());
        out.push(CIPHERTEXT_VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, stored: &[u8]) -> Result<Secret<String>, PiiError> {
        if stored.len() < 13 || stored[0] != CIPHERTEXT_VERSION {
            return Err(PiiError::Decrypt);
        }
        let nonce = Nonce::from_slice(&stored[1..13]);
        let plain = self
            .aead
            .decrypt(nonce, &stored[13..])
            .map_err(|_| PiiError::Decrypt)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| PiiError::Decrypt)
    }

    /// Keyed hash of an already normalised value, for equality look-ups and deduplication.
    pub fn lookup_hash(&self, kind: PiiKind, normalised: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.lookup_key)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(match kind {
            PiiKind::Phone => b"phone:",
            PiiKind::Email => b"email:",
        });
        mac.update(normalised.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(master).unwrap_or_else(|_| unreachable_hmac());
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// HMAC accepts keys of any length, so construction cannot fail.
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

/// Normalises a phone number: drops spaces, dashes, dots and brackets; a Chinese mobile number
/// (11 digits starting with 1, with or without +86/0086) becomes `+86` and its 11 digits.
pub fn normalise_phone(raw: &str) -> Result<String, String> {
    let kept: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let (plus, digits) = match kept.strip_prefix('+') {
        Some(rest) => (true, rest.to_owned()),
        None => match kept.strip_prefix("00") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, kept.clone()),
        },
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must contain only digits, spaces, dashes and an optional leading +".into());
    }
    if !plus && digits.len() == 11 && digits.starts_with('1') {
        return Ok(format!("+86{digits}"));
    }
    if !plus {
        return Err(
            "must be a Chinese mobile number (11 digits) or start with + and a country code".into(),
        );
    }
    if !(7..=15).contains(&digits.len()) {
        return Err("must have 7 to 15 digits after the country code".into());
    }
    Ok(format!("+{digits}"))
}

/// Normalises an email address: trims and lower-cases; refuses what cannot be an address.
pub fn normalise_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid && email.len() <= 254 {
        Ok(email)
    } else {
        Err("is not an email address".into())
    }
}

/// `+8613812341234` → `138****1234`; other numbers keep their first 3 and last 2 digits.
pub fn mask_phone(normalised: &str) -> String {
    let national = normalised.strip_prefix("+86").filter(|d| d.len() == 11);
    match national {
        Some(d) => format!("{}****{}", &d[..3], &d[7..]),
        None => {
            let chars: Vec<char> = normalised.chars().collect();
            if chars.len() <= 5 {
                return "*".repeat(chars.len());
            }
            let head: String = chars[..3].iter().collect();
            let tail: String = chars[chars.len() - 2..].iter().collect();
            format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
        }
    }
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `张三丰` → `张**`, `Alice` → `A****`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count())),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> PiiCipher {
        match PiiCipher::from_master_key(&[7u8; 32]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn encrypts_and_decrypts() {
        let c = cipher();
        let sealed = c.encrypt("+8613812341234");
        assert!(!sealed.windows(11).any(|w| w == b"13812341234"));
        assert_eq!(
            c.decrypt(&sealed).map(|s| s.expose().clone()).ok(),
            Some("+8613812341234".into())
        );
        assert_ne!(c.encrypt("+8613812341234"), sealed, "nonces are random");
        let other = PiiCipher::from_master_key(&[8u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert!(other.decrypt(&sealed).is_err());
    }

    #[test]
    fn lookup_hashes_are_keyed_and_typed() {
        let c = cipher();
        assert_eq!(
            c.lookup_hash(PiiKind::Phone, "+861"),
            c.lookup_hash(PiiKind::Phone, "+861")
        );
        assert_ne!(
            c.lookup_hash(PiiKind::Phone, "+861"),
            c.lookup_hash(PiiKind::Email, "+861")
        );
    }

    #[test]
    fn normalises_and_masks() {
        assert_eq!(
            normalise_phone("138-1234-1234").as_deref(),
            Ok("+8613812341234")
        );
        assert_eq!(
            normalise_phone("+86 138 1234 1234").as_deref(),
            Ok("+8613812341234")
        );
        assert_eq!(
            normalise_phone("0044 20 7946 0958").as_deref(),
            Ok("+442079460958")
        );
        assert!(normalise_phone("12345").is_err());
        assert!(normalise_phone("phone").is_err());
        assert_eq!(mask_phone("+8613812341234"), "138****1234");
        assert_eq!(mask_phone("+442079460958"), "+44********58");
        assert_eq!(
            normalise_email("  Alice@Example.COM ").as_deref(),
            Ok("alice@example.com")
        );
        assert!(normalise_email("alice@localhost").is_err());
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(format!("{:?}", Secret::new("13812341234")), "Secret(***)");
    }

    #[test]
    fn refuses_bad_keys() {
        assert!(matches!(
            PiiCipher::from_base64("c2hvcnQ="),
            Err(PiiError::BadKeyLength(5))
        ));
        assert!(matches!(
            PiiCipher::from_base64("!!!"),
            Err(PiiError::BadKeyEncoding)
        ));
        assert!(PiiCipher::from_base64(&PiiCipher::generate_key()).is_ok());
    }
}
