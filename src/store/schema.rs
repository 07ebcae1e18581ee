//! The diesel schema, shared by both backends (see `migrations/`).

diesel::table! {
    webhook_events (id) {
        id -> BigInt,
        event_id -> Text,
        endpoint -> Text,
        event_type -> Text,
        api_version -> Nullable<Text>,
        livemode -> Bool,
        account -> Nullable<Text>,
        object_type -> Nullable<Text>,
        object_id -> Nullable<Text>,
        object_key -> Text,
        stripe_created -> BigInt,
        received_at -> BigInt,
        queued_at -> BigInt,
        payload -> Text,
        headers -> Text,
        secret_index -> Integer,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        processed_at -> Nullable<BigInt>,
        priority -> Integer,
    }
}

diesel::table! {
    event_attempts (id) {
        id -> BigInt,
        event_id -> Text,
        attempt -> Integer,
        worker -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        delivery_id -> Text,
        destination -> Text,
        event_id -> Text,
        event_type -> Text,
        object_key -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        discarded_at -> Nullable<BigInt>,
        sequence -> Nullable<BigInt>,
    }
}

diesel::table! {
    object_leases (object_key) {
        object_key -> Text,
        owner -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    customers (id) {
        id -> Text,
        livemode -> Bool,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        deleted -> Bool,
        metadata -> Text,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        customer_id -> Nullable<Text>,
        status -> Text,
        livemode -> Bool,
        cancel_at_period_end -> Bool,
        cancel_at -> Nullable<BigInt>,
        canceled_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        trial_start -> Nullable<BigInt>,
        trial_end -> Nullable<BigInt>,
        current_period_start -> Nullable<BigInt>,
        current_period_end -> Nullable<BigInt>,
        latest_invoice_id -> Nullable<Text>,
        past_due_since -> Nullable<BigInt>,
        metadata -> Text,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    subscription_items (id) {
        id -> Text,
        subscription_id -> Text,
        price_id -> Nullable<Text>,
        product_id -> Nullable<Text>,
        quantity -> Nullable<BigInt>,
        current_period_start -> Nullable<BigInt>,
        current_period_end -> Nullable<BigInt>,
    }
}

diesel::table! {
    invoices (id) {
        id -> Text,
        customer_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        status -> Nullable<Text>,
        livemode -> Bool,
        currency -> Nullable<Text>,
        amount_due -> Nullable<BigInt>,
        amount_paid -> Nullable<BigInt>,
        amount_remaining -> Nullable<BigInt>,
        billing_reason -> Nullable<Text>,
        hosted_invoice_url -> Nullable<Text>,
        period_start -> Nullable<BigInt>,
        period_end -> Nullable<BigInt>,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    payment_intents (id) {
        id -> Text,
        customer_id -> Nullable<Text>,
        status -> Nullable<Text>,
        livemode -> Bool,
        amount -> Nullable<BigInt>,
        amount_received -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        latest_charge_id -> Nullable<Text>,
        last_payment_error -> Nullable<Text>,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    checkout_sessions (id) {
        id -> Text,
        client_reference_id -> Nullable<Text>,
        customer_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        payment_intent_id -> Nullable<Text>,
        mode -> Nullable<Text>,
        status -> Nullable<Text>,
        payment_status -> Nullable<Text>,
        livemode -> Bool,
        amount_total -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    disputes (id) {
        id -> Text,
        charge_id -> Nullable<Text>,
        payment_intent_id -> Nullable<Text>,
        status -> Nullable<Text>,
        reason -> Nullable<Text>,
        livemode -> Bool,
        amount -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    charges (id) {
        id -> Text,
        customer_id -> Nullable<Text>,
        payment_intent_id -> Nullable<Text>,
        status -> Nullable<Text>,
        livemode -> Bool,
        amount -> Nullable<BigInt>,
        amount_captured -> Nullable<BigInt>,
        amount_refunded -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        captured -> Bool,
        paid -> Bool,
        refunded -> Bool,
        disputed -> Bool,
        dispute_id -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        metadata -> Text,
        raw -> Text,
        gone -> Bool,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    entitlements (subscription_id, item_id) {
        subscription_id -> Text,
        item_id -> Text,
        customer_id -> Nullable<Text>,
        price_id -> Nullable<Text>,
        product_id -> Nullable<Text>,
        status -> Text,
        grants -> Bool,
        access_until -> Nullable<BigInt>,
        updated_at -> BigInt,
        account -> Nullable<Text>,
        livemode -> Nullable<Bool>,
        ends_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    customer_features (customer_id, feature_id) {
        customer_id -> Text,
        feature_id -> Text,
        lookup_key -> Text,
        entitlement_id -> Text,
        livemode -> Bool,
        account -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    customer_feature_fetches (customer_id) {
        customer_id -> Text,
        account -> Nullable<Text>,
        features -> BigInt,
        fetched_at -> BigInt,
        updated_at -> BigInt,
        fetch_seq -> BigInt,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> BigInt,
        delivery_id -> Text,
        destination -> Text,
        attempt -> Integer,
        started_at -> BigInt,
        duration_ms -> BigInt,
        outcome -> Text,
        http_status -> Nullable<Integer>,
        error -> Nullable<Text>,
        request_headers -> Text,
        response_body -> Nullable<Text>,
    }
}

diesel::table! {
    destination_pauses (destination) {
        destination -> Text,
        paused_at -> BigInt,
        reason -> Text,
    }
}

diesel::table! {
    access_snapshots (customer_id) {
        customer_id -> Text,
        access -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// A delivery's body (`deliveries.id`), written once with it.
    delivery_payloads (id) {
        id -> BigInt,
        payload -> Text,
    }
}

diesel::joinable!(delivery_payloads -> deliveries (id));

diesel::allow_tables_to_appear_in_same_query!(
    webhook_events,
    event_attempts,
    object_leases,
    deliveries,
    delivery_payloads,
    customers,
    subscriptions,
    subscription_items,
    invoices,
    payment_intents,
    checkout_sessions,
    disputes,
    charges,
    entitlements,
    customer_features,
    customer_feature_fetches,
    delivery_attempts,
    destination_pauses,
    access_snapshots,
);

diesel::table! {
    admin_sessions (id_hash) {
        id_hash -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        token_fingerprint -> Text,
    }
}

diesel::table! {
    /// One row: the mode access is answered for (`store::access_mode`).
    access_mode (id) {
        id -> Integer,
        livemode -> Bool,
        updated_at -> BigInt,
    }
}
