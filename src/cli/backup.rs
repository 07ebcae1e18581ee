//! `backup` (a consistent SQLite copy while the daemon serves) and
//! `migrate --dry-run` (what `migrate` would apply).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::Config;
use crate::store::{DatabaseUrl, Store};

/// Copies the SQLite database to `dest` with `VACUUM INTO`: one read
/// transaction, so the copy is consistent while intake and the runner keep
/// writing. Never overwrites: the copy is written beside `dest` and linked
/// into place only if nothing is there.
pub(super) fn backup(config: &Config, dest: &Path) -> anyhow::Result<()> {
    let url = config.database_url();
    let source = match DatabaseUrl::parse(&url)? {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => bail!(
            "backup copies SQLite databases; for Postgres use pg_dump \
             (`pg_dump --format=custom --file=stripe-hookd.dump \"$DATABASE_URL\"`, \
             restore with pg_restore; see docs/operations.md)"
        ),
    };
    if !source.exists() {
        bail!(
            "no database at {}: check DATABASE_URL / state_dir (the daemon creates it on first start)",
            source.display()
        );
    }
    if dest.exists() {
        bail!(
            "{} already exists: backup never overwrites; choose a new path or remove it",
            dest.display()
        );
    }
    let partial = partial_path(dest)?;
    let store =
        Store::open(&url, &config.database.store_options()).context("cannot open the database")?;
    let result = vacuum_into(&store, &partial).and_then(|()| {
        // A hard link fails if `dest` appeared meanwhile: still no overwrite.
        std::fs::hard_link(&partial, dest)
            .with_context(|| format!("cannot create {}", dest.display()))
    });
    // The partial name goes either way; a failed copy leaves nothing behind.
    let _ = std::fs::remove_file(&partial);
    result?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({bytes} bytes)",
        store.target().redacted(),
        dest.display()
    );
    Ok(())
}

fn partial_path(dest: &Path) -> anyhow::Result<PathBuf> {
    let name = dest
        .file_name()
        .with_context(|| format!("{} is not a file path", dest.display()))?;
    let mut partial = name.to_os_string();
    partial.push(format!(".partial-{}", std::process::id()));
    Ok(dest.with_file_name(partial))
}

fn vacuum_into(store: &Store, path: &Path) -> anyhow::Result<()> {
    let path = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    let mut conn = store.conn()?;
    crate::store::backup::vacuum_into(&mut conn, path)
        .with_context(|| format!("VACUUM INTO {path} failed"))
}

/// Lists the migrations `migrate` would apply, applying none.
pub(super) fn migrate_dry_run(config: &Config) -> anyhow::Result<()> {
    let url = config.database_url();
    if let DatabaseUrl::Sqlite(path) = DatabaseUrl::parse(&url)? {
        if !path.exists() {
            // Opening would create it: say what a first start applies instead.
            println!(
                "no database at {} yet: `migrate` (or the first `serve`) creates it and applies every migration",
                path.display()
            );
            return Ok(());
        }
    }
    let store =
        Store::open(&url, &config.database.store_options()).context("cannot open the database")?;
    let pending = store.pending_migrations()?;
    println!(
        "database {} ({}): {} migration(s) pending{}",
        store.target().redacted(),
        store.backend().as_str(),
        pending.len(),
        if pending.is_empty() { "" } else { ":" }
    );
    for name in &pending {
        println!("  {name}");
    }
    Ok(())
}
