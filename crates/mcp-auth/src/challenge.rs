//! What a server's `WWW-Authenticate` header asks for, and the scope lists of requests.
//!
//! A 401 or 403 answer carries a `Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1): `error`,
//! `error_description`, `scope` (the scopes the request needs) and `resource_metadata` (where the
//! protected resource metadata is). [`Challenge::parse`] reads it out of the header's value,
//! which may hold several challenges of several schemes.

use std::collections::BTreeSet;

/// The parameters of a `Bearer` challenge. Parameters the header did not carry are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `error`, e.g. `invalid_token` or `insufficient_scope`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `scope`: space-separated scopes.
    pub scope: Option<String>,
    /// `resource_metadata`: the URL of the protected resource metadata.
    pub resource_metadata: Option<String>,
}

/// The longest header value read; longer ones are cut (a challenge is a few hundred bytes).
const MAX_HEADER_LEN: usize = 8 * 1024;

impl Challenge {
    /// The `Bearer` challenge of a `WWW-Authenticate` value, or `None` when it has none.
    ///
    /// Scheme names are matched without regard to case; parameter values are tokens or quoted
    /// strings (with `\` escapes). A malformed value yields what could be read before the fault.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.get(..MAX_HEADER_LEN).unwrap_or(header);
        let mut parser = Parser {
            rest: header.as_bytes(),
        };
        let mut bearer: Option<Challenge> = None;
        let mut in_bearer = false;
        loop {
            parser.skip(|b| b == b' ' || b == b'\t' || b == b',');
            if parser.rest.is_empty() {
                break;
            }
            let Some(name) = parser.token() else {
                break;
            };
            parser.skip(|b| b == b' ' || b == b'\t');
            if parser.rest.first() == Some(&b'=') {
                // `name=value`: a parameter of the current challenge (or a token68 that ends in
                // `=`, which carries nothing we read).
                parser.rest = &parser.rest[1..];
                parser.skip(|b| b == b' ' || b == b'\t');
                let value = if parser.rest.first() == Some(&b'"') {
                    parser.quoted()
                } else {
                    parser.token().unwrap_or_default()
                };
                if in_bearer {
                    if let Some(challenge) = bearer.as_mut() {
                        let slot = match name.to_ascii_lowercase().as_str() {
                            "error" => &mut challenge.error,
                            "error_description" => &mut challenge.error_description,
                            "scope" => &mut challenge.scope,
                            "resource_metadata" => &mut challenge.resource_metadata,
                            _ => continue,
                        };
                        if slot.is_none() {
                            *slot = Some(value);
                        }
                    }
                }
            } else {
                // A scheme name starts a new challenge.
                in_bearer = name.eq_ignore_ascii_case("bearer") && bearer.is_none();
                if in_bearer {
                    bearer = Some(Challenge::default());
                }
            }
        }
        bearer
    }

    /// The scopes of `scope`, if it has any.
    pub fn scopes(&self) -> Option<Vec<String>> {
        self.scope
            .as_deref()
            .map(split_scopes)
            .filter(|s| !s.is_empty())
    }

    /// Whether the challenge says that the token lacks a scope (`insufficient_scope`).
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The scopes of a space-separated list, without repeats, in their order.
pub(crate) fn split_scopes(scope: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    scope
        .split([' ', '\t'])
        .filter(|scope| !scope.is_empty() && seen.insert(*scope))
        .map(str::to_owned)
        .collect()
}

/// `first` followed by the scopes of `second` that it lacks.
pub(crate) fn union_scopes(first: &[String], second: &[String]) -> Vec<String> {
    let mut all = first.to_vec();
    for scope in second {
        if !all.contains(scope) {
            all.push(scope.clone());
        }
    }
    all
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while let Some(&b) = self.rest.first() {
            if !what(b) {
                break;
            }
            self.rest = &self.rest[1..];
        }
    }

    /// An HTTP token (RFC 9110 `tchar`s), plus `/` so that token68 values are taken whole.
    fn token(&mut self) -> Option<String> {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b);
        let len = self.rest.iter().take_while(|&&b| tchar(b)).count();
        if len == 0 {
            // Not a token: skip one byte so that parsing goes on.
            if !self.rest.is_empty() {
                self.rest = &self.rest[1..];
            }
            return None;
        }
        let token = String::from_utf8_lossy(&self.rest[..len]).into_owned();
        self.rest = &self.rest[len..];
        Some(token)
    }

    /// A quoted string, starting at its opening quote; `\x` stands for `x`.
    fn quoted(&mut self) -> String {
        let mut value = Vec::new();
        let mut idx = 1;
        while idx < self.rest.len() {
            match self.rest[idx] {
                b'\\' if idx + 1 < self.rest.len() => {
                    value.push(self.rest[idx + 1]);
                    idx += 2;
                }
                b'"' => {
                    idx += 1;
                    break;
                }
                b => {
                    value.push(b);
                    idx += 1;
                }
            }
        }
        self.rest = &self.rest[idx.min(self.rest.len())..];
        String::from_utf8_lossy(&value).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, expect: Option<(&str, &str, &str, &str)>) {
        let actual = Challenge::parse(header);
        let expect = expect.map(|(error, description, scope, metadata)| {
            let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
            Challenge {
                error: some(error),
                error_description: some(description),
                scope: some(scope),
                resource_metadata: some(metadata),
            }
        });
        assert_eq!(actual, expect, "{header}");
    }

    #[test]
    fn challenges() {
        check(
            r#"Bearer resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp""#,
            Some((
                "",
                "",
                "",
                "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp",
            )),
        );
        check(
            r#"Bearer error="insufficient_scope", scope="mcp:basic mcp:write", resource_metadata="https://x/m""#,
            Some((
                "insufficient_scope",
                "",
                "mcp:basic mcp:write",
                "https://x/m",
            )),
        );
        // Case, spacing, token values, other schemes before and after, escapes.
        check(
            r#"Basic realm="a, b", bearer  Error=invalid_token ,error_description="say \"no\"",scope=read, Digest nonce="x""#,
            Some(("invalid_token", r#"say "no""#, "read", "")),
        );
        check("Bearer", Some(("", "", "", "")));
        check(r#"Basic realm="x""#, None);
        check("", None);
        // A parameter given twice keeps its first value; a broken quote ends the value.
        check(
            r#"Bearer scope="a", scope="b", error="unterminated"#,
            Some(("unterminated", "", "a", "")),
        );
        check("Bearer ,,\"\u{1} =x", Some(("", "", "", "")));
    }

    #[test]
    fn scopes() {
        assert_eq!(split_scopes(" a  b a\tc "), ["a", "b", "c"]);
        assert!(split_scopes("  ").is_empty());
        let union = union_scopes(&["a".into(), "b".into()], &["b".into(), "c".into()]);
        assert_eq!(union, ["a", "b", "c"]);
        let challenge = Challenge {
            scope: Some(" ".into()),
            ..Challenge::default()
        };
        assert_eq!(challenge.scopes(), None);
    }
}
