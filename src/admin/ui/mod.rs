//! The browser inspector on the admin listener: an HTML shell, one script
//! and one stylesheet embedded in the binary (no CDN, no build step), the
//! sign-in that turns the admin token into a session cookie, and the few
//! JSON routes the admin API lacks (a newest-first event list, the live
//! stream, the health strip, an object's records, an event's deliveries).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /`, `GET /ui/app.js`, `GET /ui/app.css` | none | the page (it holds no data) |
//! | `POST /ui/login` (`{"token": …}`) | none, rate-limited per peer | a session: `Set-Cookie` + its CSRF token |
//! | `GET /ui/session` | session or bearer | the session's CSRF token and expiry |
//! | `POST /ui/logout` | session + CSRF | deletes the session, clears the cookie |
//! | `POST /ui/logout-everywhere` | session + CSRF, or bearer | deletes every session (all browsers, all instances) |
//! | `GET /ui/events?status=&type=&object=&since=&until=&before=&limit=` | session or bearer | events, newest first |
//! | `GET /ui/stream` | session or bearer | server-sent events: each new outbox row |
//! | `GET /ui/health` | session or bearer | the health strip's figures |
//! | `GET /ui/events/{id}/deliveries` | session or bearer | the event's deliveries to destinations |
//! | `GET /ui/objects/{id}` | session or bearer | a customer's records, access and events |
//!
//! Sessions live in the database (`admin_sessions`, only a SHA-256 of the
//! id), so they survive a restart and work across instances; each is bound
//! to the admin token that started it and ends when the token is rotated
//! (see `auth.rs`); see docs/inspector.md.

pub(crate) mod data;
pub(crate) mod sessions;
mod stream;

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal, SESSION_COOKIE};
use super::{blocking, error, AdminError, AdminState};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Sign-in attempts per peer address per minute (a burst of as many).
const LOGINS_PER_MINUTE: u32 = 10;

/// The inspector's own state, beside [`AdminState`].
pub(crate) struct UiState {
    logins: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for UiState {
    fn default() -> Self {
        let quota =
            Quota::per_minute(NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        UiState {
            logins: RateLimiter::keyed(quota),
        }
    }
}

/// The routes anyone may fetch: the page and its assets, and sign-in.
pub(crate) fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/ui/app.js", web::get().to(asset_js))
        .route("/ui/app.css", web::get().to(asset_css))
        .route("/ui/login", web::post().to(login));
}

/// The routes behind the session or bearer check.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui/session", web::get().to(session))
        .route("/ui/logout", web::post().to(logout))
        .route("/ui/logout-everywhere", web::post().to(logout_everywhere))
        .route("/ui/events", web::get().to(data::events))
        .route(
            "/ui/events/{id}/deliveries",
            web::get().to(data::deliveries),
        )
        .route("/ui/stream", web::get().to(stream::stream))
        .route("/ui/health", web::get().to(data::health))
        .route("/ui/objects/{id}", web::get().to(data::object));
}

/// The page's headers: no framing, scripts and styles from this origin only.
fn page(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    page("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset_js() -> HttpResponse {
    page("text/javascript; charset=utf-8", APP_JS)
}

async fn asset_css() -> HttpResponse {
    page("text/css; charset=utf-8", APP_CSS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// Whether the browser reached us over HTTPS: TLS on this listener, or a
/// reverse proxy on this host (a loopback peer) that says so. Another
/// peer's `X-Forwarded-Proto` is not believed.
fn over_https(req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return true;
    }
    let from_local_proxy = req.peer_addr().is_some_and(|p| p.ip().is_loopback());
    from_local_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for a session id (an empty id with age 0 clears it).
fn session_cookie(id: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    )
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn login(
    req: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    body: web::Json<Login>,
) -> Result<HttpResponse, AdminError> {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    // The limiter keeps one entry per address seen; forget the idle ones
    // before they add up.
    if ui.logins.len() > 10_000 {
        ui.logins.retain_recent();
    }
    if let Err(not_until) = ui.logins.check_key(&peer) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        tracing::warn!(peer = %peer, outcome = "rejected", reason = "rate_limited", status = 429u16, "inspector sign-in attempts too frequent");
        let mut res = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many sign-in attempts from this address; wait and try again",
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(res);
    }
    let token = state.token.get();
    if !auth::authorized(Some(&format!("Bearer {}", body.token)), token.digest()) {
        tracing::warn!(peer = %peer, outcome = "rejected", reason = "wrong_token", status = 401u16, "inspector sign-in with a wrong admin token");
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "wrong_token",
            "That is not the admin token",
        ));
    }
    let id = random_hex();
    let now = crate::store::now_ms();
    let session = sessions::Session {
        id_hash: sessions::hash_id(&id),
        csrf_token: random_hex(),
        created_at: now,
        expires_at: now + state.session_ttl.as_millis() as i64,
        token_fingerprint: token.fingerprint().to_owned(),
    };
    let (stored, csrf, expires_at) = (session.clone(), session.csrf_token, session.expires_at);
    blocking(&state, move |c| sessions::create(c, &stored, now)).await?;
    tracing::info!(peer = %peer, outcome = "signed_in", "inspector session started");
    Ok(HttpResponse::Ok()
        .insert_header((
            header::SET_COOKIE,
            session_cookie(&id, state.session_ttl.as_secs(), over_https(&req)),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"csrf_token": csrf, "expires_at": expires_at})))
}

fn principal(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

async fn session(req: HttpRequest) -> HttpResponse {
    let body = match principal(&req) {
        Some(Principal::Session(s)) => {
            json!({"via": "session", "csrf_token": s.csrf_token, "expires_at": s.expires_at})
        }
        _ => json!({"via": "bearer", "csrf_token": null, "expires_at": null}),
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let ended = match principal(&req) {
        Some(Principal::Session(s)) => {
            let hash = s.id_hash;
            blocking(&state, move |c| sessions::delete(c, &hash)).await?
        }
        _ => false,
    };
    if ended {
        tracing::info!(outcome = "signed_out", "inspector session ended");
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, session_cookie("", 0, over_https(&req))))
        .json(json!({"signed_out": ended})))
}

/// "Sign out everywhere": ends every session, this one included (a token
/// that may have leaked is rotated separately; this ends what it opened).
async fn logout_everywhere(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let ended = blocking(&state, sessions::delete_all).await?;
    let via = match principal(&req) {
        Some(Principal::Session(_)) => "session",
        _ => "bearer",
    };
    tracing::info!(
        outcome = "signed_out_everywhere",
        sessions = ended,
        via,
        "every inspector session ended"
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, session_cookie("", 0, over_https(&req))))
        .json(json!({"signed_out": ended})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_expiring() {
        let c = session_cookie("abc", 43200, false);
        assert_eq!(
            c,
            "hookd_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        );
        assert!(session_cookie("abc", 1, true).ends_with("; Secure"));
    }

    #[test]
    fn the_assets_stay_small() {
        let total = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len();
        assert!(
            total < 60 * 1024,
            "the inspector's assets weigh {total} bytes"
        );
    }
}
