//! Bearer-token check for the admin API: constant-time, and the token is
//! never logged.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminState;

/// SHA-256 of a token: comparing digests keeps the comparison
/// constant-time whatever the lengths.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `header` (an `Authorization` value) carries the expected token.
pub fn authorized(header: Option<&str>, expected: &[u8; 32]) -> bool {
    let Some(token) = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    bool::from(digest(token).ct_eq(expected))
}

/// actix middleware: 401 unless the request carries the admin token.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let expected = req.app_data::<web::Data<AdminState>>().map(|s| s.token);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match expected {
        Some(expected) if authorized(header, &expected) => {
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        _ => {
            tracing::warn!(
                path = %req.path(),
                peer = %req.peer_addr().map(|p| p.to_string()).unwrap_or_default(),
                outcome = "rejected",
                reason = "unauthorized",
                status = 401u16,
                "admin request without a valid token"
            );
            let res = HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(serde_json::json!({"error": {"reason": "unauthorized", "message": "Missing or wrong admin token: send Authorization: Bearer <admin_token>"}}));
            Ok(req.into_response(res))
        }
    }
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
}
