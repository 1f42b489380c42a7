//! The OAuth authorization of each remote client, kept across its reconnections.
//!
//! A client's [`mcp_auth::Authorizer`] holds its tokens and serializes their renewal, for every
//! request of the client's connection. [`AuthRegistry`] keeps one per client id while the client
//! runs (and while its URL and `auth` settings stay the same); a client that stops forgets it, and
//! its next start (a restart, a reload) builds it again from the token store, where the tokens
//! are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_auth::{AuthOptions, Authorizer, TokenStore};

use crate::{AuthSetting, ClientId, Error};

/// The authorizers of the remote clients, and where their tokens are kept.
///
/// Cheap to clone: clones share the authorizers.
#[derive(Clone, Debug)]
pub struct AuthRegistry {
    store: TokenStore,
    authorizers: Arc<Mutex<HashMap<ClientId, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    url: String,
    setting: AuthSetting,
    authorizer: Authorizer,
}

fn lock(map: &Mutex<HashMap<ClientId, Entry>>) -> MutexGuard<'_, HashMap<ClientId, Entry>> {
    match map.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl AuthRegistry {
    /// A registry whose tokens are kept in `store`.
    pub fn new(store: TokenStore) -> AuthRegistry {
        AuthRegistry {
            store,
            authorizers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Where tokens are kept.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The authorizer of client `id` at `url` with `setting` (resolved into `options`): the one
    /// it had, unless its URL or settings changed.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] when the settings are unusable.
    pub fn authorizer(
        &self,
        id: &ClientId,
        url: &str,
        setting: &AuthSetting,
        options: AuthOptions,
    ) -> Result<Authorizer, Error> {
        let mut authorizers = lock(&self.authorizers);
        if let Some(entry) = authorizers.get(id) {
            if entry.url == url && entry.setting == *setting {
                return Ok(entry.authorizer.clone());
            }
        }
        let authorizer =
            Authorizer::new(id.server_name().clone(), url, options, self.store.clone())
                .map_err(Error::Auth)?;
        authorizers.insert(
            id.clone(),
            Entry {
                url: url.to_owned(),
                setting: setting.clone(),
                authorizer: authorizer.clone(),
            },
        );
        Ok(authorizer)
    }

    /// Forgets the authorizer of a client that stopped.
    pub fn forget(&self, id: &ClientId) {
        lock(&self.authorizers).remove(id);
    }
}

impl Default for AuthRegistry {
    /// The user's token store ([`TokenStore::user`]).
    fn default() -> AuthRegistry {
        AuthRegistry::new(TokenStore::user())
    }
}
