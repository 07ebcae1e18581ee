//! What every fetch from Stripe needs: its stamp (its place in the order of
//! fetches) and what an API failure means for the event.

use super::records::Stamp;
use crate::queue::{HandlerContext, HandlerError};
use crate::stripe::StripeError;

/// Stamps a fetch about to start: its place in the order of fetches (from
/// the database, through the store's fetch-order thread) and the time by
/// `cx`'s clock.
pub async fn fetch_stamp(cx: &HandlerContext) -> Result<Stamp, HandlerError> {
    let seq = cx
        .store
        .next_fetch_seq()
        .await
        .map_err(|e| HandlerError::retry(format!("fetch order: {e}")))?;
    Ok(Stamp {
        seq,
        at: cx.clock.now_ms(),
    })
}

/// How an API failure affects the event: retried (with Stripe's hint), or
/// dead at once when retrying cannot help (a 4xx other than 401/403/404/
/// 409/429, a bad configuration). A 409 that outlasted the client's own
/// retries is transient ([`StripeError::Conflict`]) and retried with backoff.
pub(crate) fn handler_error(e: StripeError) -> HandlerError {
    let message = format!("Stripe API: {e}");
    match &e {
        StripeError::InvalidRequest { .. } | StripeError::Config(_) => {
            HandlerError::permanent(message)
        }
        _ => match e.retry_after() {
            Some(after) => HandlerError::retry_after(message, after),
            None => HandlerError::retry(message),
        },
    }
}
