//! The configuration's unit tests: layering, defaults, and the messages of
//! each section's checks.

use super::*;

#[test]
fn a_minimal_file_gives_the_documented_defaults() {
    let cfg = from_toml_str(
        r#"
        [[endpoints]]
        path = "/hooks"
        mode = "live"
        secrets = ["whsec_a", "whsec_b"]
        "#,
    )
    .expect("valid");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:9091");
    assert_eq!(cfg.endpoints[0].tolerance_secs, 300);
    assert_eq!(cfg.endpoints[0].secrets.len(), 2);
    assert_eq!(cfg.intake.max_body_bytes, 1024 * 1024);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let err = from_toml_str("lisen = \"127.0.0.1:1\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen"), "{err}");
}

#[test]
fn webhook_secret_defines_the_default_endpoint_with_the_key_mode() {
    let cfg = from_toml_str(
        r#"
        webhook_secret = "whsec_old, whsec_new"
        [stripe]
        api_key = "sk_live_abc"
        "#,
    )
    .expect("valid");
    let ep = &cfg.endpoints[0];
    assert_eq!(ep.path, DEFAULT_ENDPOINT_PATH);
    assert_eq!(ep.mode, Mode::Live);
    assert_eq!(ep.secrets.len(), 2);
    assert_eq!(ep.secrets[1].expose_secret(), "whsec_new");
}

#[test]
fn bad_values_say_what_to_fix() {
    let cases = [
        ("webhook_secret = \"sk_test_x\"\n[stripe]\napi_key = \"sk_test_y\"", "whsec_"),
        ("webhook_secret = \"\"\n[stripe]\napi_key = \"sk_test_y\"", "No webhook secret value was provided"),
        ("webhook_secret = \"whsec_x\"", "mode"),
        ("[stripe]\napi_key = \"pk_test_x\"", "publishable"),
        (
            "[[endpoints]]\npath = \"/a\"\nmode = \"test\"\nsecrets = [\"whsec_a\"]\ntolerance_secs = 0",
            "tolerance_secs",
        ),
        ("listen = \"not an address\"", "listen"),
        ("admin_token = \"short\"", "16 characters"),
        ("admin_session_hours = 0", "admin_session_hours"),
        (
            "admin_token = \"0123456789abcdef-admin\"\naccess_token = \"short\"",
            "access_token (STRIPE_HOOKD_ACCESS_TOKEN): must be at least 16",
        ),
        ("access_token = \"0123456789abcdef-access\"", "set admin_token too"),
        (
            "admin_token = \"0123456789abcdef-same\"\naccess_token = \"0123456789abcdef-same\"",
            "must differ from admin_token",
        ),
        ("[database]\npooler = \"transaction\"", "the database URL is SQLite"),
        (
            "[database]\nurl = \"sqlite:///tmp/x.db\"\npooler = \"transaction\"",
            "database.pooler",
        ),
        ("[database]\npooler = \"sometimes\"", "pooler"),
    ];
    for (toml, expected) in cases {
        let err = from_toml_str(toml).unwrap_err().to_string();
        assert!(err.contains(expected), "{toml:?} → {err}");
    }
}

#[test]
fn secrets_never_print() {
    let cfg = from_toml_str(
        "webhook_secret = \"whsec_topsecret\"\nadmin_token = \"0123456789abcdef-admin\"\naccess_token = \"0123456789abcdef-access\"\n[stripe]\napi_key = \"sk_test_hidden\"\n[database]\nurl = \"postgres://u:pw@h/db\"",
    )
    .expect("valid");
    let debug = format!("{cfg:?}");
    for secret in [
        "whsec_topsecret",
        "0123456789abcdef-admin",
        "0123456789abcdef-access",
        "sk_test_hidden",
        "pw@h",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
fn credentials_override_file_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("webhook_secret"), "whsec_from_credential\n").expect("write");
    std::fs::write(dir.path().join("stripe_api_key"), "sk_live_cred").expect("write");
    let fig = defaults().merge(Toml::string("webhook_secret = \"whsec_from_file\""));
    let cfg = from_figment(merge_credentials(fig, dir.path()).expect("read")).expect("valid");
    assert_eq!(
        cfg.endpoints[0].secrets[0].expose_secret(),
        "whsec_from_credential"
    );
    assert_eq!(cfg.endpoints[0].mode, Mode::Live);
}

#[test]
fn the_defaults_layer_alone_is_a_valid_configuration() {
    let raw: RawConfig = defaults().extract().expect("defaults.toml parses");
    let cfg = raw.validate().expect("the defaults are valid");
    assert!(cfg.endpoints.is_empty());
    assert_eq!(cfg.runner.concurrency, 8);
    assert_eq!(cfg.runner.prune_batch, 500);
    assert_eq!(cfg.stripe.api_version, "2026-11-18.endive");
    let version: String = defaults()
        .extract_inner("stripe.api_version")
        .expect("one key of the defaults, as `trigger` reads it without a config");
    assert_eq!(version, cfg.stripe.api_version);
    let options = cfg.runner.options();
    assert_eq!(options.concurrency, 8);
    assert_eq!(options.retention.as_secs(), 30 * 24 * 3600);
    assert_eq!(options.prune_batch, 500);
    let store = cfg.database.store_options();
    assert_eq!(store.pool_size, 8);
    assert_eq!(store.busy_timeout.as_millis(), 5_000);
    assert_eq!(store.pooler, crate::store::Pooler::Auto);
    assert_eq!(DEFAULT_TOLERANCE_SECS, 300);
}

#[test]
fn a_file_overrides_single_keys_and_keeps_the_other_defaults() {
    let cfg = from_toml_str("[runner]\nconcurrency = 3\nprune_batch = 50").expect("valid");
    assert_eq!(cfg.runner.concurrency, 3);
    assert_eq!(cfg.runner.prune_batch, 50);
    assert_eq!(cfg.runner.lease_secs, 60);
    let err = from_toml_str("[runner]\nprune_batch = 0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("runner.prune_batch"), "{err}");
}

/// docs/configuration.md states the default of every key in its tables;
/// each one the defaults layer holds must be the one it states, and each key
/// of the defaults layer must be documented.
#[test]
fn the_documented_defaults_are_the_built_in_ones() {
    let defaults: figment::value::Dict = defaults().extract().expect("defaults.toml parses");
    let documented = documented_defaults(include_str!("../../docs/configuration.md"));
    for (key, stated) in &documented {
        if let Some(built_in) = built_in(&defaults, key) {
            let stated = stated.strip_prefix('`').and_then(|s| s.split('`').next());
            assert_eq!(
                stated,
                Some(built_in.as_str()),
                "docs/configuration.md on {key}"
            );
        }
    }
    for (name, value) in &defaults {
        let keys: Vec<String> = match value.as_dict() {
            Some(table) => table.keys().map(|k| format!("{name}.{k}")).collect(),
            None if name == "endpoints" || name == "destinations" => vec![],
            None => vec![name.clone()],
        };
        for key in keys {
            assert!(
                documented.iter().any(|(k, _)| *k == key),
                "{key} is not in docs/configuration.md"
            );
        }
    }
}

/// `(key, default cell)` of each row in the docs' tables of the top level
/// and of the `[section]`s.
fn documented_defaults(docs: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut section: Option<String> = None;
    for line in docs.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = match title {
                "Top level" => Some(String::new()),
                t if t.starts_with("`[") && !t.starts_with("`[[") => {
                    t.split(['[', ']']).nth(1).map(|s| format!("{s}."))
                }
                _ => None,
            };
        } else if let (Some(section), Some(row)) = (&section, line.strip_prefix("| `")) {
            let mut cells = row.split('|').map(str::trim);
            let key = cells.next().unwrap_or("").trim_end_matches('`');
            rows.push((
                format!("{section}{key}"),
                cells.next().unwrap_or("").to_owned(),
            ));
        }
    }
    rows
}

/// The default of a dotted key, as the docs would write it.
fn built_in(defaults: &figment::value::Dict, key: &str) -> Option<String> {
    use figment::value::Value;
    let mut parts = key.split('.');
    let mut value = parts.next().and_then(|p| defaults.get(p));
    for part in parts {
        value = value.and_then(Value::as_dict).and_then(|d| d.get(part));
    }
    Some(match value? {
        Value::String(_, s) => s.clone(),
        v => v
            .to_i128()
            .map(|n| n.to_string())
            .or_else(|| v.to_bool().map(|b| b.to_string()))
            .unwrap_or_else(|| panic!("{key}: unexpected default {v:?}")),
    })
}

/// An event can come back for 3 days (Stripe's retries), and as long as the
/// scheduled catch-up looks back: pruned sooner, it would be processed again.
#[test]
fn retention_shorter_than_the_duplicate_window_is_refused() {
    let retention = |days: u64, catch_up_mins: u64| {
        from_toml_str(&format!(
            "[runner]\nretention_days = {days}\n[schedule]\ncatch_up_interval_mins = {catch_up_mins}"
        ))
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let err = retention(2, 60).unwrap_err();
    assert!(err.contains("runner.retention_days"), "{err}");
    assert!(
        err.contains("Stripe retries a delivery for 3 days"),
        "{err}"
    );
    assert!(err.contains("set it to at least 3"), "{err}");
    retention(2, 0).unwrap_err();
    retention(3, 60).expect("3 days cover Stripe's retries and an hourly catch-up");
    retention(3, 0).expect("3 days without catch-up");

    // Catch-up every 10 days looks back 20 days and 10 minutes.
    let err = retention(20, 14_400).unwrap_err();
    assert!(err.contains("set it to at least 21"), "{err}");
    assert!(err.contains("schedule.catch_up_interval_mins"), "{err}");
    retention(21, 14_400).expect("21 days cover the look-back");
    // The look-back ends at Stripe's 30 days of events.
    retention(30, 100_000).expect("catch-up never looks back beyond 30 days");
}

const DEST: &str = r#"
[[destinations]]
name = "app"
url = "http://127.0.0.1:3000/webhooks/stripe"
secret = "whsec_app"
"#;

#[test]
fn a_destination_takes_its_defaults_from_forward() {
    let config = from_toml_str(DEST).expect("valid");
    let d = &config.destinations[0];
    assert_eq!(d.name, "app");
    assert_eq!(d.after, After::Reconciled);
    assert!(d.ordered);
    assert_eq!(d.events, vec!["*".to_owned()]);
    assert_eq!(d.timeout, std::time::Duration::from_secs(10));
    assert_eq!(d.max_age, std::time::Duration::from_secs(72 * 3600));
    assert!(d.wants("customer.created"));
}

#[test]
fn bad_destinations_say_what_to_fix() {
    for (toml, key, hint) in [
        (
            DEST.replace("http://127.0.0.1:3000", "127.0.0.1:3000"),
            "destinations[0].url",
            "http(s) URL",
        ),
        (
            DEST.replace("secret = \"whsec_app\"", ""),
            "destinations[0].secret",
            "destinations secret",
        ),
        (
            DEST.replace("whsec_app", "sk_test_1"),
            "destinations[0].secret",
            "whsec_",
        ),
        (format!("{DEST}colour = \"red\""), "colour", "unknown field"),
        (
            format!("{DEST}after = \"later\""),
            "after",
            "unknown variant",
        ),
    ] {
        let error = from_toml_str(&toml).expect_err(&toml).to_string();
        assert!(error.contains(key) && error.contains(hint), "{error}");
    }
}

#[test]
fn standard_signature_secrets_are_checked_for_the_specs_form() {
    use super::Signature;
    // Stripe's scheme (the default) takes any whsec_ string, as before.
    let d = from_toml_str(DEST).expect("valid").destinations.remove(0);
    assert_eq!(d.signature, Signature::Stripe);

    // 24 bytes: the shortest the spec allows.
    let ok = format!(
        "{}signature = \"standard\"\n",
        DEST.replace("whsec_app", "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3")
    );
    let d = from_toml_str(&ok).expect(&ok).destinations.remove(0);
    assert_eq!(d.signature, Signature::Standard);

    let sixty_five = format!("whsec_{}", "QUFB".repeat(21) + "QUE=");
    for (secret, hint) in [
        ("whsec_app", "not padded standard base64"),
        ("whsec_not base64!", "not padded standard base64"),
        // 16 bytes: too short.
        ("whsec_MDEyMzQ1Njc4OWFiY2RlZg==", "decodes to 16 bytes"),
        // Unpadded: the spec's libraries refuse it.
        (
            "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3OA",
            "not padded standard base64",
        ),
        (sixty_five.as_str(), "decodes to 65 bytes"),
    ] {
        let toml = format!(
            "{}signature = \"standard\"\n",
            DEST.replace("whsec_app", secret)
        );
        let error = from_toml_str(&toml).expect_err(&toml).to_string();
        assert!(
            error.contains("destinations[0].secret")
                && error.contains(hint)
                && error.contains("24 to 64")
                && !error.contains(secret),
            "{secret}: {error}"
        );
    }
    let error = from_toml_str(&format!("{DEST}signature = \"svix\"\n"))
        .expect_err("unknown scheme")
        .to_string();
    assert!(
        error.contains("signature") && error.contains("unknown variant"),
        "{error}"
    );
}

/// The environment provider parses a value as `figment::value::Value`
/// (TOML-like inline arrays and tables): the same parse, without touching
/// the process environment.
#[test]
fn destinations_come_from_the_environment() {
    let env = r#"[{name="app",url="http://127.0.0.1:3000/webhooks/stripe",secret="whsec_x",events=["customer.*"]}]"#;
    let value: figment::value::Value = env.parse().expect("parses");
    let config =
        from_figment(defaults().merge(Serialized::default("destinations", value))).expect("valid");
    assert_eq!(config.destinations.len(), 1);
    assert!(config.destinations[0].wants("customer.updated"));
    assert!(!config.destinations[0].wants("invoice.paid"));
}

/// The drift sweep's charge window: 1 to 365 days, or 0 for no charges; a
/// value out of range or not a whole number of days stops the start with
/// the key's name.
#[test]
fn the_sweep_charge_window_is_checked() {
    let window = |value: &str| {
        from_toml_str(&format!("[schedule]\nsweep_charge_window_days = {value}"))
            .map(|c| c.schedule.sweep_charge_window())
            .map_err(|e| e.to_string())
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    assert_eq!(
        from_toml_str("").unwrap().schedule.sweep_charge_window(),
        Some(day * 180),
        "the default"
    );
    assert_eq!(window("0"), Ok(None));
    assert_eq!(window("1"), Ok(Some(day)));
    assert_eq!(window("365"), Ok(Some(day * 365)));
    let err = window("366").unwrap_err();
    assert!(err.contains("schedule.sweep_charge_window_days"), "{err}");
    assert!(
        err.contains("366 days is more than the 365 allowed"),
        "{err}"
    );
    assert!(err.contains("or 0 for none"), "{err}");
    for mistyped in ["\"180d\"", "-1", "90.5", "true"] {
        let err = window(mistyped).unwrap_err();
        assert!(
            err.contains("sweep_charge_window_days"),
            "{mistyped} → {err}"
        );
    }
}

/// `previous_secrets`: signed with besides `secret` while a secret rolls;
/// each checked like `secret` for the destination's scheme, and the
/// message names the entry.
#[test]
fn previous_secrets_are_checked_and_named() {
    let d = from_toml_str(&format!("{DEST}previous_secrets = [\"whsec_old\"]\n"))
        .expect("valid")
        .destinations
        .remove(0);
    let signing: Vec<&str> = d
        .signing_secrets()
        .map(secrecy::ExposeSecret::expose_secret)
        .collect();
    assert_eq!(signing, vec!["whsec_app", "whsec_old"], "the current first");
    let single = from_toml_str(DEST).expect("valid").destinations.remove(0);
    assert_eq!(
        single.signing_secrets().count(),
        1,
        "a single secret still works"
    );

    let standard = |previous: &str| {
        format!(
            "{}signature = \"standard\"\nprevious_secrets = [{previous}]\n",
            DEST.replace("whsec_app", "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3")
        )
    };
    let d = from_toml_str(&standard("\"whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\""))
        .expect("a standard previous secret")
        .destinations
        .remove(0);
    assert_eq!(d.previous_secrets.len(), 1);

    for (toml, key, hint) in [
        (
            format!("{DEST}previous_secrets = [\"whsec_old\", \"sk_test_1\"]\n"),
            "destinations[0].previous_secrets[1]",
            "whsec_",
        ),
        (
            format!("{DEST}previous_secrets = [\"whsec_app\"]\n"),
            "destinations[0].previous_secrets[0]",
            "the same as `secret`",
        ),
        (
            format!("{DEST}previous_secrets = [\"whsec_old\", \"whsec_old\"]\n"),
            "destinations[0].previous_secrets[1]",
            "listed twice",
        ),
        (
            format!(
                "{DEST}previous_secrets = [\"whsec_1\", \"whsec_2\", \"whsec_3\", \"whsec_4\", \"whsec_5\"]\n"
            ),
            "destinations[0].previous_secrets",
            "at most 4",
        ),
        (
            standard("\"whsec_MDEyMzQ1Njc4OWFiY2RlZg==\""),
            "destinations[0].previous_secrets[0]",
            "decodes to 16 bytes",
        ),
        (
            standard("\"whsec_old\""),
            "destinations[0].previous_secrets[0]",
            "not padded standard base64",
        ),
    ] {
        let error = from_toml_str(&toml).expect_err(&toml).to_string();
        assert!(
            error.contains(key) && error.contains(hint),
            "{toml}: {error}"
        );
    }
}
