//! The name that identifies a server in logs, errors and reports.

use std::fmt;
use std::sync::Arc;

/// The name of a server as the host knows it (its configuration id).
///
/// Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerName(Arc<str>);

impl ServerName {
    /// Creates a name from any text.
    pub fn new(name: impl AsRef<str>) -> ServerName {
        ServerName(Arc::from(name.as_ref()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ServerName {
    fn from(name: &str) -> ServerName {
        ServerName::new(name)
    }
}

impl From<String> for ServerName {
    fn from(name: String) -> ServerName {
        ServerName(Arc::from(name))
    }
}
