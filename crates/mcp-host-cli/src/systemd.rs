//! Telling systemd how `serve` is doing (`Type=notify`): `READY=1` once every server started and
//! the listener is bound, `STOPPING=1` when the orderly shutdown begins.
//!
//! Only when systemd asked for it by setting `NOTIFY_SOCKET`; anything that goes wrong here is
//! logged at debug level and otherwise ignored, as the service works without it.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (such as `READY=1`) to systemd's notification socket, if there is one.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let path = path.as_encoded_bytes();
        match path.strip_prefix(b"@") {
            // An abstract socket: its name follows the `@`.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => {
                use std::os::unix::ffi::OsStrExt as _;
                socket.send_to(state.as_bytes(), std::ffi::OsStr::from_bytes(path))
            }
        }
    });
    if let Err(error) = sent {
        tracing::debug!(%error, state, "cannot notify systemd");
    }
}
