//! JWT access and refresh tokens (HS256 only) and the [`AuthUser`] extractor.
//!
//! Claims: `sub` (user id as a string), `iat`, `nbf`, `exp` (seconds), `jti`, `typ`
//! (`"access"` or `"refresh"`) and `fam` (refresh-token family). Expiry and not-before are
//! checked against the engine's [`Clock`] (not the system clock) so tests control time.
//! A refresh token is never accepted where an access token is expected, and vice versa.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shoot_core::identity::RefreshToken;
use shoot_core::ports::Clock;
use shoot_core::{Error, ErrorCode, Timestamp, UserId};

use crate::error::ApiError;
use crate::state::AppState;

/// Token type claim of access tokens.
pub const ACCESS: &str = "access";
/// Token type claim of refresh tokens.
pub const REFRESH: &str = "refresh";

/// JWT claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Not before (seconds).
    pub nbf: i64,
    /// Expiry (seconds).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// `access` or `refresh`.
    pub typ: String,
    /// Refresh family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

/// A freshly issued access + refresh pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// Owner.
    pub user_id: UserId,
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// A verified refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRefresh {
    /// Owner.
    pub user_id: UserId,
    /// Token id (the stored refresh-token record).
    pub token_id: String,
    /// Family.
    pub family: Option<String>,
}

/// Issues and verifies tokens.
pub struct JwtAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: std::time::Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

fn invalid() -> Error {
    Error::new(ErrorCode::InvalidToken, "invalid token")
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    // On the (practically impossible) failure the id is still unique enough with the time.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl JwtAuth {
    /// A token service with HS256 key `secret`, access-token lifetime `access_ttl` and `clock`.
    pub fn new(secret: &[u8], access_ttl: std::time::Duration, clock: Arc<dyn Clock>) -> JwtAuth {
        let mut validation = Validation::new(Algorithm::HS256);
        // Time claims are checked by hand against `clock`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        JwtAuth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            clock,
        }
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> std::time::Duration {
        self.access_ttl
    }

    fn sign(&self, claims: &Claims) -> Result<String, Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(|e| {
            Error::new(
                ErrorCode::InternalError,
                format!("token signing failed: {e}"),
            )
        })
    }

    /// An access token for `user`.
    pub fn issue_access(&self, user: UserId) -> Result<String, Error> {
        let now = self.clock.now().as_millis() / 1000;
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.as_secs() as i64,
            jti: random_id(),
            typ: ACCESS.to_owned(),
            fam: None,
        };
        self.sign(&claims)
    }

    /// The JWT form of a stored refresh-token record.
    pub fn issue_refresh(&self, token: &RefreshToken) -> Result<String, Error> {
        let now = self.clock.now().as_millis() / 1000;
        let claims = Claims {
            sub: token.user_id.to_string(),
            iat: now,
            nbf: now,
            exp: token.expires_at.as_millis() / 1000,
            jti: token.token_id.clone(),
            typ: REFRESH.to_owned(),
            fam: Some(token.family_id.clone()),
        };
        self.sign(&claims)
    }

    /// An access token plus the JWT of `refresh`.
    pub fn issue_pair(&self, user: UserId, refresh: &RefreshToken) -> Result<TokenPair, Error> {
        Ok(TokenPair {
            user_id: user,
            access_token: self.issue_access(user)?,
            refresh_token: self.issue_refresh(refresh)?,
            expires_in: self.access_ttl.as_secs(),
        })
    }

    fn decode(&self, token: &str, typ: &str) -> Result<Claims, Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?;
        let claims = data.claims;
        if data.header.alg != Algorithm::HS256 || claims.typ != typ {
            return Err(invalid());
        }
        let now = self.clock.now().as_millis() / 1000;
        if now < claims.nbf {
            return Err(invalid());
        }
        if now >= claims.exp {
            return Err(Error::new(ErrorCode::TokenExpired, "token expired"));
        }
        Ok(claims)
    }

    /// The user of a valid access token: `INVALID_TOKEN` (malformed, wrong signature or
    /// algorithm, not yet valid, not an access token) or `TOKEN_EXPIRED`.
    pub fn verify_access(&self, token: &str) -> Result<UserId, Error> {
        let claims = self.decode(token, ACCESS)?;
        claims.sub.parse::<UserId>().map_err(|_| invalid())
    }

    /// A valid refresh token's owner and id (rotation itself is the engine's job).
    pub fn verify_refresh(&self, token: &str) -> Result<VerifiedRefresh, Error> {
        let claims = self.decode(token, REFRESH)?;
        let user_id = claims.sub.parse::<UserId>().map_err(|_| invalid())?;
        Ok(VerifiedRefresh {
            user_id,
            token_id: claims.jti,
            family: claims.fam,
        })
    }

    /// The current time of the clock the tokens are checked against.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The authenticated caller (from `Authorization: Bearer <access token>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser(pub UserId);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AuthUser, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        Ok(AuthUser(state.authenticate(token).await?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::*;

    struct TestClock(AtomicI64);

    impl Clock for TestClock {
        fn now(&self) -> Timestamp {
            Timestamp(self.0.load(Ordering::SeqCst))
        }
        fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret";
    const T0: i64 = 1_700_000_000_000;

    fn setup() -> (Arc<TestClock>, JwtAuth) {
        let clock = Arc::new(TestClock(AtomicI64::new(T0)));
        let auth = JwtAuth::new(SECRET, Duration::from_secs(3600), clock.clone());
        (clock, auth)
    }

    fn refresh_record() -> RefreshToken {
        RefreshToken {
            token_id: "tok-1".into(),
            family_id: "fam-1".into(),
            user_id: UserId(7),
            expires_at: Timestamp(T0 + 30 * 86_400_000),
            created_at: Timestamp(T0),
            used: false,
            revoked: false,
        }
    }

    fn code(r: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
        r.expect_err("expected an error").code()
    }

    #[test]
    fn access_round_trip_and_expiry() {
        let (clock, auth) = setup();
        let token = auth.issue_access(UserId(42)).unwrap();
        assert_eq!(auth.verify_access(&token).unwrap(), UserId(42));
        clock.0.store(T0 + 3_599_000, Ordering::SeqCst);
        assert_eq!(auth.verify_access(&token).unwrap(), UserId(42));
        clock.0.store(T0 + 3_600_000, Ordering::SeqCst);
        assert_eq!(code(auth.verify_access(&token)), ErrorCode::TokenExpired);
    }

    #[test]
    fn not_before_in_the_future_is_refused() {
        let (clock, auth) = setup();
        clock.0.store(T0 + 60_000, Ordering::SeqCst);
        let token = auth.issue_access(UserId(1)).unwrap();
        clock.0.store(T0, Ordering::SeqCst);
        assert_eq!(code(auth.verify_access(&token)), ErrorCode::InvalidToken);
    }

    #[test]
    fn wrong_signature_is_refused() {
        let (clock, auth) = setup();
        let other = JwtAuth::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(3600),
            clock,
        );
        let token = other.issue_access(UserId(1)).unwrap();
        assert_eq!(code(auth.verify_access(&token)), ErrorCode::InvalidToken);
        // Change the signature's first character: all six of its bits count (the last one's
        // low bits are padding, which a decoder may ignore).
        let token = auth.issue_access(UserId(1)).unwrap();
        let at = token.rfind('.').unwrap() + 1;
        let swap = if token[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        let tampered = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
        assert_ne!(tampered, token);
        assert_eq!(code(auth.verify_access(&tampered)), ErrorCode::InvalidToken);
        assert_eq!(code(auth.verify_access("garbage")), ErrorCode::InvalidToken);
    }

    fn b64(s: &str) -> String {
        use base64_url::encode;
        encode(s)
    }

    mod base64_url {
        pub(super) fn encode(s: &str) -> String {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let (_, auth) = setup();
        let payload = format!(
            r#"{{"sub":"1","iat":{0},"nbf":{0},"exp":{1},"jti":"x","typ":"access"}}"#,
            T0 / 1000,
            T0 / 1000 + 3600
        );
        for alg in ["none", "None", "HS512", "RS256"] {
            let token = format!(
                "{}.{}.",
                b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
                b64(&payload)
            );
            assert_eq!(
                code(auth.verify_access(&token)),
                ErrorCode::InvalidToken,
                "{alg}"
            );
        }
        // HS512 correctly signed with the same key is still refused.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: "1".into(),
                iat: T0 / 1000,
                nbf: T0 / 1000,
                exp: T0 / 1000 + 3600,
                jti: "x".into(),
                typ: ACCESS.into(),
                fam: None,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(code(auth.verify_access(&hs512)), ErrorCode::InvalidToken);
    }

    #[test]
    fn refresh_and_access_are_not_interchangeable() {
        let (_, auth) = setup();
        let pair = auth.issue_pair(UserId(7), &refresh_record()).unwrap();
        assert_eq!(
            code(auth.verify_access(&pair.refresh_token)),
            ErrorCode::InvalidToken
        );
        assert_eq!(
            code(auth.verify_refresh(&pair.access_token)),
            ErrorCode::InvalidToken
        );
        let v = auth.verify_refresh(&pair.refresh_token).unwrap();
        assert_eq!(
            v,
            VerifiedRefresh {
                user_id: UserId(7),
                token_id: "tok-1".into(),
                family: Some("fam-1".into())
            }
        );
        assert_eq!(pair.expires_in, 3600);
    }

    #[test]
    fn refresh_expiry_follows_the_record() {
        let (clock, auth) = setup();
        let token = auth.issue_refresh(&refresh_record()).unwrap();
        clock.0.store(T0 + 30 * 86_400_000, Ordering::SeqCst);
        assert_eq!(code(auth.verify_refresh(&token)), ErrorCode::TokenExpired);
    }
}
