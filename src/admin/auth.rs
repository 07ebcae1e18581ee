//! Who may use the admin listener: a request carries either the admin token
//! (`Authorization: Bearer …`, the JSON API's way, unchanged) or the
//! inspector's session cookie (see `ui/`). A state-changing request that
//! rides on the cookie must also carry `X-CSRF-Token` equal to its
//! session's token: a cross-site page can make the browser send the cookie,
//! never that header. Comparisons are constant-time; no token is logged.
//!
//! A session is bound to the admin token that started it (its
//! [`AdminToken::fingerprint`] is stored with it): once the configured token
//! is another one (a restart or a reload with a new token, on any instance
//! sharing the database), every session started with the old one opens
//! nothing.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ui::sessions::{self, Session};
use super::{error, AdminState};
use crate::live::Live;

/// The inspector's session cookie.
pub(crate) const SESSION_COOKIE: &str = "hookd_session";
/// The header that carries the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How a request was authenticated (in the request's extensions for the
/// handlers after the middleware).
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    Bearer,
    Session(Session),
}

/// SHA-256 of a token: comparing digests keeps the comparison
/// constant-time whatever the lengths.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What the listener keeps of the admin token: its digest (for the bearer
/// comparison) and the fingerprint that sessions are bound to. Never the
/// token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
    fingerprint: String,
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            digest: digest(token),
            fingerprint: session_fingerprint(token),
        }
    }

    /// SHA-256 of the token, compared in constant time by [`authorized`].
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// What a session stores of the token that started it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The admin token as configured now: a reload that rotates it swaps it.
pub(crate) type LiveToken = Live<AdminToken>;

/// The hex SHA-256 of the token under a label of its own: the database
/// holds it, so it is neither the token nor the digest that the bearer
/// check compares (a copy of the database gives no way in).
pub(crate) fn session_fingerprint(token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"stripe-hookd admin session token v1\0");
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether two secrets are equal, in constant time.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(digest(given).ct_eq(&digest(expected)))
}

/// Whether `header` (an `Authorization` value) carries the expected token.
pub(crate) fn authorized(header: Option<&str>, expected: &[u8; 32]) -> bool {
    let Some(token) = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    bool::from(digest(token).ct_eq(expected))
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Methods that change nothing, so need no CSRF token.
fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request was refused.
enum Refusal {
    Unauthorized(&'static str),
    Csrf,
    Internal(String),
}

/// actix middleware: the request goes on with its [`Principal`], or is
/// answered 401 (no or wrong credentials), 403 (cookie without the CSRF
/// token on a state-changing request) or 500 (the session store failed).
pub(crate) async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match principal(&req).await {
        Ok(who) => {
            req.extensions_mut().insert(who);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(refusal) => {
            let peer = req.peer_addr().map(|p| p.to_string()).unwrap_or_default();
            let res = match refusal {
                Refusal::Unauthorized(why) => {
                    tracing::warn!(path = %req.path(), peer = %peer, outcome = "rejected", reason = "unauthorized", status = 401u16, "admin request without a valid token or session: {why}");
                    let mut res = error(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "Missing or wrong admin token: send Authorization: Bearer <admin_token>, or sign in to the inspector",
                    );
                    res.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer"),
                    );
                    res
                }
                Refusal::Csrf => {
                    tracing::warn!(path = %req.path(), peer = %peer, outcome = "rejected", reason = "csrf_token_required", status = 403u16, "state-changing admin request on a session cookie without its CSRF token");
                    error(
                        StatusCode::FORBIDDEN,
                        "csrf_token_required",
                        "A request signed in by the session cookie that changes state must send the session's X-CSRF-Token (GET /ui/session gives it)",
                    )
                }
                Refusal::Internal(cause) => {
                    tracing::error!(path = %req.path(), error = %cause, reason = "internal", status = 500u16, "admin session lookup failed");
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "The session store failed",
                    )
                }
            };
            Ok(req.into_response(res))
        }
    }
}

async fn principal(req: &ServiceRequest) -> Result<Principal, Refusal> {
    let state = req
        .app_data::<web::Data<AdminState>>()
        .cloned()
        .ok_or(Refusal::Internal("no admin state".to_owned()))?;
    let headers = req.headers();
    let token = state.token.get();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        // A request that names a token is judged by it alone.
        return if authorized(auth.to_str().ok(), token.digest()) {
            Ok(Principal::Bearer)
        } else {
            Err(Refusal::Unauthorized("wrong bearer token"))
        };
    }
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let Some(id) = cookie(cookies, SESSION_COOKIE) else {
        return Err(Refusal::Unauthorized("no credentials"));
    };
    let hash = sessions::hash_id(id);
    let store = state.store.clone();
    let now = crate::store::now_ms();
    let fingerprint = token.fingerprint().to_owned();
    let found = web::block(move || {
        let mut conn = store.conn()?;
        sessions::find(&mut conn, &hash, &fingerprint, now)
    })
    .await
    .map_err(|e| Refusal::Internal(e.to_string()))?
    .map_err(|e| Refusal::Internal(e.to_string()))?;
    let Some(session) = found else {
        return Err(Refusal::Unauthorized(
            "unknown, expired or signed-out session, or one started with another admin token",
        ));
    };
    if !safe(req.method()) {
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !given.is_some_and(|g| same_secret(g, &session.csrf_token)) {
            return Err(Refusal::Csrf);
        }
    }
    Ok(Principal::Session(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let expected = digest("s3cret-admin-token-0123");
        assert!(authorized(
            Some("Bearer s3cret-admin-token-0123"),
            &expected
        ));
        assert!(!authorized(
            Some("Bearer s3cret-admin-token-012"),
            &expected
        ));
        assert!(!authorized(Some("s3cret-admin-token-0123"), &expected));
        assert!(!authorized(
            Some("Basic s3cret-admin-token-0123"),
            &expected
        ));
        assert!(!authorized(None, &expected));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = Some("theme=dark; hookd_session=abc123; other=1");
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc123"));
        assert_eq!(cookie(Some("hookd_session_x=1"), SESSION_COOKIE), None);
        assert_eq!(cookie(Some("hookd_session="), SESSION_COOKIE), None);
        assert_eq!(cookie(None, SESSION_COOKIE), None);
    }

    #[test]
    fn the_session_fingerprint_is_neither_the_token_nor_its_digest() {
        let token = "s3cret-admin-token-0123";
        let t = AdminToken::new(token);
        assert_eq!(t.fingerprint().len(), 64);
        assert!(!t.fingerprint().contains(token));
        assert_ne!(t.fingerprint(), hex::encode(digest(token)));
        assert_eq!(t, AdminToken::new(token), "the same on every instance");
        assert_ne!(
            t.fingerprint(),
            AdminToken::new("another-admin-token-0123").fingerprint()
        );
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", "abc"));
    }
}
