//! [`url`]: a URL as it may be shown or stored — in a log line, an error
//! kept in the database, the admin API, the inspector, the CLI. A
//! destination's URL may carry credentials (`https://user:pw@host/…`) or a
//! token in its query (`?token=…`); what is shown keeps the scheme, host,
//! port, path and the query's keys, and replaces the userinfo and every
//! query value with `[redacted]`.
//!
//! It works on text, so it also covers a value that is not a valid URL (a
//! configuration error quotes what was written).

/// What stands in for a hidden part.
pub(crate) const REDACTED: &str = "[redacted]";

/// `url` with its userinfo and query values replaced by [`REDACTED`].
pub(crate) fn url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, frag)) => (head, Some(frag)),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((head, q)) => (head, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(&without_userinfo(before_query));
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query.split('&').map(pair).collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        // A fragment is never sent, but it is as likely to hold a token.
        out.push('#');
        if !fragment.is_empty() {
            out.push_str(REDACTED);
        }
    }
    out
}

/// `scheme://[userinfo@]host…` without the userinfo (up to the authority's
/// last `@`).
fn without_userinfo(head: &str) -> String {
    let (scheme, rest) = match head.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, head),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// One `key=value` of a query: the key kept, the value hidden. A part
/// without `=` may itself be a token: hidden whole.
fn pair(part: &str) -> String {
    match part.split_once('=') {
        Some((key, _)) => format!("{key}={REDACTED}"),
        None if part.is_empty() => String::new(),
        None => REDACTED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn userinfo_and_query_values_are_hidden() {
        for (given, shown) in [
            ("http://127.0.0.1:3000/hooks", "http://127.0.0.1:3000/hooks"),
            (
                "https://user:pw@app.example/hooks",
                "https://[redacted]@app.example/hooks",
            ),
            (
                "https://token@app.example",
                "https://[redacted]@app.example",
            ),
            (
                "https://app.example/h?token=secret&v=2",
                "https://app.example/h?token=[redacted]&v=[redacted]",
            ),
            (
                "https://u:p@app.example:8443/h?k=a=b#frag",
                "https://[redacted]@app.example:8443/h?k=[redacted]#[redacted]",
            ),
            (
                "https://app.example/h?sekrit",
                "https://app.example/h?[redacted]",
            ),
            ("https://app.example/h?", "https://app.example/h?"),
            // Not a URL at all (a configuration error quotes it).
            ("u:p@host/path?x=1", "[redacted]@host/path?x=[redacted]"),
            ("https://a@b@host/p@q", "https://[redacted]@host/p@q"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn a_parsed_url_shows_the_same_way() {
        let u = reqwest::Url::parse("https://user:pw@app.example/hooks?token=secret").unwrap();
        assert_eq!(
            url(u.as_str()),
            "https://[redacted]@app.example/hooks?token=[redacted]"
        );
    }

    proptest! {
        /// Whatever the credentials and query values, none of them is shown,
        /// and the host and path are.
        #[test]
        fn no_secret_survives(
            user in "[a-zA-Z0-9]{1,12}",
            password in "[a-zA-Z0-9]{9,24}",
            key in "[a-z]{1,8}",
            value in "[a-zA-Z0-9]{8,24}",
            path in "(/[a-z]{1,8}){0,3}",
        ) {
            let given = format!("https://{user}:{password}@app.example{path}?{key}={value}");
            let shown = url(&given);
            prop_assert!(!shown.contains(&password), "{}", shown);
            // After the scheme's "//": a user "s" is in "https:" itself.
            prop_assert!(!shown.contains(&format!("//{user}:")), "{}", shown);
            prop_assert!(!shown.contains(&format!("={value}")), "{}", shown);
            let expected = format!("https://{REDACTED}@app.example{path}?{key}={REDACTED}");
            prop_assert_eq!(shown, expected);
        }
    }
}
