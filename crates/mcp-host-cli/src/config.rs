//! Where the configuration comes from: `--config`, else `MCP_HOST_CONFIG`, else the embedded demo.
//!
//! The file format itself is `mcp_gateway::config`'s.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mcp_gateway::config::{self, ConfigFile};
use mcp_gateway::policy::GatewaySettings;
use mcp_host_foundation::ClientConfig;

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("the embedded demo configuration"),
        }
    }
}

/// A loaded configuration: the servers to run and the warnings met while reading it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) source: Source,
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) gateway: GatewaySettings,
    pub(crate) warnings: Vec<String>,
}

/// The configuration file to read, if any: `--config`, else `MCP_HOST_CONFIG`.
pub(crate) fn file(explicit: Option<&Path>) -> Option<PathBuf> {
    let from_env = std::env::var_os("MCP_HOST_CONFIG").map(PathBuf::from);
    explicit.map(Path::to_path_buf).or(from_env)
}

/// Loads the configuration: `--config`, else `MCP_HOST_CONFIG`, else the embedded demo.
pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<Loaded> {
    match file(explicit) {
        Some(path) => {
            let ConfigFile {
                servers,
                gateway,
                warnings,
                ..
            } = config::read(&path)?;
            Ok(Loaded {
                source: Source::File(path),
                clients: servers,
                gateway,
                warnings,
            })
        }
        None => Ok(Loaded {
            source: Source::Embedded,
            clients: embedded_demo()?,
            gateway: GatewaySettings::default(),
            warnings: Vec::new(),
        }),
    }
}

/// The embedded demo: two instances of the built-in demo server, run by this executable.
fn embedded_demo() -> anyhow::Result<Vec<ClientConfig>> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let exe = exe.to_string_lossy().into_owned();
    let demo = |id: &str| ClientConfig {
        args: vec!["demo-server".to_owned(), "--name".to_owned(), id.to_owned()],
        ..ClientConfig::new(id, exe.clone())
    };
    Ok(vec![demo("demo"), demo("notes")])
}
