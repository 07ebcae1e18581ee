//! The customers whose entitlement rows the open write transaction wrote,
//! announced once each when it ends (see [`super::hooks`]).
//!
//! Every write of entitlement rows calls [`note`]; the store's
//! [`write_transaction`](super::write_transaction) opens the list before
//! its closure runs and hands it to the access hook after the closure
//! succeeded, before COMMIT. So an access change is announced in the
//! transaction that made it, once per customer however many groups,
//! savepoints or records of that customer it wrote, and after all of them
//! (never a half-applied state). The list lives on the thread that runs the
//! transaction: a transaction's closure runs on one thread, and a write of
//! entitlement rows outside a store transaction is an error, not a
//! silent change nobody hears of.

use std::cell::RefCell;
use std::collections::BTreeMap;

use diesel::QueryResult;

pub use super::hooks::AccessChange;
use super::hooks::Hooks;
use super::Tx;

/// Why entitlement rows were written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause<'a> {
    /// A Stripe event (its id and API version), as the runner's finish
    /// writes it.
    Event {
        id: &'a str,
        api_version: Option<&'a str>,
    },
    /// A fetch of the object (its place in the order of fetches): a sweep,
    /// a resync or a reconcile.
    Fetch(i64),
}

#[derive(Default)]
struct Open {
    changes: BTreeMap<String, AccessChange>,
    /// The latest time a writer noted (its clock: tests run on their own).
    now: i64,
}

thread_local! {
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
}

/// Notes that `customer`'s entitlement rows were written (or may have been:
/// an event naming the customer) in the transaction open on this thread,
/// at `now` by the writer's clock. An error when no store transaction is
/// open.
pub(crate) fn note(customer: &str, livemode: bool, cause: Cause<'_>, now: i64) -> QueryResult<()> {
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let Some(open) = open.as_mut() else {
            return Err(diesel::result::Error::QueryBuilderError(
                format!("the entitlement rows of customer {customer} were written outside a store write transaction: their access change would never be announced").into(),
            ));
        };
        open.now = open.now.max(now);
        let change = open
            .changes
            .entry(customer.to_owned())
            .or_insert_with(|| AccessChange {
                customer: customer.to_owned(),
                livemode,
                api_version: None,
                causes: Vec::new(),
            });
        let cause = match cause {
            Cause::Event { id, api_version } => {
                if change.api_version.is_none() {
                    change.api_version = api_version.map(str::to_owned);
                }
                id.to_owned()
            }
            Cause::Fetch(seq) => format!("fetch:{seq}"),
        };
        if !change.causes.contains(&cause) {
            change.causes.push(cause);
        }
        Ok(())
    })
}

/// Runs `f` with a list of access changes open on this thread, then the
/// access hook with what was noted (when `f` succeeded and anything was).
/// A transaction inside another (a savepoint) adds to the outer list.
pub(super) fn within<T, E, F>(tx: &mut Tx<'_>, hooks: &Hooks, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let outer = OPEN.with(|open| open.borrow().is_some());
    if outer {
        return f(tx);
    }
    // Closes the list whatever happens (an error, a panic caught above).
    struct Close;
    impl Drop for Close {
        fn drop(&mut self) {
            OPEN.with(|open| open.borrow_mut().take());
        }
    }
    OPEN.with(|open| *open.borrow_mut() = Some(Open::default()));
    let _close = Close;
    let value = f(tx)?;
    let Open { changes, now } = OPEN
        .with(|open| open.borrow_mut().take())
        .unwrap_or_default();
    if !changes.is_empty() {
        if let Some(hook) = hooks.access() {
            let changes: Vec<AccessChange> = changes.into_values().collect();
            hook(tx, &changes, now)?;
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::{note, Cause};

    #[test]
    fn a_write_outside_a_store_transaction_is_refused() {
        let refused = note("cus_outside", false, Cause::Fetch(1), 0)
            .expect_err("no transaction is open on this thread");
        assert!(
            refused
                .to_string()
                .contains("outside a store write transaction"),
            "{refused}"
        );
    }
}
