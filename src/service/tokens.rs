//! Guest tokens: HMAC-SHA-256 over the guest id and the guest's salt (random, stored with the
//! guest when its id is claimed), keyed with the server secret. Erasing the guest drops the salt,
//! which ends its tokens; a re-claimed id gets a new salt, so new tokens. Guests claimed before
//! salts existed have none: their tokens are the older HMAC of the id alone. The secret comes
//! from config or from `<data_dir>/secret.key`, made on first start, so tokens survive restarts.

use std::{io::Write, path::Path};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::digest::hex;
use crate::config::Settings;

type HmacSha256 = Hmac<Sha256>;

const GUEST_CONTEXT: &[u8] = b"genesis/guest-token/v1\0";
const SALTED_CONTEXT: &[u8] = b"genesis/guest-token/v2\0";

/// A new guest's salt: 16 random bytes, hex.
pub fn new_salt() -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    hex(&salt)
}

/// Signs and checks guest tokens.
#[derive(Clone)]
pub struct GuestTokens {
    key: Vec<u8>,
}

impl GuestTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, guest_id: &str, salt: Option<&str>) -> HmacSha256 {
        // HMAC accepts keys of any length; the secret is never empty.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        match salt {
            Some(salt) => {
                mac.update(SALTED_CONTEXT);
                mac.update(guest_id.as_bytes());
                mac.update(b"\0");
                mac.update(salt.as_bytes());
            }
            None => {
                mac.update(GUEST_CONTEXT);
                mac.update(guest_id.as_bytes());
            }
        }
        mac
    }

    /// The token for `guest_id` with its `salt`: 64 lower-case hex characters.
    pub fn issue(&self, guest_id: &str, salt: Option<&str>) -> String {
        hex(&self.mac(guest_id, salt).finalize().into_bytes())
    }

    /// Constant-time check of `token` against `guest_id` and its `salt`.
    pub fn verify(&self, guest_id: &str, salt: Option<&str>, token: &str) -> bool {
        match unhex(token.trim()) {
            Some(bytes) => self.mac(guest_id, salt).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    /// True when `token` could be a token at all (64 hex characters): anything else is refused
    /// before any lookup.
    pub fn well_formed(token: &str) -> bool {
        let token = token.trim();
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// The server secret: `auth.secret` when set, else `<data_dir>/secret.key` (created with 32
/// random bytes, mode 0600, on first start).
pub fn load_server_secret(settings: &Settings) -> std::io::Result<Vec<u8>> {
    if !settings.auth.secret.is_empty() {
        return Ok(settings.auth.secret.expose().as_bytes().to_vec());
    }
    let path = settings.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => unhex(text.trim()).filter(|b| b.len() >= 32).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a valid key file (64+ hex characters)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(&path),
        Err(e) => Err(e),
    }
}

fn create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    rand::fill(&mut key[..]);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex(&key).as_bytes())?;
            file.sync_all()?;
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            unhex(text.trim()).ok_or_else(|| std::io::Error::other("unreadable key file"))
        }
        Err(e) => Err(e),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_token_text_is_checked_without_a_panic(id in ".{0,64}", token in any::<String>()) {
            let tokens = GuestTokens::new(b"0123456789abcdef0123456789abcdef");
            let salt = new_salt();
            let _ = GuestTokens::well_formed(&token);
            prop_assert!(!tokens.verify(&id, Some(&salt), &token) || token.trim().len() == 64);
            let _ = unhex(&token);
        }

        #[test]
        fn issued_tokens_verify_for_their_guest_and_salt_only(
            id in "[A-Za-z0-9_-]{1,128}",
            other in "[A-Za-z0-9_-]{1,128}",
        ) {
            let tokens = GuestTokens::new(b"0123456789abcdef0123456789abcdef");
            let salt = new_salt();
            let token = tokens.issue(&id, Some(&salt));
            prop_assert!(GuestTokens::well_formed(&token));
            prop_assert!(tokens.verify(&id, Some(&salt), &token));
            prop_assert_eq!(tokens.verify(&other, Some(&salt), &token), other == id);
            prop_assert!(!tokens.verify(&id, Some(&new_salt()), &token));
        }

        #[test]
        fn hex_round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_own_guest_and_salt() {
        let tokens = GuestTokens::new(b"0123456789abcdef0123456789abcdef");
        let salt = new_salt();
        let token = tokens.issue("test-guest-001", Some(&salt));
        assert_eq!(token.len(), 64);
        assert!(GuestTokens::well_formed(&token));
        assert!(tokens.verify("test-guest-001", Some(&salt), &token));
        assert!(!tokens.verify("test-guest-002", Some(&salt), &token));
        // A re-claimed id has a new salt: the old token does not open it.
        assert!(!tokens.verify("test-guest-001", Some(&new_salt()), &token));
        assert!(!tokens.verify("test-guest-001", None, &token));
        let mut tampered = token.clone().into_bytes();
        tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
        assert!(!tokens.verify(
            "test-guest-001",
            Some(&salt),
            &String::from_utf8(tampered).unwrap_or_default()
        ));
        assert!(!tokens.verify("test-guest-001", Some(&salt), "not-hex"));
        assert!(!GuestTokens::well_formed("not-hex"));
        let other = GuestTokens::new(b"another secret, also long enough!!");
        assert!(!other.verify("test-guest-001", Some(&salt), &token));
        // Guests from before salts keep their deterministic tokens.
        let legacy = tokens.issue("test-guest-001", None);
        assert!(tokens.verify("test-guest-001", None, &legacy));
        assert_ne!(legacy, token);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
    }
}
