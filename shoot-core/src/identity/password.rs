//! Password hashing with Argon2id, stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! Hashing is deliberately CPU- and memory-heavy (tens of milliseconds with the production
//! parameters). The engine calls it synchronously inside `signup`, `authenticate` and password
//! changes; a server running on an async runtime may want to call those use cases from a
//! blocking-capable thread (`tokio::task::spawn_blocking` + `Handle::block_on`, or
//! `block_in_place`). The engine never spawns for this itself: it does not pick a runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, ErrorCode, Result};

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordHasherConfig {
    /// Memory cost in KiB (at least `8 * parallelism`).
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordHasherConfig {
    /// The OWASP-recommended production parameters: 19 MiB, 2 passes, 1 lane.
    pub const PRODUCTION: PasswordHasherConfig = PasswordHasherConfig {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Minimal parameters for tests: the hash is still a valid Argon2id PHC string but takes
    /// microseconds. Never use in production.
    pub fn fast() -> PasswordHasherConfig {
        PasswordHasherConfig {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| internal(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with a fresh random salt; returns the PHC string.
    pub fn hash(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| internal(format!("no OS randomness: {e}")))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal(e.to_string()))?;
        let hash = self
            .argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| internal(format!("argon2 hashing failed: {e}")))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc`. The parameters stored in `phc` are
    /// used (so hashes made with other parameters still verify); a malformed `phc` never
    /// matches.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }
}

impl Default for PasswordHasherConfig {
    fn default() -> PasswordHasherConfig {
        PasswordHasherConfig::PRODUCTION
    }
}

fn internal(message: String) -> Error {
    Error::new(ErrorCode::InternalError, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let cfg = PasswordHasherConfig::fast();
        let phc = cfg.hash("Secret#123").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(cfg.verify("Secret#123", &phc));
        assert!(!cfg.verify("Secret#124", &phc));
        assert!(!cfg.verify("Secret#123", "not a phc string"));
    }

    #[test]
    fn salts_differ_and_other_parameters_still_verify() {
        let fast = PasswordHasherConfig::fast();
        let a = fast.hash("Secret#123").unwrap();
        let b = fast.hash("Secret#123").unwrap();
        assert_ne!(a, b);
        let other = PasswordHasherConfig {
            memory_kib: 16,
            iterations: 2,
            parallelism: 1,
        };
        let c = other.hash("Secret#123").unwrap();
        assert!(fast.verify("Secret#123", &c));
        assert!(other.verify("Secret#123", &a));
    }

    #[test]
    fn production_defaults() {
        let d = PasswordHasherConfig::default();
        assert_eq!(
            (d.memory_kib, d.iterations, d.parallelism),
            (19 * 1024, 2, 1)
        );
    }

    #[test]
    fn invalid_parameters_are_an_internal_error() {
        let bad = PasswordHasherConfig {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert_eq!(bad.hash("x").unwrap_err().code(), ErrorCode::InternalError);
    }
}
