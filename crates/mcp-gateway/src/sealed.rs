//! Sessions that any replica can serve: what a session needs to serve a POST, sealed into its
//! `Mcp-Session-Id` with a key the replicas share.
//!
//! The id is `base64url(key id ‖ nonce ‖ AES-256-GCM(state))`: the negotiated protocol
//! version, the client's capabilities (sampling, elicitation and its modes, roots), the gateway client it
//! belongs to, when it expires, and 8 random bytes. It is opaque, visible ASCII and at most
//! 255 characters. A replica that does not know a session opens its id and rebuilds the
//! session locally (an `initialize` replayed into a fresh connection), so a load balancer needs
//! no stickiness and a dead replica loses only the calls it was running.
//!
//! What cannot move stays on one replica and degrades cleanly: the GET stream and the
//! resumption of a broken request stream, the log level a client set, its resource
//! subscriptions (a client re-subscribes where it lands), and its tasks (they run where they
//! were created; elsewhere their ids are unknown). A DELETE ends a session on the
//! replica that gets it and deny-lists the id there; elsewhere a sealed id lives until it
//! expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use mcp_session::protocol::SUPPORTED_PROTOCOL_VERSIONS;
use serde_json::{json, Value};

/// The longest client name a sealed id carries.
const MAX_CLIENT_NAME: usize = 128;
/// How many ended sessions a replica remembers (the oldest are forgotten first).
const MAX_DENIED: usize = 100_000;

/// The replicas' shared keys: the first seals, every one opens (for rotation).
pub struct SessionKeys {
    keys: Vec<(u8, LessSafeKey)>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("SessionKeys")
            .field("key_ids", &ids)
            .finish()
    }
}

impl SessionKeys {
    /// Reads keys from text: `ID:KEY[,ID:KEY…]`, each KEY 32 bytes in base64 (or 64 hex
    /// digits) and each ID a number from 0 to 255; the first seals new sessions, all of them
    /// open ids. A lone KEY is key 0. The text is a secret: errors never quote it.
    ///
    /// # Errors
    ///
    /// What is wrong with which entry (by position).
    pub fn parse(text: &str) -> Result<SessionKeys, String> {
        let mut keys = Vec::new();
        for (position, entry) in text.split(',').map(str::trim).enumerate() {
            let (id, key) = match entry.split_once(':') {
                Some((id, key)) => (
                    id.trim().parse::<u8>().map_err(|_| {
                        format!("key {}: its id is not a number from 0 to 255", position + 1)
                    })?,
                    key.trim(),
                ),
                None => (0, entry),
            };
            let bytes = decode_key(key)
                .ok_or_else(|| format!("key {}: not 32 bytes in base64 or hex", position + 1))?;
            if keys.iter().any(|(other, _)| *other == id) {
                return Err(format!("key {}: the id {id} is given twice", position + 1));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| format!("key {}: not a usable key", position + 1))?;
            keys.push((id, LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err("no key".to_owned());
        }
        Ok(SessionKeys { keys })
    }

    /// A new session's id, carrying `state`.
    pub(crate) fn seal(&self, state: &SealedState) -> Option<String> {
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let mut sealed = state.encode()?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([*id]),
            &mut sealed,
        )
        .ok()?;
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        bytes.push(*id);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The state a session id carries, if one of the keys sealed it (and nobody changed it).
    pub(crate) fn open(&self, session_id: &str) -> Option<SealedState> {
        if session_id.len() > 255 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(session_id)
            .ok()?;
        let (&id, rest) = bytes.split_first()?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (_, key) = self.keys.iter().find(|(key_id, _)| *key_id == id)?;
        let mut sealed = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = key
            .open_in_place(nonce, Aad::from([id]), &mut sealed)
            .ok()?;
        SealedState::decode(plain)
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        (0..32)
            .map(|idx| u8::from_str_radix(&text[idx * 2..idx * 2 + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .ok()?
    };
    bytes.try_into().ok()
}

/// What a sealed session id carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedState {
    /// The negotiated protocol revision.
    pub(crate) protocol_version: String,
    /// The client declared `sampling`.
    pub(crate) sampling: bool,
    /// The client declared `elicitation`.
    pub(crate) elicitation: bool,
    /// The client declared `elicitation.form` (without it and `elicitation.url`, an
    /// `elicitation` is form only).
    pub(crate) elicitation_form: bool,
    /// The client declared `elicitation.url`.
    pub(crate) elicitation_url: bool,
    /// The client declared `roots`.
    pub(crate) roots: bool,
    /// The gateway client (policy name) the session belongs to.
    pub(crate) client: String,
    /// When it ends, in seconds since the Unix epoch.
    pub(crate) expires: u64,
}

const SAMPLING: u8 = 1;
const ELICITATION: u8 = 1 << 1;
const ROOTS: u8 = 1 << 2;
// Added with URL-mode elicitation: ids sealed before have neither, which reads as they meant
// (`elicitation: {}`, form only).
const ELICITATION_FORM: u8 = 1 << 3;
const ELICITATION_URL: u8 = 1 << 4;

impl SealedState {
    /// The state of a session an `initialize` request (its params) opens for `client`,
    /// living `ttl`.
    pub(crate) fn from_initialize(params: &Value, client: &str, ttl: Duration) -> SealedState {
        let requested = params["protocolVersion"].as_str().unwrap_or_default();
        let protocol_version = if SUPPORTED_PROTOCOL_VERSIONS.contains(&requested) {
            requested
        } else {
            mcp_session::protocol::LATEST_PROTOCOL_VERSION
        };
        let capabilities = &params["capabilities"];
        SealedState {
            protocol_version: protocol_version.to_owned(),
            sampling: capabilities.get("sampling").is_some(),
            elicitation: capabilities.get("elicitation").is_some(),
            elicitation_form: capabilities.pointer("/elicitation/form").is_some(),
            elicitation_url: capabilities.pointer("/elicitation/url").is_some(),
            roots: capabilities.get("roots").is_some(),
            client: client.to_owned(),
            expires: now_secs().saturating_add(ttl.as_secs()),
        }
    }

    /// Whether it has expired.
    pub(crate) fn expired(&self) -> bool {
        now_secs() >= self.expires
    }

    /// The `initialize` that rebuilds the session on another replica.
    pub(crate) fn initialize_request(&self) -> Value {
        let mut capabilities = serde_json::Map::new();
        if self.sampling {
            capabilities.insert("sampling".to_owned(), json!({}));
        }
        if self.elicitation {
            let mut modes = serde_json::Map::new();
            if self.elicitation_form {
                modes.insert("form".to_owned(), json!({}));
            }
            if self.elicitation_url {
                modes.insert("url".to_owned(), json!({}));
            }
            capabilities.insert("elicitation".to_owned(), serde_json::Value::Object(modes));
        }
        if self.roots {
            capabilities.insert("roots".to_owned(), json!({}));
        }
        json!({
            "jsonrpc": "2.0",
            "id": "mcp-host-resumed-session",
            "method": "initialize",
            "params": {
                "protocolVersion": self.protocol_version,
                "capabilities": capabilities,
                "clientInfo": {"name": "resumed session", "version": "0"}
            }
        })
    }

    /// The `initialize` of the connection stateless requests go through (revision 2025-11-25
    /// inside the gateway; the client's capabilities travel with each request).
    pub(crate) fn stateless_initialize_request() -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": "mcp-host-stateless",
            "method": "initialize",
            "params": {
                "protocolVersion": mcp_session::protocol::LATEST_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "stateless requests", "version": "0"}
            }
        })
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let version = SUPPORTED_PROTOCOL_VERSIONS
            .iter()
            .position(|version| *version == self.protocol_version)?;
        let client = self.client.as_bytes();
        if client.len() > MAX_CLIENT_NAME {
            return None;
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).ok()?;
        let mut bytes = Vec::with_capacity(19 + client.len());
        bytes.push(u8::try_from(version).ok()?);
        let mut flags = 0;
        for (set, flag) in [
            (self.sampling, SAMPLING),
            (self.elicitation, ELICITATION),
            (self.roots, ROOTS),
            (self.elicitation_form, ELICITATION_FORM),
            (self.elicitation_url, ELICITATION_URL),
        ] {
            if set {
                flags |= flag;
            }
        }
        bytes.push(flags);
        bytes.extend_from_slice(&self.expires.to_be_bytes());
        bytes.extend_from_slice(&random);
        bytes.push(u8::try_from(client.len()).ok()?);
        bytes.extend_from_slice(client);
        Some(bytes)
    }

    fn decode(bytes: &[u8]) -> Option<SealedState> {
        let (&version, rest) = bytes.split_first()?;
        let (&flags, rest) = rest.split_first()?;
        let expires = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let rest = rest.get(16..)?;
        let (&len, rest) = rest.split_first()?;
        let client = std::str::from_utf8(rest.get(..usize::from(len))?).ok()?;
        Some(SealedState {
            protocol_version: (*SUPPORTED_PROTOCOL_VERSIONS.get(usize::from(version))?).to_owned(),
            sampling: flags & SAMPLING != 0,
            elicitation: flags & ELICITATION != 0,
            elicitation_form: flags & ELICITATION_FORM != 0,
            elicitation_url: flags & ELICITATION_URL != 0,
            roots: flags & ROOTS != 0,
            client: client.to_owned(),
            expires,
        })
    }
}

/// Sealed sessions this replica saw ended (DELETE), until they would have expired anyway.
#[derive(Debug, Default)]
pub(crate) struct DenyList {
    ended: Mutex<HashMap<String, u64>>,
}

impl DenyList {
    pub(crate) fn deny(&self, session_id: &str, expires: u64) {
        let mut ended = lock(&self.ended);
        if ended.len() >= MAX_DENIED {
            let now = now_secs();
            ended.retain(|_, expires| *expires > now);
            if ended.len() >= MAX_DENIED {
                // Still full of live entries: forget the one that expires first.
                if let Some(first) = ended
                    .iter()
                    .min_by_key(|(_, expires)| **expires)
                    .map(|(id, _)| id.clone())
                {
                    ended.remove(&first);
                }
            }
        }
        ended.insert(session_id.to_owned(), expires);
    }

    pub(crate) fn is_denied(&self, session_id: &str) -> bool {
        lock(&self.ended).contains_key(session_id)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "2:ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";

    fn state() -> SealedState {
        SealedState::from_initialize(
            &json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}, "roots": {"listChanged": true}}}),
            "ci-bot",
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn a_sealed_id_opens_to_its_state_and_stays_short() {
        let keys = SessionKeys::parse(KEY_A).unwrap();
        let id = keys.seal(&state()).unwrap();
        assert!(id.len() <= 255, "{}", id.len());
        assert!(id.bytes().all(|byte| byte.is_ascii_graphic()));
        let opened = keys.open(&id).unwrap();
        assert_eq!(opened, state_with_expiry(opened.expires));
        assert!(!opened.expired());
        // Two sessions never share an id.
        assert_ne!(keys.seal(&state()).unwrap(), id);
        // A long client name still fits.
        let mut long = state();
        long.client = "x".repeat(MAX_CLIENT_NAME);
        assert!(keys.seal(&long).unwrap().len() <= 255);
    }

    fn state_with_expiry(expires: u64) -> SealedState {
        SealedState { expires, ..state() }
    }

    #[test]
    fn tampered_foreign_and_rotated_ids() {
        let a = SessionKeys::parse(KEY_A).unwrap();
        let b = SessionKeys::parse(KEY_B).unwrap();
        let id = a.seal(&state()).unwrap();
        assert!(b.open(&id).is_none(), "another key must not open it");
        let mut tampered = id.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(a.open(std::str::from_utf8(&tampered).unwrap()).is_none());
        assert!(a.open("not-base64!").is_none());
        assert!(a.open("").is_none());
        // Rotation: B seals now, A still opens the old ids.
        let rotated = SessionKeys::parse(&format!("{KEY_B},{KEY_A}")).unwrap();
        assert!(rotated.open(&id).is_some());
        let new_id = rotated.seal(&state()).unwrap();
        assert!(b.open(&new_id).is_some());
        assert!(a.open(&new_id).is_none());
    }

    #[test]
    fn keys_are_checked_without_quoting_them() {
        let error = SessionKeys::parse("1:c2hvcnQ=").unwrap_err();
        assert!(
            error.contains("not 32 bytes") && !error.contains("c2hvcnQ"),
            "{error}"
        );
        assert!(SessionKeys::parse(&format!("{KEY_A},{KEY_A}")).is_err());
        assert!(SessionKeys::parse(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        )
        .is_ok());
    }

    #[test]
    fn elicitation_modes_survive_sealing_and_old_ids_read_as_form_only() {
        let keys = SessionKeys::parse(KEY_A).unwrap();
        for (declared, expected) in [
            (json!({"url": {}}), json!({"url": {}})),
            (
                json!({"form": {}, "url": {}}),
                json!({"form": {}, "url": {}}),
            ),
            (json!({}), json!({})),
        ] {
            let state = SealedState::from_initialize(
                &json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": declared}}),
                "ci-bot",
                Duration::from_secs(3600),
            );
            let opened = keys.open(&keys.seal(&state).unwrap()).unwrap();
            assert_eq!(opened, state);
            let replayed = opened.initialize_request();
            assert_eq!(replayed["params"]["capabilities"]["elicitation"], expected);
        }
        // An id sealed before the modes were: its flags byte has only the first three bits.
        let mut old = state();
        old.elicitation = true;
        let mut bytes = old.encode().unwrap();
        bytes[1] &= SAMPLING | ELICITATION | ROOTS;
        let decoded = SealedState::decode(&bytes).unwrap();
        assert!(decoded.elicitation && !decoded.elicitation_url && !decoded.elicitation_form);
        assert_eq!(
            decoded.initialize_request()["params"]["capabilities"]["elicitation"],
            json!({})
        );
    }

    #[test]
    fn the_deny_list_is_bounded() {
        let denied = DenyList::default();
        for idx in 0..MAX_DENIED + 10 {
            denied.deny(&idx.to_string(), now_secs() + 100 + idx as u64);
        }
        assert!(lock(&denied.ended).len() <= MAX_DENIED);
        assert!(denied.is_denied(&(MAX_DENIED + 9).to_string()));
    }
}
