//! Guest tokens: HMAC-SHA-256 over the guest id, keyed with the server secret. The secret comes
//! from config or from `<data_dir>/secret.key`, made on first start, so tokens survive restarts.

use std::{io::Write, path::Path};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::digest::hex;
use crate::config::Settings;

type HmacSha256 = Hmac<Sha256>;

const GUEST_CONTEXT: &[u8] = b"genesis/guest-token/v1\0";

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

    fn mac(&self, guest_id: &str) -> HmacSha256 {
        // HMAC accepts keys of any length; the secret is never empty.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(GUEST_CONTEXT);
        mac.update(guest_id.as_bytes());
        mac
    }

    /// The token for `guest_id`: 64 lower-case hex characters.
    pub fn issue(&self, guest_id: &str) -> String {
        hex(&self.mac(guest_id).finalize().into_bytes())
    }

    /// Constant-time check of `token` against `guest_id`.
    pub fn verify(&self, guest_id: &str, token: &str) -> bool {
        match unhex(token.trim()) {
            Some(bytes) => self.mac(guest_id).verify_slice(&bytes).is_ok(),
            None => false,
        }
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
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_own_guest() {
        let tokens = GuestTokens::new(b"0123456789abcdef0123456789abcdef");
        let token = tokens.issue("test-guest-001");
        assert_eq!(token.len(), 64);
        assert!(tokens.verify("test-guest-001", &token));
        assert!(!tokens.verify("test-guest-002", &token));
        let mut tampered = token.clone().into_bytes();
        tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
        assert!(!tokens.verify(
            "test-guest-001",
            &String::from_utf8(tampered).unwrap_or_default()
        ));
        assert!(!tokens.verify("test-guest-001", "not-hex"));
        let other = GuestTokens::new(b"another secret, also long enough!!");
        assert!(!other.verify("test-guest-001", &token));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
    }
}
