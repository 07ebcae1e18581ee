//! The database URL: which backend it names, and its form for logs.

use std::path::PathBuf;

use super::{Backend, StoreError};

/// Where a database URL points, parsed from its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH`, a plain path, or `postgres(ql)://…`.
    pub fn parse(url: &str) -> Result<DatabaseUrl, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                return Ok(DatabaseUrl::Postgres(url.to_owned()));
            }
            return Err(StoreError::Url(
                "this build has no Postgres support: rebuild with `cargo build --release --features postgres` (needs libpq)".to_owned(),
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Url(
                "a SQLite database needs a file path (sqlite:///var/lib/stripe-hookd/stripe-hookd.db)".to_owned(),
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(StoreError::Url(format!(
                "unsupported scheme {scheme:?}: use sqlite://PATH, a file path, or postgres://…"
            )));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL without its password, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/x.db").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/x.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("data/x.db").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("data/x.db")))
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgres://u:pw@h/db")
                .map(|t| t.backend())
                .ok(),
            cfg!(feature = "postgres").then_some(Backend::Postgres)
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgres://h/db"), "postgres://h/db");
    }
}
