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
    object_leases (object_key) {
        object_key -> Text,
        owner -> Text,
        expires_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(webhook_events, event_attempts, object_leases);
