//! The roots of each client: the directories its server may work in, as answered to `roots/list`.
//!
//! A root is configured as a `file://` URI or an absolute path. [`RootManager::validate_root`]
//! checks that it names an existing directory and turns it into the canonical `file://` form a
//! server receives. Each client has its own list, which can be replaced at runtime; the provider
//! given to a client's session only ever answers with that client's current list.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use mcp_session::protocol::Root;
use mcp_session::RootsProvider;

use crate::{ClientId, Error};

/// The roots of every client: validated, served to `roots/list`, changeable at runtime.
///
/// Cheap to clone: clones share the same lists.
#[derive(Clone, Debug, Default)]
pub struct RootManager {
    inner: Arc<RwLock<HashMap<ClientId, Vec<Root>>>>,
}

/// Answers `roots/list` for one client with its current roots.
#[derive(Debug)]
struct ClientRoots {
    manager: RootManager,
    client: ClientId,
}

impl RootManager {
    /// A manager with no roots for any client.
    pub fn new() -> RootManager {
        RootManager::default()
    }

    /// Validates one root of `client`, as configured, and returns it in the form a server sees.
    ///
    /// `root` is a `file://` URI (`file:///abs/path`, or `file://localhost/abs/path`;
    /// percent-encoded) or an absolute path, without `..` components, and must name an existing
    /// directory. The returned root's URI is `file://` followed by the absolute path with `.`
    /// components, repeated and trailing slashes removed, and every byte outside
    /// `A-Z a-z 0-9 / . _ ~ -` percent-encoded; its name is the last path component.
    ///
    /// Fails with [`Error::InvalidRoot`].
    ///
    /// This reads the file system (`std::fs::metadata`), so it blocks briefly: call it when
    /// loading or changing the configuration, not in async hot paths.
    pub fn validate_root(client: &str, root: &str) -> Result<Root, Error> {
        let invalid = |reason: String| Error::InvalidRoot {
            client: client.to_owned(),
            root: root.to_owned(),
            reason,
        };
        let path = root_path(root).map_err(invalid)?;
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(invalid("is not a directory".to_owned())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid("does not exist".to_owned()))
            }
            Err(err) => return Err(invalid(format!("cannot be read ({})", err.kind()))),
        }
        Ok(Root {
            uri: file_uri(&path),
            name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
        })
    }

    /// Validates every root in `roots`, then replaces the roots of `client` with them.
    ///
    /// All or nothing: when one root is invalid, the client keeps its previous roots.
    /// Returns the new list.
    ///
    /// Blocks briefly on the file system, as [`RootManager::validate_root`] does.
    pub fn set_roots(&self, client: &ClientId, roots: &[String]) -> Result<Vec<Root>, Error> {
        let roots = roots
            .iter()
            .map(|root| RootManager::validate_root(client.as_str(), root))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client.clone(), roots.clone());
        Ok(roots)
    }

    /// The current roots of `client`; empty when it has none.
    pub fn roots(&self, client: &ClientId) -> Vec<Root> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client)
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets the roots of `client`.
    pub fn remove(&self, client: &ClientId) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(client);
    }

    /// A provider for the session of `client`, which always answers with the client's current
    /// roots (so a server only ever sees its own roots, and sees changes at once).
    pub fn provider(&self, client: &ClientId) -> Arc<dyn RootsProvider> {
        Arc::new(ClientRoots {
            manager: self.clone(),
            client: client.clone(),
        })
    }
}

impl RootsProvider for ClientRoots {
    fn roots(&self) -> Vec<Root> {
        self.manager.roots(&self.client)
    }
}

/// The absolute path a configured root names, without touching the file system.
///
/// The error is the reason, to be put in an [`Error::InvalidConfig`] or [`Error::InvalidRoot`].
pub(crate) fn root_path(root: &str) -> Result<PathBuf, String> {
    let path = match strip_prefix_ignore_case(root, "file://") {
        Some(rest) => {
            let (host, path) = rest.find('/').map_or((rest, ""), |idx| rest.split_at(idx));
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return Err("must be a `file://` URI with an empty host or `localhost`".to_owned());
            }
            if path.contains(['?', '#']) {
                return Err("must not have a query or a fragment".to_owned());
            }
            let path =
                percent_decode(path).ok_or_else(|| "has an invalid percent-encoding".to_owned())?;
            PathBuf::from(path)
        }
        None => PathBuf::from(root),
    };
    if !path.is_absolute() {
        return Err("must be a `file://` URI or an absolute path".to_owned());
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err("must not contain NUL".to_owned());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("must not contain `..`".to_owned());
    }
    Ok(path.components().collect())
}

/// `text` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        if byte == b'%' {
            let hex = bytes.get(idx + 1..idx + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            idx += 3;
        } else {
            out.push(byte);
            idx += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `file://` followed by `path`, with bytes outside `A-Z a-z 0-9 / . _ ~ -` percent-encoded.
fn file_uri(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut uri = String::with_capacity("file://".len() + bytes.len());
    uri.push_str("file://");
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'.' | b'_' | b'~' | b'-') {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_host_testkit::TempDir;

    /// Checks that `root` validates to `expect` (uri, name) or fails with the reason `expect`.
    #[track_caller]
    fn check(root: &str, expect: Result<(&str, Option<&str>), &str>) {
        let actual = RootManager::validate_root("srv", root);
        match (actual, expect) {
            (Ok(actual), Ok((uri, name))) => {
                assert_eq!(actual.uri, uri);
                assert_eq!(actual.name.as_deref(), name);
            }
            (Err(actual), Err(reason)) => assert_eq!(
                actual.to_string(),
                format!("invalid root `{root}` for client `srv`: {reason}")
            ),
            (actual, expect) => panic!("expected {expect:?}, got {actual:?}"),
        }
    }

    #[test]
    fn validate_root() {
        let dir = TempDir::new("mcp-host-foundation-roots-validate");
        let base = dir.path().to_str().unwrap();
        std::fs::create_dir_all(dir.path().join("my dir/ü")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let base_uri = file_uri(dir.path());
        let base_name = dir.path().file_name().unwrap().to_str().unwrap();

        check(base, Ok((&base_uri, Some(base_name))));
        check(&format!("{base}/"), Ok((&base_uri, Some(base_name))));
        check(&format!("{base}/./"), Ok((&base_uri, Some(base_name))));
        check(&format!("file://{base}"), Ok((&base_uri, Some(base_name))));
        check(&format!("FILE://{base}"), Ok((&base_uri, Some(base_name))));
        check(
            &format!("file://localhost{base}"),
            Ok((&base_uri, Some(base_name))),
        );
        let nested_uri = format!("{base_uri}/my%20dir/%C3%BC");
        check(&format!("{base}/my dir/ü"), Ok((&nested_uri, Some("ü"))));
        check(&nested_uri, Ok((&nested_uri, Some("ü"))));
        check(
            &format!("{base_uri}/my%20dir/%c3%bc"),
            Ok((&nested_uri, Some("ü"))),
        );
        check("/", Ok(("file:///", None)));
        check("file:///", Ok(("file:///", None)));

        let reason = "must be a `file://` URI or an absolute path";
        check("relative/dir", Err(reason));
        check(".", Err(reason));
        check("", Err(reason));
        check("file://", Err(reason));
        check("file://localhost", Err(reason));
        check("http://example.com/x", Err(reason));
        check(
            "file://example.com/tmp",
            Err("must be a `file://` URI with an empty host or `localhost`"),
        );
        check("file:///tmp?x", Err("must not have a query or a fragment"));
        check("file:///tmp%2", Err("has an invalid percent-encoding"));
        check("file:///tmp%zz", Err("has an invalid percent-encoding"));
        check("file:///tmp%ff", Err("has an invalid percent-encoding"));
        check("file:///tmp%00", Err("must not contain NUL"));
        check(&format!("{base}/../x"), Err("must not contain `..`"));
        check(&format!("{base}/missing"), Err("does not exist"));
        check(&format!("file://{base}/missing"), Err("does not exist"));
        check(&format!("{base}/file"), Err("is not a directory"));
    }

    #[test]
    fn manager() {
        let dir = TempDir::new("mcp-host-foundation-roots-manager");
        let a_dir = dir.path().join("a");
        let b_dir = dir.path().join("b");
        std::fs::create_dir_all(&a_dir).unwrap();
        std::fs::create_dir_all(&b_dir).unwrap();
        let a_root = a_dir.to_str().unwrap().to_owned();
        let b_root = b_dir.to_str().unwrap().to_owned();
        let uris = |roots: Vec<Root>| roots.into_iter().map(|r| r.uri).collect::<Vec<_>>();

        let manager = RootManager::new();
        let a = ClientId::new("a").unwrap();
        let b = ClientId::new("b").unwrap();
        let a_provider = manager.provider(&a);
        let b_provider = manager.provider(&b);
        assert_eq!(a_provider.roots(), []);

        let set = manager
            .set_roots(&a, std::slice::from_ref(&a_root))
            .unwrap();
        assert_eq!(uris(set), [file_uri(&a_dir)]);
        manager
            .set_roots(&b, std::slice::from_ref(&b_root))
            .unwrap();
        assert_eq!(uris(a_provider.roots()), [file_uri(&a_dir)]);
        assert_eq!(uris(b_provider.roots()), [file_uri(&b_dir)]);

        // All or nothing: one bad root leaves the previous list in place.
        let err = manager
            .set_roots(&a, &[b_root.clone(), "relative".to_owned()])
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidRoot { ref client, ref root, .. }
            if client == "a" && root == "relative")
        );
        assert_eq!(uris(a_provider.roots()), [file_uri(&a_dir)]);

        // Changes are seen at once by an existing provider.
        manager.set_roots(&a, &[a_root, b_root]).unwrap();
        assert_eq!(
            uris(a_provider.roots()),
            [file_uri(&a_dir), file_uri(&b_dir)]
        );
        assert_eq!(uris(manager.clone().roots(&a)).len(), 2);

        manager.remove(&a);
        assert_eq!(a_provider.roots(), []);
        assert_eq!(uris(b_provider.roots()), [file_uri(&b_dir)]);
    }
}
