# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_stripe_hookd_global_optspecs
    string join \n c/config= h/help V/version
end

function __fish_stripe_hookd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_stripe_hookd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_stripe_hookd_using_subcommand
    set -l cmd (__fish_stripe_hookd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -s V -l version -d 'Print version'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "serve" -d 'Run the daemon: webhook intake (and, as they land, workers and admin API)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "backup" -d 'Copy the SQLite database to PATH, consistently, while the daemon serves (never overwrites)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "check" -d 'Diagnose the setup: config, database, migrations, Stripe API key; non-zero exit on failure'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "events" -d 'Inspect events: list with filters, or show one with its attempts'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "replay" -d 'Re-queue events through the normal runner: by id, or every event matching a filter'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "dead" -d 'Dead letters: list, show, retry, discard with a reason'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "sign-out-everywhere" -d 'End every inspector session, in every browser and on every instance sharing the database (sign out everywhere)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "resync" -d 'Fetch objects from Stripe now and reconcile them (cus_…, sub_…, in_…, pi_…, ch_…, dp_…, cs_…)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "reconcile" -d 'The drift sweep: compare subscriptions, customers, recent charges and customer features with Stripe, fix and report drift'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "features" -d 'A customer\'s Stripe Entitlements features, or whether they have one (exit 1 if not)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "catch-up" -d 'Pull events Stripe could not deliver (GET /v1/events; with a thin endpoint also GET /v2/core/events) and ingest the missing ones'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "setup" -d 'Create or update the Stripe endpoint (webhook endpoint, or --thin event destination) with the handled event types'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "deliveries" -d 'Forwarding deliveries: list, show with attempts, redeliver (by id or filter), discard'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "destinations" -d 'Forwarding destinations: list with health, pause/resume, a fresh secret, a signed test ping'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "trigger" -d 'Send realistic signed Stripe events to an endpoint (one, or a load test with --count)'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "demo" -d 'The whole loop offline: the daemon, a Stripe stand-in and a scripted customer story'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "man" -d 'Print the man page (roff) to stdout: `stripe-hookd man | man -l -`'
complete -c stripe-hookd -n "__fish_stripe_hookd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand serve" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand serve" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand migrate" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand migrate" -l dry-run -d 'List the pending migrations without applying them'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand backup" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand backup" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand check" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand check" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand check" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and not __fish_seen_subcommand_from list show help" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and not __fish_seen_subcommand_from list show help" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and not __fish_seen_subcommand_from list show help" -f -a "list" -d 'List events (oldest first), with filters and pages'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and not __fish_seen_subcommand_from list show help" -f -a "show" -d 'Show one event: its fields, payload and every attempt'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and not __fish_seen_subcommand_from list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l status -d 'pending, processing, done, ignored, dead or discarded' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l type -d 'An event type, or a prefix ending in `*` (quote it: \'invoice.*\')' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l object -d 'A Stripe object id (sub_…, in_…, cus_…)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l since -d 'Received at or after: RFC 3339 (2026-11-20T10:00:00Z), unix seconds, or an age (90m, 2h, 3d)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l until -d 'Received before (same forms as --since)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l limit -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l after -d 'Show events after this row id (the `next` of the previous page)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from show" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from show" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from help" -f -a "list" -d 'List events (oldest first), with filters and pages'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one event: its fields, payload and every attempt'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand events; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l status -d 'pending, processing, done, ignored, dead or discarded' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l type -d 'An event type, or a prefix ending in `*` (quote it: \'invoice.*\')' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l object -d 'A Stripe object id (sub_…, in_…, cus_…)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l since -d 'Received at or after: RFC 3339 (2026-11-20T10:00:00Z), unix seconds, or an age (90m, 2h, 3d)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l until -d 'Received before (same forms as --since)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand replay" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -f -a "list" -d 'List dead events'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -f -a "show" -d 'Show one dead event with its attempts'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -f -a "retry" -d 'Re-queue dead events (by id, or every one with --all), with a fresh retry budget'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -f -a "discard" -d 'Give up on a dead event, saying why (kept, never retried)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and not __fish_seen_subcommand_from list show retry discard help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from list" -l limit -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from list" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from list" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from show" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from show" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from retry" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from retry" -l all
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from retry" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from discard" -l reason -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from discard" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from discard" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from help" -f -a "list" -d 'List dead events'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one dead event with its attempts'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Re-queue dead events (by id, or every one with --all), with a fresh retry budget'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from help" -f -a "discard" -d 'Give up on a dead event, saying why (kept, never retried)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand dead; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand sign-out-everywhere" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand sign-out-everywhere" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand sign-out-everywhere" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand resync" -l account -d 'Fetch from this Connect account (acct_…); default: the account the record came from' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand resync" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand resync" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand resync" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand reconcile" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand reconcile" -l dry-run -d 'Report what differs without changing anything'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand reconcile" -l all -d 'List every drifted field, not only the first 100'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand reconcile" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand reconcile" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand features" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand features" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand features" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -l since -d 'Events created at or after: RFC 3339, unix seconds, or an age (6h, 3d); at most 30 days' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -l only-failed -d 'Only the events whose delivery failed (delivery_success=false)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -l dry-run -d 'Report what is missing without storing anything'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand catch-up" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l url -d 'The public URL Stripe delivers to, e.g. https://hooks.example.com/webhooks/stripe' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l secret-file -d 'Write the new signing secret here (mode 0600) instead of printing it, e.g. /etc/stripe-hookd/credentials/webhook_secret (the systemd unit\'s credential)' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l thin -d 'An event destination with thin events (set `thin = true` on the endpoint in the config)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l dry-run -d 'Show what would change without changing anything'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l adopt -d 'Let setup add what it lacks to an endpoint with this URL that it did not create (it never removes a type), and mark it as setup\'s'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand setup" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -f -a "list" -d 'List deliveries (oldest first), optionally of one destination and status'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -f -a "show" -d 'Show one delivery: its fields, body and every attempt (headers, status, answer)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -f -a "redeliver" -d 'Send deliveries again from attempt 1 (same delivery id): by id, or every one matching a filter (`--status dead` retries the dead ones)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -f -a "discard" -d 'Give up on a dead or pending delivery, saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and not __fish_seen_subcommand_from list show redeliver discard help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -l destination -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -l status -d 'pending, delivering, delivered, dead or discarded' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -l limit -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -l after -d 'Show deliveries after this row id (the `next` of the previous page)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from show" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from show" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -l status -d 'dead, delivered or discarded' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -l destination -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -l type -d 'An event type, or a prefix ending in `*` (quote it: \'invoice.*\')' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -l since -d 'Recorded at or after: RFC 3339, unix seconds, or an age (90m, 2h, 3d)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -l until -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from redeliver" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from discard" -l reason -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from discard" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from discard" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from help" -f -a "list" -d 'List deliveries (oldest first), optionally of one destination and status'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one delivery: its fields, body and every attempt (headers, status, answer)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from help" -f -a "redeliver" -d 'Send deliveries again from attempt 1 (same delivery id): by id, or every one matching a filter (`--status dead` retries the dead ones)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from help" -f -a "discard" -d 'Give up on a dead or pending delivery, saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand deliveries; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "list" -d 'List the configured destinations: paused, backlog, dead, last success, failing since'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "pause" -d 'Stop sending to a destination (every instance), saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "resume" -d 'Send to a paused destination again (also one paused by a 410 Gone)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "secret" -d 'Print a fresh random signing secret (whsec_…) for a destination'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "test" -d 'Send a destination a signed stripe_hookd.ping event and show what it answered'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and not __fish_seen_subcommand_from list pause resume secret test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from list" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from list" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from pause" -l reason -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from pause" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from resume" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from secret" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from secret" -l standard -d 'For `signature = "standard"`: `whsec_` and the base64 of 32 random bytes (Standard Webhooks\' form). Without it, hex, for Stripe\'s scheme'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from secret" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from test" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the configured destinations: paused, backlog, dead, last success, failing since'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Stop sending to a destination (every instance), saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Send to a paused destination again (also one paused by a 410 Gone)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "secret" -d 'Print a fresh random signing secret (whsec_…) for a destination'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "test" -d 'Send a destination a signed stripe_hookd.ping event and show what it answered'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand destinations; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l url -d 'Endpoint URL (default: this daemon\'s first endpoint on its listen address)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l secret -d 'Signing secret (default: the endpoint\'s first secret)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l mode -d 'test or live (default: the endpoint\'s mode)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l api-version -d 'API version of the payload (default: the pinned stripe.api_version)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l count -d 'Load mode: this many distinct events (cycling through every type)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l concurrency -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l rate -d 'Offered requests per second (default: as fast as answers come)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l duplicates -d 'Extra redeliveries of sent events, in percent of --count' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l list -d 'List the event types and exit'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l print -d 'Print the signed request instead of sending it'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l shuffle -d 'Send in random order'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -l json
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand trigger" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -l step-delay -d 'Pause between the story\'s steps (humantime: 1.5s, 300ms, 0s)' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -l api-key -d 'The key the Stripe stand-in expects: a test key (default: a made-up sk_test_demo_…). A live key is refused' -r
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -l signature -d 'How the demo\'s app is signed for: Stripe\'s scheme or Standard Webhooks (docs/forwarding.md)' -r -f -a "stripe\t''
standard\t''"
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -l open -d 'Open the inspector in a browser (xdg-open; a failure is only a warning)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -l exit -d 'Exit after the story instead of serving until Ctrl-C'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand demo" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand completions" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand completions" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand man" -s c -l config -d 'Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists' -r -F
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand man" -s h -l help -d 'Print help'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "serve" -d 'Run the daemon: webhook intake (and, as they land, workers and admin API)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "backup" -d 'Copy the SQLite database to PATH, consistently, while the daemon serves (never overwrites)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "check" -d 'Diagnose the setup: config, database, migrations, Stripe API key; non-zero exit on failure'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "events" -d 'Inspect events: list with filters, or show one with its attempts'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "replay" -d 'Re-queue events through the normal runner: by id, or every event matching a filter'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "dead" -d 'Dead letters: list, show, retry, discard with a reason'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "sign-out-everywhere" -d 'End every inspector session, in every browser and on every instance sharing the database (sign out everywhere)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "resync" -d 'Fetch objects from Stripe now and reconcile them (cus_…, sub_…, in_…, pi_…, ch_…, dp_…, cs_…)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "reconcile" -d 'The drift sweep: compare subscriptions, customers, recent charges and customer features with Stripe, fix and report drift'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "features" -d 'A customer\'s Stripe Entitlements features, or whether they have one (exit 1 if not)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "catch-up" -d 'Pull events Stripe could not deliver (GET /v1/events; with a thin endpoint also GET /v2/core/events) and ingest the missing ones'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "setup" -d 'Create or update the Stripe endpoint (webhook endpoint, or --thin event destination) with the handled event types'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "deliveries" -d 'Forwarding deliveries: list, show with attempts, redeliver (by id or filter), discard'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "destinations" -d 'Forwarding destinations: list with health, pause/resume, a fresh secret, a signed test ping'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "trigger" -d 'Send realistic signed Stripe events to an endpoint (one, or a load test with --count)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "demo" -d 'The whole loop offline: the daemon, a Stripe stand-in and a scripted customer story'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "man" -d 'Print the man page (roff) to stdout: `stripe-hookd man | man -l -`'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and not __fish_seen_subcommand_from serve migrate backup check events replay dead sign-out-everywhere resync reconcile features catch-up setup deliveries destinations trigger demo completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from events" -f -a "list" -d 'List events (oldest first), with filters and pages'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from events" -f -a "show" -d 'Show one event: its fields, payload and every attempt'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from dead" -f -a "list" -d 'List dead events'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from dead" -f -a "show" -d 'Show one dead event with its attempts'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from dead" -f -a "retry" -d 'Re-queue dead events (by id, or every one with --all), with a fresh retry budget'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from dead" -f -a "discard" -d 'Give up on a dead event, saying why (kept, never retried)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from deliveries" -f -a "list" -d 'List deliveries (oldest first), optionally of one destination and status'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from deliveries" -f -a "show" -d 'Show one delivery: its fields, body and every attempt (headers, status, answer)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from deliveries" -f -a "redeliver" -d 'Send deliveries again from attempt 1 (same delivery id): by id, or every one matching a filter (`--status dead` retries the dead ones)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from deliveries" -f -a "discard" -d 'Give up on a dead or pending delivery, saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from destinations" -f -a "list" -d 'List the configured destinations: paused, backlog, dead, last success, failing since'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from destinations" -f -a "pause" -d 'Stop sending to a destination (every instance), saying why'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from destinations" -f -a "resume" -d 'Send to a paused destination again (also one paused by a 410 Gone)'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from destinations" -f -a "secret" -d 'Print a fresh random signing secret (whsec_…) for a destination'
complete -c stripe-hookd -n "__fish_stripe_hookd_using_subcommand help; and __fish_seen_subcommand_from destinations" -f -a "test" -d 'Send a destination a signed stripe_hookd.ping event and show what it answered'
