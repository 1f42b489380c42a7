//! Namespaced component names: `<client>__<name>`, safe for model APIs, at most 64 characters.
//!
//! A client configured with `"namespace": false` exposes its components under their own names,
//! sanitized the same way ([`exposed`]).

/// Longest namespaced name.
pub const MAX_NAME_LEN: usize = 64;

/// Separator between the client id and the component name.
pub const SEPARATOR: &str = "__";

/// The plain namespaced name: `<client>__<name>`, every character outside `[A-Za-z0-9_-]`
/// replaced by `_`, cut to [`MAX_NAME_LEN`] with a hash suffix when longer.
pub fn namespaced(client: &str, name: &str) -> String {
    let raw = format!("{client}{SEPARATOR}{name}");
    let sanitized = sanitize(&raw);
    if sanitized.len() <= MAX_NAME_LEN {
        sanitized
    } else {
        hashed(&sanitized, &raw)
    }
}

/// The name a component of `client` is exposed under: [`namespaced`] when `namespace` is true,
/// else the component's own name with the same sanitizing and length rule (an empty name stays
/// namespaced).
pub fn exposed(client: &str, name: &str, namespace: bool) -> String {
    if namespace || name.is_empty() {
        return namespaced(client, name);
    }
    let sanitized = sanitize(name);
    if sanitized.len() <= MAX_NAME_LEN {
        sanitized
    } else {
        hashed(&sanitized, name)
    }
}

/// Replaces every character outside `[A-Za-z0-9_-]` by `_`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The fallback name when the plain one is taken: a prefix of the plain name plus a hash of
/// the original `client`/`name` pair, so the result does not depend on registration order.
pub fn disambiguated(client: &str, name: &str) -> String {
    let raw = format!("{client}{SEPARATOR}{name}");
    hashed(&namespaced(client, name), &raw)
}

fn hashed(sanitized: &str, raw: &str) -> String {
    let suffix = format!("_{:08x}", fnv1a(raw.as_bytes()) as u32);
    let keep = MAX_NAME_LEN - suffix.len();
    // `sanitized` is ASCII, so any byte index is a character boundary.
    let prefix = &sanitized[..sanitized.len().min(keep)];
    format!("{prefix}{suffix}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(client: &str, name: &str, expect: &str) {
        let got = namespaced(client, name);
        assert_eq!(got, expect);
        assert!(got.len() <= MAX_NAME_LEN);
    }

    #[test]
    fn names() {
        check("fs", "read_file", "fs__read_file");
        check("git.hub", "search.issues", "git_hub__search_issues");
        check("a", "héllo wörld", "a__h_llo_w_rld");
        let long = "x".repeat(100);
        let got = namespaced("client", &long);
        assert_eq!(got.len(), MAX_NAME_LEN);
        assert!(got.starts_with("client__xxx"));
        assert_ne!(got, namespaced("client", &"x".repeat(101)));
    }

    #[track_caller]
    fn check_exposed(client: &str, name: &str, namespace: bool, expect: &str) {
        let got = exposed(client, name, namespace);
        assert_eq!(got, expect);
        assert!(got.len() <= MAX_NAME_LEN);
    }

    #[test]
    fn exposed_names() {
        check_exposed("fs", "read_file", true, "fs__read_file");
        check_exposed("fs", "read_file", false, "read_file");
        check_exposed("fs", "read.file", false, "read_file");
        check_exposed("fs", "", false, "fs__");
        let long = exposed("fs", &"y".repeat(100), false);
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert!(long.starts_with("yyy"));
        assert_ne!(long, exposed("fs", &"y".repeat(101), false));
    }

    #[test]
    fn disambiguation_is_stable_and_distinct() {
        let first = disambiguated("a.b", "t");
        let second = disambiguated("a_b", "t");
        assert_ne!(first, second);
        assert_eq!(first, disambiguated("a.b", "t"));
        assert!(first.len() <= MAX_NAME_LEN);
        assert!(first.starts_with("a_b__t_"));
    }
}
