//! What servers tell the host's own clients: log messages and resource updates, relayed.

use mcp_host_foundation::ClientId;
use mcp_session::protocol::{LoggingMessage, Task};

/// A notification from a server that the host relays to whoever listens
/// ([`McpHost::subscribe_notifications`](crate::McpHost::subscribe_notifications)), such as the
/// gateway, which passes it on to its own client.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerNotification {
    /// The client whose server sent it.
    pub client: ClientId,
    /// What it says.
    pub kind: NotificationKind,
}

/// What a relayed notification says.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NotificationKind {
    /// `notifications/message`: a log message, as the server sent it.
    Log(LoggingMessage),
    /// `notifications/resources/updated`: a resource someone subscribed to changed.
    ResourceUpdated {
        /// The resource's URI.
        uri: String,
    },
    /// `notifications/tasks/status` of a task the host started, under the host's task id.
    TaskStatus(Task),
    /// `notifications/elicitation/complete`: a URL-mode elicitation's interaction is done.
    ElicitationComplete {
        /// The `elicitationId` it completes.
        elicitation_id: String,
    },
}
