//! Credentials: e-mail addresses and passwords (argon2id on the bounded hashing pool).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::service::{
    ErrorCode, ServiceError,
    hashing::{self, Lane},
};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// An argon2id hash (default parameters) of a random password nobody knows. Verified against
/// when an e-mail is unknown, so a login takes as long whether or not the account exists.
pub(super) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1Yv0pZ5o0d3kq0lC3w2q0m9x8b2GqWc7m3F1r6dR8zE";

/// Lower-cases and checks an e-mail address (one `@`, a dotted domain, no spaces).
pub fn normalize_email(email: &str) -> Result<String, ServiceError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(ServiceError::invalid(
            ErrorCode::InvalidEmail,
            "email is not a valid address",
        ))
    }
}

pub(super) fn validate_password(password: &str) -> Result<(), ServiceError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            ErrorCode::PasswordTooShort,
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            ErrorCode::PasswordTooLong,
            format!("password must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(super) async fn hash_password(password: String) -> Result<String, ServiceError> {
    hashing::run(Lane::Signup, move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
    })
    .await?
}

pub(super) async fn verify_password(password: String, hash: String) -> Result<bool, ServiceError> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(false);
    }
    hashing::run(Lane::Login, move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_emails_cost_the_same() {
        let parsed = argon2::PasswordHash::new(DUMMY_HASH).expect("valid PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(
            Argon2::default()
                .verify_password(b"anything", DUMMY_HASH)
                .is_err()
        );
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(
            validate_password("ÄÖÜäöüßé").is_ok(),
            "characters, not bytes"
        );
    }
}
