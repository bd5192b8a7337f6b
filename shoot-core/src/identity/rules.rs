//! Pure validation rules of identity (SPEC §5) and user-code generation. Every rule returns
//! the precise [`ErrorCode`] of the broken rule; the bounds come from [`Limits`].

use crate::error::{ErrorCode, Result, fail};
use crate::limits::Limits;

/// Checks a username: `limits.username_min..=username_max` characters of `[a-zA-Z0-9_.]`.
/// Returns `INVALID_USERNAME` otherwise. Usernames are not trimmed: spaces are invalid.
pub fn validate_username(username: &str, limits: &Limits) -> Result<()> {
    let len = username.chars().count();
    if len < limits.username_min || len > limits.username_max {
        return fail(
            ErrorCode::InvalidUsername,
            format!(
                "username must be {}-{} characters",
                limits.username_min, limits.username_max
            ),
        );
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return fail(
            ErrorCode::InvalidUsername,
            "username may only contain letters, digits, '_' and '.'",
        );
    }
    Ok(())
}

/// Trims a nickname and checks it is `nickname_min..=nickname_max` characters and free of
/// control characters; returns the trimmed nickname or `INVALID_NICKNAME`.
pub fn normalize_nickname(nickname: &str, limits: &Limits) -> Result<String> {
    let trimmed = nickname.trim();
    let len = trimmed.chars().count();
    if len < limits.nickname_min || len > limits.nickname_max {
        return fail(
            ErrorCode::InvalidNickname,
            format!(
                "nickname must be {}-{} characters",
                limits.nickname_min, limits.nickname_max
            ),
        );
    }
    if trimmed.chars().any(char::is_control) {
        return fail(
            ErrorCode::InvalidNickname,
            "nickname contains control characters",
        );
    }
    Ok(trimmed.to_owned())
}

/// Longest accepted e-mail address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// Trims an e-mail address and checks its shape: one `@`, a non-empty local part of
/// printable non-space ASCII, a domain of dot-separated labels of `[a-zA-Z0-9-]` (not
/// starting or ending with `-`) with at least one dot. Returns it trimmed, or `INVALID_EMAIL`.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim();
    let bad = || fail(ErrorCode::InvalidEmail, "malformed e-mail address");
    if email.is_empty() || email.len() > EMAIL_MAX {
        return bad();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    if local.is_empty()
        || local.len() > 64
        || !local.chars().all(|c| c.is_ascii_graphic() && c != '@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return bad();
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad();
    }
    for label in labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return bad();
        }
    }
    Ok(email.to_owned())
}

/// Trims a bio; an empty bio becomes `None`. Longer than `limits.bio_max` characters:
/// `BIO_TOO_LONG`.
pub fn normalize_bio(bio: Option<&str>, limits: &Limits) -> Result<Option<String>> {
    let Some(bio) = bio.map(str::trim).filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    if bio.chars().count() > limits.bio_max {
        return fail(
            ErrorCode::BioTooLong,
            format!("bio must be at most {} characters", limits.bio_max),
        );
    }
    Ok(Some(bio.to_owned()))
}

/// Longest accepted password (bounds the hashing work an attacker can ask for).
pub const PASSWORD_MAX: usize = 128;

/// The password policy: `limits.password_min..=128` characters with at least one upper-case
/// letter, one lower-case letter, one digit and one symbol (anything else that is not
/// white space). Returns `WEAK_PASSWORD` naming what is missing.
pub fn validate_password(password: &str, limits: &Limits) -> Result<()> {
    let len = password.chars().count();
    if len < limits.password_min {
        return fail(
            ErrorCode::WeakPassword,
            format!(
                "password must be at least {} characters",
                limits.password_min
            ),
        );
    }
    if len > PASSWORD_MAX {
        return fail(
            ErrorCode::WeakPassword,
            format!("password must be at most {PASSWORD_MAX} characters"),
        );
    }
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    let missing = [
        (has(|c| c.is_uppercase()), "an upper-case letter"),
        (has(|c| c.is_lowercase()), "a lower-case letter"),
        (has(|c| c.is_ascii_digit()), "a digit"),
        (
            has(|c| !c.is_alphanumeric() && !c.is_whitespace()),
            "a symbol",
        ),
    ];
    if let Some((_, what)) = missing.iter().find(|(ok, _)| !ok) {
        return fail(
            ErrorCode::WeakPassword,
            format!("password must contain {what}"),
        );
    }
    Ok(())
}

/// Trims an optional URL-ish field (profile image); empty becomes `None`. At most 2048
/// characters, no white space inside: otherwise `VALIDATION_FAILED`.
pub fn normalize_image_url(url: Option<&str>) -> Result<Option<String>> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if url.chars().count() > 2048 || url.chars().any(char::is_whitespace) {
        return fail(ErrorCode::ValidationFailed, "invalid profile image URL");
    }
    Ok(Some(url.to_owned()))
}

const CODE_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A user code of `len` characters (clamped to 4–12) of `[A-Z0-9]`, derived from `seed`
/// with SplitMix64. Distinct seeds give (with overwhelming probability) distinct codes; the
/// caller retries with a new seed when the store reports the code taken.
pub fn user_code(seed: u64, len: usize) -> String {
    let mut state = seed;
    (0..len.clamp(4, 12))
        .map(|_| {
            let x = splitmix64(&mut state);
            CODE_ALPHABET[(x % CODE_ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// One SplitMix64 step: advances `state` and returns a well-mixed 64-bit value.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T>) -> std::result::Result<T, ErrorCode> {
        r.map_err(|e| e.code())
    }

    #[test]
    fn usernames() {
        let limits = Limits::default();
        let check = |input: &str, expect: Option<ErrorCode>| {
            assert_eq!(
                code(validate_username(input, &limits)).err(),
                expect,
                "{input:?}"
            );
        };
        check("bob", None);
        check("Alice_01.x", None);
        check("a.b", None);
        check("abcdefghijklmnopqrst", None);
        check("", Some(ErrorCode::InvalidUsername));
        check("ab", Some(ErrorCode::InvalidUsername));
        check("abcdefghijklmnopqrstu", Some(ErrorCode::InvalidUsername));
        check("bob smith", Some(ErrorCode::InvalidUsername));
        check("bob-smith", Some(ErrorCode::InvalidUsername));
        check("bob@x", Some(ErrorCode::InvalidUsername));
        check("bøb", Some(ErrorCode::InvalidUsername));
        check(" bob", Some(ErrorCode::InvalidUsername));
    }

    #[test]
    fn nicknames() {
        let limits = Limits::default();
        let check = |input: &str, expect: std::result::Result<&str, ErrorCode>| {
            let got = code(normalize_nickname(input, &limits));
            assert_eq!(got.as_deref().map_err(|e| *e), expect, "{input:?}");
        };
        check("Bo", Ok("Bo"));
        check("  Bob  ", Ok("Bob"));
        check("김철수", Ok("김철수"));
        check(&"n".repeat(30), Ok(&"n".repeat(30)));
        check("B", Err(ErrorCode::InvalidNickname));
        check("  B  ", Err(ErrorCode::InvalidNickname));
        check("   ", Err(ErrorCode::InvalidNickname));
        check(&"n".repeat(31), Err(ErrorCode::InvalidNickname));
        check("Bo\u{7}b", Err(ErrorCode::InvalidNickname));
    }

    #[test]
    fn emails() {
        let check = |input: &str, expect: std::result::Result<&str, ErrorCode>| {
            let got = code(normalize_email(input));
            assert_eq!(got.as_deref().map_err(|e| *e), expect, "{input:?}");
        };
        check("bob@example.com", Ok("bob@example.com"));
        check(
            "  Bob.Smith+tag@mail.example.co.kr ",
            Ok("Bob.Smith+tag@mail.example.co.kr"),
        );
        check("a@b-c.io", Ok("a@b-c.io"));
        check("", Err(ErrorCode::InvalidEmail));
        check("bob", Err(ErrorCode::InvalidEmail));
        check("bob@", Err(ErrorCode::InvalidEmail));
        check("@example.com", Err(ErrorCode::InvalidEmail));
        check("bob@localhost", Err(ErrorCode::InvalidEmail));
        check("bob@@example.com", Err(ErrorCode::InvalidEmail));
        check("bob@exa mple.com", Err(ErrorCode::InvalidEmail));
        check("bo b@example.com", Err(ErrorCode::InvalidEmail));
        check("bob@example..com", Err(ErrorCode::InvalidEmail));
        check("bob@-example.com", Err(ErrorCode::InvalidEmail));
        check("bob@example.com.", Err(ErrorCode::InvalidEmail));
        check(".bob@example.com", Err(ErrorCode::InvalidEmail));
        check("bo..b@example.com", Err(ErrorCode::InvalidEmail));
        check(
            &format!("{}@example.com", "a".repeat(65)),
            Err(ErrorCode::InvalidEmail),
        );
        check(
            &format!("a@{}.com", "b".repeat(250)),
            Err(ErrorCode::InvalidEmail),
        );
    }

    #[test]
    fn bios() {
        let limits = Limits::default();
        let check = |input: Option<&str>, expect: std::result::Result<Option<&str>, ErrorCode>| {
            let got = code(normalize_bio(input, &limits));
            assert_eq!(
                got.as_ref().map(|b| b.as_deref()).map_err(|e| *e),
                expect,
                "{input:?}"
            );
        };
        check(None, Ok(None));
        check(Some(""), Ok(None));
        check(Some("   "), Ok(None));
        check(Some(" hi "), Ok(Some("hi")));
        check(Some(&"가".repeat(200)), Ok(Some(&"가".repeat(200))));
        check(Some(&"b".repeat(201)), Err(ErrorCode::BioTooLong));
    }

    #[test]
    fn passwords() {
        let limits = Limits::default();
        let check = |input: &str, expect: Option<ErrorCode>| {
            assert_eq!(
                code(validate_password(input, &limits)).err(),
                expect,
                "{input:?}"
            );
        };
        check("Secret#1", None);
        check("Very$ecure2024", None);
        check("Pässwört#9", None);
        check("Sec#1", Some(ErrorCode::WeakPassword));
        check("Secret#", Some(ErrorCode::WeakPassword));
        check("secret#123", Some(ErrorCode::WeakPassword));
        check("SECRET#123", Some(ErrorCode::WeakPassword));
        check("Secret1234", Some(ErrorCode::WeakPassword));
        check("Secret 1234", Some(ErrorCode::WeakPassword));
        check(
            &format!("Aa1#{}", "x".repeat(125)),
            Some(ErrorCode::WeakPassword),
        );
        check(&format!("Aa1#{}", "x".repeat(124)), None);
    }

    #[test]
    fn password_minimum_follows_limits() {
        let limits = Limits {
            password_min: 12,
            ..Limits::default()
        };
        assert_eq!(
            code(validate_password("Secret#1", &limits)).err(),
            Some(ErrorCode::WeakPassword)
        );
        assert!(validate_password("Secret#12345", &limits).is_ok());
    }

    #[test]
    fn image_urls() {
        assert_eq!(normalize_image_url(None).unwrap(), None);
        assert_eq!(normalize_image_url(Some("  ")).unwrap(), None);
        assert_eq!(
            normalize_image_url(Some(" https://x.io/a.png "))
                .unwrap()
                .as_deref(),
            Some("https://x.io/a.png")
        );
        assert_eq!(
            code(normalize_image_url(Some("https://x.io/a b.png"))).err(),
            Some(ErrorCode::ValidationFailed)
        );
    }

    #[test]
    fn user_codes() {
        let c = user_code(42, 8);
        assert_eq!(c.len(), 8);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "{c}"
        );
        assert_eq!(user_code(42, 8), c, "deterministic");
        assert_eq!(user_code(1, 2).len(), 4);
        assert_eq!(user_code(1, 40).len(), 12);
        let distinct: std::collections::HashSet<String> =
            (0..10_000u64).map(|s| user_code(s, 8)).collect();
        assert_eq!(distinct.len(), 10_000);
    }
}
