//! The stateless revision 2026-07-28 on the gateway's side: requests without a session, each
//! carrying the protocol version, the client's capabilities and identity in its `_meta`.
//!
//! This module checks such a request (its `_meta`, its version against the
//! `MCP-Protocol-Version` header, its method) and answers `server/discover`; the HTTP module
//! sends every other request through a connection kept per gateway client, with the request's
//! id made unique there and given back in the answer. Clients of this revision need no session
//! at all, so any replica serves any request.
//!
//! Not carried yet: `subscriptions/listen` (the gateway advertises no `listChanged` in this
//! revision, so clients re-list when they want), multi-round-trip results (`input_required`),
//! and the logging level of `_meta` (the gateway relays no log messages in this revision).
//!
//! Tasks are not served here: a task belongs to the session that created it, and this revision
//! has none (its tasks are an extension with another shape). A task-augmented `tools/call` is
//! refused with -32602, saying to open a session of revision 2025-11-25 for tasks, and
//! `server/discover` offers no `tasks`.

use axum::http::{HeaderMap, StatusCode};
use mcp_session::protocol::{
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO, STATELESS_PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
};
use serde_json::{json, Value};

/// The methods a client of revision 2026-07-28 may send through the gateway.
const METHODS: [&str; 8] = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];

/// The methods whose results are cacheable in revision 2026-07-28 (`ttlMs`, `cacheScope`).
pub(crate) const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Gives a result what revision 2026-07-28 requires of it: `resultType`, and for a cacheable
/// one `ttlMs` (0: stale at once, as the gateway's lists change with its servers) and
/// `cacheScope` (`private`: what a client sees depends on its policy).
pub(crate) fn complete_result(result: &mut Value, cacheable: bool) {
    let Some(result) = result.as_object_mut() else {
        return;
    };
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if cacheable {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
}

/// The methods whose target (`params.name`, or `params.uri`) is also in the `Mcp-Name` header.
const NAMED: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Removes what only this revision's envelope carries (`_meta` keys under
/// `io.modelcontextprotocol/`) before the request goes on to servers that may speak another;
/// the progress token stays.
pub(crate) fn strip_envelope(message: &mut Value) {
    if let Some(meta) = message["params"]
        .get_mut("_meta")
        .and_then(Value::as_object_mut)
    {
        meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
        if meta.is_empty() {
            if let Some(params) = message["params"].as_object_mut() {
                params.remove("_meta");
            }
        }
    }
}

/// In this revision a resource that does not exist is invalid params (-32602), with its URI.
pub(crate) fn error_code(code: i64) -> i64 {
    if code == -32002 {
        -32602
    } else {
        code
    }
}

/// JSON-RPC error codes of revision 2026-07-28.
const HEADER_MISMATCH: i64 = -32020;
const UNSUPPORTED_VERSION: i64 = -32022;

/// Whether a POST without a session is a request of revision 2026-07-28: it says so in its
/// `_meta` or in its `MCP-Protocol-Version` header, or it is `server/discover`.
pub(crate) fn is_stateless(headers: &HeaderMap, message: &Value) -> bool {
    let header = headers
        .get("mcp-protocol-version")
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    let meta_version = message["params"]["_meta"].get(META_PROTOCOL_VERSION);
    message["method"] == "server/discover"
        || meta_version.is_some()
        || header.is_some_and(|version| !SUPPORTED_PROTOCOL_VERSIONS.contains(&version))
}

/// What to do with a stateless request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Answer with this HTTP status and JSON-RPC error.
    Refuse {
        status: StatusCode,
        code: i64,
        message: String,
        data: Option<Value>,
    },
    /// Answer `server/discover`.
    Discover,
    /// Send it on to the host.
    Forward,
}

/// Checks a request of revision 2026-07-28.
pub(crate) fn check(headers: &HeaderMap, message: &Value) -> Verdict {
    let refuse = |status, code, message: &str, data| Verdict::Refuse {
        status,
        code,
        message: message.to_owned(),
        data,
    };
    let Some(meta) = message["params"].get("_meta").and_then(Value::as_object) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            -32602,
            "invalid params: a request of revision 2026-07-28 carries _meta",
            None,
        );
    };
    let Some(version) = meta.get(META_PROTOCOL_VERSION).and_then(Value::as_str) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            -32602,
            &format!("invalid params: _meta has no {META_PROTOCOL_VERSION}"),
            None,
        );
    };
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            -32602,
            &format!("invalid params: _meta has no {META_CLIENT_CAPABILITIES}"),
            None,
        );
    }
    let header = headers
        .get("mcp-protocol-version")
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    if header != Some(version) {
        return refuse(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "header mismatch: MCP-Protocol-Version must equal the _meta protocol version",
            Some(json!({ "header": header, "meta": version })),
        );
    }
    if version != STATELESS_PROTOCOL_VERSION {
        return refuse(
            StatusCode::BAD_REQUEST,
            UNSUPPORTED_VERSION,
            &format!("unsupported protocol version `{version}`"),
            Some(json!({ "supported": [STATELESS_PROTOCOL_VERSION], "requested": version })),
        );
    }
    let method = message["method"].as_str().unwrap_or_default();
    let named = headers
        .get("mcp-method")
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    if named != Some(method) {
        return refuse(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "header mismatch: the Mcp-Method header must be present and equal the request's method",
            Some(json!({ "header": named, "method": method })),
        );
    }
    // The request's target (a tool or prompt's name, a resource's URI) is in Mcp-Name too.
    let target = message["params"]["name"]
        .as_str()
        .or_else(|| message["params"]["uri"].as_str());
    if let Some(target) = target.filter(|_| NAMED.contains(&method)) {
        let header = headers
            .get("mcp-name")
            .and_then(|value| value.to_str().ok())
            .map(str::trim);
        if header != Some(target) {
            return refuse(
                StatusCode::BAD_REQUEST,
                HEADER_MISMATCH,
                "header mismatch: the Mcp-Name header must be present and equal the request's name or URI",
                Some(json!({ "header": header, "name": target })),
            );
        }
    }
    if method == "server/discover" {
        return Verdict::Discover;
    }
    if !METHODS.contains(&method) {
        return refuse(
            StatusCode::NOT_FOUND,
            -32601,
            &format!("method not found: {method}"),
            None,
        );
    }
    if method == "tools/call" && message["params"].get("task").is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            -32602,
            "invalid params: the mcp-host gateway runs tasks only in sessions (revision 2025-11-25); call the tool without `task`, or open a session to run it as a task",
            None,
        );
    }
    Verdict::Forward
}

/// The answer to `server/discover`: the versions, the gateway's capabilities and who it is.
pub(crate) fn discover_result(capabilities: Value, instructions: Option<&str>) -> Value {
    let mut versions = vec![STATELESS_PROTOCOL_VERSION];
    versions.extend_from_slice(SUPPORTED_PROTOCOL_VERSIONS);
    let mut result = json!({
        "supportedVersions": versions,
        "capabilities": capabilities,
        "_meta": {
            META_SERVER_INFO: { "name": "mcp-host", "version": env!("CARGO_PKG_VERSION") }
        }
    });
    if let Some(instructions) = instructions {
        result["instructions"] = json!(instructions);
    }
    complete_result(&mut result, true);
    result
}

/// The capabilities the gateway offers in revision 2026-07-28: those of revision 2025-11-25
/// without what needs a session (log levels, subscriptions, `listChanged`, tasks).
pub(crate) fn capabilities(session_capabilities: &Value) -> Value {
    let mut capabilities = session_capabilities.clone();
    if let Some(object) = capabilities.as_object_mut() {
        object.remove("logging");
        object.remove("tasks");
        for kind in ["tools", "prompts", "resources"] {
            if let Some(capability) = object.get_mut(kind).and_then(Value::as_object_mut) {
                capability.remove("listChanged");
                capability.remove("subscribe");
            }
        }
    }
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(version: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(version) = version {
            headers.insert(
                "mcp-protocol-version",
                HeaderValue::from_str(version).unwrap(),
            );
        }
        headers
    }

    fn with_method(mut headers: HeaderMap, method: &str) -> HeaderMap {
        headers.insert("mcp-method", HeaderValue::from_str(method).unwrap());
        headers
    }

    fn request(method: &str, meta: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}})
    }

    fn meta(version: &str) -> Value {
        json!({ META_PROTOCOL_VERSION: version, META_CLIENT_CAPABILITIES: {} })
    }

    #[track_caller]
    fn refused(verdict: Verdict) -> (u16, i64) {
        match verdict {
            Verdict::Refuse { status, code, .. } => (status.as_u16(), code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_checked_in_the_spec_order() {
        let v = STATELESS_PROTOCOL_VERSION;
        assert!(matches!(
            check(
                &with_method(headers(Some(v)), "server/discover"),
                &request("server/discover", meta(v))
            ),
            Verdict::Discover
        ));
        assert!(matches!(
            check(
                &with_method(headers(Some(v)), "tools/list"),
                &request("tools/list", meta(v))
            ),
            Verdict::Forward
        ));
        // Mcp-Method and Mcp-Name must be there and match.
        assert_eq!(
            refused(check(&headers(Some(v)), &request("tools/list", meta(v)))),
            (400, HEADER_MISMATCH)
        );
        let mut call = request("tools/call", meta(v));
        call["params"]["name"] = json!("a__echo");
        let call_headers = with_method(headers(Some(v)), "tools/call");
        assert_eq!(refused(check(&call_headers, &call)), (400, HEADER_MISMATCH));
        let mut named = call_headers.clone();
        named.insert("mcp-name", HeaderValue::from_static(" a__echo "));
        assert!(matches!(check(&named, &call), Verdict::Forward));
        // Tasks need a session.
        let mut task_call = call.clone();
        task_call["params"]["task"] = json!({});
        assert_eq!(refused(check(&named, &task_call)), (400, -32602));
        for method in ["tasks/get", "tasks/list"] {
            assert_eq!(
                refused(check(
                    &with_method(headers(Some(v)), method),
                    &request(method, meta(v))
                )),
                (404, -32601)
            );
        }
        let no_meta = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}});
        assert_eq!(refused(check(&headers(Some(v)), &no_meta)), (400, -32602));
        let no_capabilities = request("server/discover", json!({ META_PROTOCOL_VERSION: v }));
        assert_eq!(
            refused(check(&headers(Some(v)), &no_capabilities)),
            (400, -32602)
        );
        // The header says one version, `_meta` another: a mismatch, before anything else.
        assert_eq!(
            refused(check(
                &headers(Some(v)),
                &request("server/discover", meta("v999.0.0"))
            )),
            (400, HEADER_MISMATCH)
        );
        assert_eq!(
            refused(check(&headers(None), &request("server/discover", meta(v)))),
            (400, HEADER_MISMATCH)
        );
        assert_eq!(
            refused(check(
                &headers(Some("v999.0.0")),
                &request("server/discover", meta("v999.0.0"))
            )),
            (400, UNSUPPORTED_VERSION)
        );
        for removed in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "unknown/method",
        ] {
            assert_eq!(
                refused(check(
                    &with_method(headers(Some(v)), removed),
                    &request(removed, meta(v))
                )),
                (404, -32601)
            );
        }
    }

    #[test]
    fn discover_names_the_gateway_and_drops_session_capabilities() {
        let capabilities = capabilities(&json!({
            "tools": {"listChanged": true}, "logging": {}, "resources": {"subscribe": true, "listChanged": true},
            "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
        }));
        assert_eq!(capabilities, json!({"tools": {}, "resources": {}}));
        let result = discover_result(capabilities, Some("hello"));
        assert_eq!(result["supportedVersions"][0], STATELESS_PROTOCOL_VERSION);
        assert_eq!(result["_meta"][META_SERVER_INFO]["name"], "mcp-host");
        assert_eq!(result["instructions"], "hello");
    }
}

#[cfg(test)]
mod envelope_tests {
    use super::*;

    #[test]
    fn the_envelope_does_not_go_downstream() {
        let mut message = json!({"params": {"_meta": {META_PROTOCOL_VERSION: "2026-07-28", "progressToken": 3}, "x": 1}});
        strip_envelope(&mut message);
        assert_eq!(
            message,
            json!({"params": {"_meta": {"progressToken": 3}, "x": 1}})
        );
        let mut message = json!({"params": {"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}});
        strip_envelope(&mut message);
        assert_eq!(message, json!({"params": {}}));
    }
}
