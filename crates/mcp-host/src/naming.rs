//! Namespaced component names: `<client>__<name>`, safe for model APIs, at most 64 characters.
//!
//! A client configured with `"namespace": false` exposes its components under their own names,
//! sanitized the same way ([`exposed`]).
//!
//! The two kinds of names never meet: every namespaced name contains the [`SEPARATOR`], and no
//! name a client without namespace exposes does (a component whose name contains it, such as
//! `github__create_issue`, is namespaced under its own client instead). So a server's choice of
//! names can never take, or wait for, another server's namespaced name, whatever the order in
//! which they register or restart.

/// Longest namespaced name.
pub const MAX_NAME_LEN: usize = 64;

/// Separator between the client id and the component name.
pub const SEPARATOR: &str = "__";

/// The plain namespaced name: `<client>__<name>`, every character outside `[A-Za-z0-9_-]`
/// replaced by `_`, cut to [`MAX_NAME_LEN`] with a hash suffix when longer.
///
/// The result always contains [`SEPARATOR`]: when the client id is so long that the cut would
/// remove it, the name is a prefix of the id, the separator and the hash.
pub fn namespaced(client: &str, name: &str) -> String {
    let raw = format!("{client}{SEPARATOR}{name}");
    let sanitized = sanitize(&raw);
    if sanitized.len() <= MAX_NAME_LEN {
        sanitized
    } else {
        with_separator(hashed(&sanitized, &raw), &sanitized, &raw)
    }
}

/// The name a component of `client` is exposed under: [`namespaced`] when `namespace` is true,
/// else the component's own name with the same sanitizing and length rule. An empty name, and a
/// name that would contain [`SEPARATOR`] (`github__create_issue`, `github._create_issue`), stay
/// namespaced: only namespaced names contain the separator.
pub fn exposed(client: &str, name: &str, namespace: bool) -> String {
    if namespace || name.is_empty() {
        return namespaced(client, name);
    }
    let sanitized = sanitize(name);
    let own = if sanitized.len() <= MAX_NAME_LEN {
        sanitized
    } else {
        hashed(&sanitized, name)
    };
    if own.contains(SEPARATOR) {
        namespaced(client, name)
    } else {
        own
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
    let plain = namespaced(client, name);
    with_separator(hashed(&plain, &raw), &plain, &raw)
}

/// `name` if it contains [`SEPARATOR`]; else (the cut of a very long client id removed it) a
/// prefix of `sanitized`, the separator and the hash of `raw`.
fn with_separator(name: String, sanitized: &str, raw: &str) -> String {
    if name.contains(SEPARATOR) {
        return name;
    }
    let suffix = format!("{SEPARATOR}{:08x}", fnv1a(raw.as_bytes()) as u32);
    let keep = MAX_NAME_LEN - suffix.len();
    format!("{}{suffix}", &sanitized[..sanitized.len().min(keep)])
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
    fn names_without_namespace_never_look_namespaced() {
        // The separator, written or made by sanitizing, keeps a name in its client's namespace.
        check_exposed(
            "plain",
            "github__create_issue",
            false,
            "plain__github__create_issue",
        );
        check_exposed(
            "plain",
            "github._create_issue",
            false,
            "plain__github__create_issue",
        );
        check_exposed("plain", "a__", false, "plain__a__");
        check_exposed(
            "plain",
            "single_underscores_are_fine",
            false,
            "single_underscores_are_fine",
        );
        // A long name whose cut ends in `_` would meet the hash's `_`.
        let long = format!("{}_{}", "a".repeat(54), "b".repeat(20));
        let got = exposed("plain", &long, false);
        assert!(got.starts_with("plain__"), "{got}");
        // However long the client id, a namespaced name keeps the separator.
        let id = "c".repeat(64);
        for got in [namespaced(&id, "tool"), disambiguated(&id, "tool")] {
            assert!(
                got.contains(SEPARATOR) && got.len() <= MAX_NAME_LEN,
                "{got}"
            );
        }
        assert_ne!(namespaced(&id, "tool"), namespaced(&id, "other"));
        for name in ["t", "x.y", "_lead", "trail_", "-", &"y".repeat(100)] {
            assert!(!exposed("plain", name, false).contains(SEPARATOR), "{name}");
            assert!(namespaced("a", name).contains(SEPARATOR), "{name}");
        }
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
