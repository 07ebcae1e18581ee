//! `resource_missing`: Stripe no longer shows an object (deleted, or not
//! visible to this key or account). Its row is kept, or created, with
//! `gone = true`; a gone subscription grants nothing.

use diesel::prelude::*;

use super::{entitlements, Family, Stamp};
use crate::store::schema::{
    charges, checkout_sessions, customers, disputes, invoices, payment_intents, subscriptions,
};
use crate::store::{with_tx, Tx};

/// Marks `id` of `family` gone as of the fetch `stamp` (at `now`, the
/// writer's clock), unless a newer fetch is stored; returns whether it
/// wrote. A gone subscription's entitlement rows are revoked
/// ([`entitlements::revoke`]).
pub(crate) fn mark(
    tx: &mut Tx<'_>,
    family: Family,
    id: &str,
    stamp: Stamp,
    now: i64,
) -> QueryResult<bool> {
    let (seq, fetched_at) = (stamp.seq, stamp.at);
    macro_rules! gone {
        ($c:ident, $table:ident, $insert:expr) => {{
            let updated = diesel::update(
                $table::table
                    .filter($table::id.eq(id))
                    .filter($table::fetch_seq.le(seq)),
            )
            .set((
                $table::gone.eq(true),
                $table::fetch_seq.eq(seq),
                $table::fetched_at.eq(fetched_at),
                $table::updated_at.eq(now),
            ))
            .execute($c)?;
            if updated == 0 {
                diesel::insert_into($table::table)
                    .values($insert)
                    .on_conflict_do_nothing()
                    .execute($c)?
            } else {
                updated
            }
        }};
    }
    let gone_raw = format!(r#"{{"id":"{id}","gone":true}}"#);
    let n = with_tx!(tx, c => match family {
        Family::Customer => gone!(c, customers, (
            customers::id.eq(id), customers::livemode.eq(false), customers::raw.eq(&gone_raw),
            customers::gone.eq(true), customers::fetched_at.eq(fetched_at), customers::updated_at.eq(now), customers::fetch_seq.eq(seq))),
        Family::Subscription => gone!(c, subscriptions, (
            subscriptions::id.eq(id), subscriptions::status.eq("unknown"), subscriptions::livemode.eq(false),
            subscriptions::raw.eq(&gone_raw), subscriptions::gone.eq(true),
            subscriptions::fetched_at.eq(fetched_at), subscriptions::updated_at.eq(now), subscriptions::fetch_seq.eq(seq))),
        Family::Invoice => gone!(c, invoices, (
            invoices::id.eq(id), invoices::livemode.eq(false), invoices::raw.eq(&gone_raw),
            invoices::gone.eq(true), invoices::fetched_at.eq(fetched_at), invoices::updated_at.eq(now), invoices::fetch_seq.eq(seq))),
        Family::PaymentIntent => gone!(c, payment_intents, (
            payment_intents::id.eq(id), payment_intents::livemode.eq(false), payment_intents::raw.eq(&gone_raw),
            payment_intents::gone.eq(true), payment_intents::fetched_at.eq(fetched_at), payment_intents::updated_at.eq(now), payment_intents::fetch_seq.eq(seq))),
        Family::CheckoutSession => gone!(c, checkout_sessions, (
            checkout_sessions::id.eq(id), checkout_sessions::livemode.eq(false), checkout_sessions::raw.eq(&gone_raw),
            checkout_sessions::gone.eq(true), checkout_sessions::fetched_at.eq(fetched_at), checkout_sessions::updated_at.eq(now), checkout_sessions::fetch_seq.eq(seq))),
        Family::Dispute => gone!(c, disputes, (
            disputes::id.eq(id), disputes::livemode.eq(false), disputes::raw.eq(&gone_raw),
            disputes::gone.eq(true), disputes::fetched_at.eq(fetched_at), disputes::updated_at.eq(now), disputes::fetch_seq.eq(seq))),
        Family::Charge => gone!(c, charges, (
            charges::id.eq(id), charges::livemode.eq(false), charges::raw.eq(&gone_raw),
            charges::gone.eq(true), charges::fetched_at.eq(fetched_at), charges::updated_at.eq(now), charges::fetch_seq.eq(seq))),
    });
    if family == Family::Subscription && n > 0 {
        entitlements::revoke(tx, id, stamp.seq, now)?;
    }
    Ok(n > 0)
}
