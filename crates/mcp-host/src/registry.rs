//! The tool, prompt and resource registries: exposed names, agent scopes, routing lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use mcp_host_foundation::{ClientId, Namespace, ToolFilter};
use mcp_session::protocol::{Prompt, Resource, ResourceTemplate, Tool};

use crate::naming;

/// What an agent may see and use: which clients, which of their tools, prompts and resources,
/// and whether only read-only tools.
///
/// Applied to listing, routing and calling alike (tools, prompts, resources and their
/// templates, subscriptions, completions): a component outside the scope does not exist for
/// the agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentScope {
    /// The clients the agent may use; `None` means all.
    pub allowed_clients: Option<BTreeSet<ClientId>>,
    /// Namespaced tool or prompt names, or resource URIs, hidden from the agent.
    pub excluded: BTreeSet<String>,
    /// Which tools, by the name the host exposes (`<client>__<name>`): names, or prefixes
    /// ending in `*`, allowed and denied. Default: all.
    pub tools: ToolFilter,
    /// Which prompts, by exposed name, in the same syntax. Default: all.
    pub prompts: ToolFilter,
    /// Which resources and resource templates, by URI (or URI template), in the same syntax.
    /// Default: all.
    pub resources: ToolFilter,
    /// Only tools annotated `readOnlyHint: true`.
    pub read_only: bool,
    /// Whom the tasks started through this scope belong to: a task is seen (polled, awaited,
    /// cancelled, listed) only through a scope with the same owner. The gateway sets its
    /// client's identity; `None` for a library user.
    pub owner: Option<String>,
}

impl AgentScope {
    /// The scope that sees everything.
    pub fn all() -> AgentScope {
        AgentScope::default()
    }

    /// Whether the agent may see component `name` of `client` (by client and exclusions only;
    /// the kind-specific filters are in [`AgentScope::permits_tool`] and the others).
    pub fn permits(&self, client: &ClientId, name: &str) -> bool {
        let client_allowed = self
            .allowed_clients
            .as_ref()
            .is_none_or(|allowed| allowed.contains(client));
        client_allowed && !self.excluded.contains(name)
    }

    /// Whether the agent may see and call `tool` of `client`, exposed as `name`.
    pub fn permits_tool(&self, client: &ClientId, name: &str, tool: &Tool) -> bool {
        self.permits(client, name)
            && self.tools.allows(name)
            && (!self.read_only || is_read_only(tool))
    }

    /// Whether the agent may see and get prompt `name` of `client`.
    pub fn permits_prompt(&self, client: &ClientId, name: &str) -> bool {
        self.permits(client, name) && self.prompts.allows(name)
    }

    /// Whether the agent may see, read and subscribe to resource `uri` (or template) of
    /// `client`.
    pub fn permits_resource(&self, client: &ClientId, uri: &str) -> bool {
        self.permits(client, uri) && self.resources.allows(uri)
    }
}

/// Whether a tool says it does not change anything (`annotations.readOnlyHint: true`).
pub fn is_read_only(tool: &Tool) -> bool {
    tool.annotations
        .as_ref()
        .and_then(|annotations| annotations.get("readOnlyHint"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// A component with a name unique within its server.
pub trait Named: Clone {
    /// What the component is called in log lines.
    const KIND: &'static str;
    /// The name the server gave it.
    fn original_name(&self) -> &str;
    /// Whether `scope` lets an agent see and use it, exposed as `name` by `client`.
    fn in_scope(&self, scope: &AgentScope, client: &ClientId, name: &str) -> bool;
}

impl Named for Tool {
    const KIND: &'static str = "tool";
    fn original_name(&self) -> &str {
        &self.name
    }
    fn in_scope(&self, scope: &AgentScope, client: &ClientId, name: &str) -> bool {
        scope.permits_tool(client, name, self)
    }
}

impl Named for Prompt {
    const KIND: &'static str = "prompt";
    fn original_name(&self) -> &str {
        &self.name
    }
    fn in_scope(&self, scope: &AgentScope, client: &ClientId, name: &str) -> bool {
        scope.permits_prompt(client, name)
    }
}

/// A component as the host exposes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Registered<T> {
    /// The name it is exposed under: `<client>__<name>`, or its own name for a client that is
    /// not namespaced (see [`naming::exposed`]).
    pub name: String,
    /// The client that offers it.
    pub client: ClientId,
    /// The component as the server described it (with its original name).
    pub item: T,
}

/// A registry of named components of all clients under namespaced names.
#[derive(Debug)]
pub struct NamedRegistry<T> {
    inner: RwLock<Entries<T>>,
}

/// The registry of tools.
pub type ToolManager = NamedRegistry<Tool>;
/// The registry of prompts.
pub type PromptManager = NamedRegistry<Prompt>;

/// How one client's components are named: its `namespace` mode and its aliases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Naming {
    /// `true`, `false` or `"auto"` in the configuration.
    pub namespace: Namespace,
    /// Exposed names by original name.
    pub aliases: BTreeMap<String, String>,
}

impl Naming {
    /// The naming of a client configured so.
    pub fn of(config: &mcp_host_foundation::ClientConfig) -> Naming {
        Naming {
            namespace: config.namespace,
            aliases: config.aliases.clone(),
        }
    }
}

#[derive(Debug)]
struct Entries<T> {
    /// What each client registered, and in which order clients first registered.
    clients: BTreeMap<ClientId, ClientEntry<T>>,
    next_seq: u64,
    /// The exposed names, computed from `clients` by [`rebuild`].
    by_name: BTreeMap<String, Registered<T>>,
    by_client: HashMap<ClientId, Vec<String>>,
}

#[derive(Debug)]
struct ClientEntry<T> {
    /// When the client first registered (kept while it re-registers): who came first keeps a
    /// name two clients want.
    seq: u64,
    naming: Naming,
    items: Vec<T>,
}

impl<T> Default for NamedRegistry<T> {
    fn default() -> NamedRegistry<T> {
        NamedRegistry {
            inner: RwLock::new(Entries {
                clients: BTreeMap::new(),
                next_seq: 0,
                by_name: BTreeMap::new(),
                by_client: HashMap::new(),
            }),
        }
    }
}

impl<T: Named> NamedRegistry<T> {
    /// An empty registry.
    pub fn new() -> NamedRegistry<T> {
        NamedRegistry::default()
    }

    /// Registers (or replaces) the components of `client`; returns how many were registered.
    ///
    /// Names follow the client's [`Naming`]: an alias if it has one; with
    /// [`Namespace::Always`] `<client>__<name>`; with [`Namespace::Never`] its own (sanitized)
    /// name; with [`Namespace::Auto`] its own name unless another client exposes the same one,
    /// then `<client>__<name>`. A name that would contain the separator `__` is namespaced
    /// whatever the mode, so that a server's own names never take another client's namespaced
    /// ones. A name another client took first (an alias or a `Never` name, or a namespaced name
    /// two ids sanitize to) gets the hashed `<client>__<name>_<hash>` instead; a duplicate
    /// within one server is skipped. Both are logged.
    ///
    /// The names of every client are worked out again, so an `Auto` client's name may change
    /// when another client comes or goes.
    pub fn register_client(&self, client: &ClientId, naming: &Naming, items: Vec<T>) -> usize {
        let mut entries = write(&self.inner);
        let mut seen = BTreeSet::new();
        let items: Vec<T> = items
            .into_iter()
            .filter(|item| {
                let fresh = seen.insert(item.original_name().to_owned());
                if !fresh {
                    tracing::warn!(client = %client, kind = T::KIND, name = %item.original_name(), "server listed a component twice; keeping the first");
                }
                fresh
            })
            .collect();
        let seq = match entries.clients.get(client) {
            Some(entry) => entry.seq,
            None => {
                entries.next_seq += 1;
                entries.next_seq
            }
        };
        entries.clients.insert(
            client.clone(),
            ClientEntry {
                seq,
                naming: naming.clone(),
                items,
            },
        );
        rebuild(&mut entries, Some(client));
        entries.by_client.get(client).map_or(0, Vec::len)
    }

    /// Removes every component of `client`; returns how many there were.
    pub fn unregister_client(&self, client: &ClientId) -> usize {
        let mut entries = write(&self.inner);
        let n_removed = entries.by_client.get(client).map_or(0, Vec::len);
        if entries.clients.remove(client).is_some() {
            rebuild(&mut entries, None);
        }
        n_removed
    }

    /// Every component the agent may see, sorted by namespaced name.
    pub fn list(&self, scope: &AgentScope) -> Vec<Registered<T>> {
        read(&self.inner)
            .by_name
            .values()
            .filter(|entry| entry.item.in_scope(scope, &entry.client, &entry.name))
            .cloned()
            .collect()
    }

    /// Where a call to a namespaced name goes, if the agent may use it: the client and the
    /// component's original name (cheaper than [`NamedRegistry::resolve`], which clones the
    /// whole component).
    pub fn route(&self, name: &str, scope: &AgentScope) -> Option<(ClientId, String)> {
        read(&self.inner)
            .by_name
            .get(name)
            .filter(|entry| entry.item.in_scope(scope, &entry.client, &entry.name))
            .map(|entry| (entry.client.clone(), entry.item.original_name().to_owned()))
    }

    /// Finds a component by namespaced name, if the agent may use it.
    pub fn resolve(&self, name: &str, scope: &AgentScope) -> Option<Registered<T>> {
        read(&self.inner)
            .by_name
            .get(name)
            .filter(|entry| entry.item.in_scope(scope, &entry.client, &entry.name))
            .cloned()
    }

    /// How many components `client` has registered.
    pub fn count(&self, client: &ClientId) -> usize {
        read(&self.inner).by_client.get(client).map_or(0, Vec::len)
    }
}

/// The name a component asks for before collisions between clients are settled.
enum Wanted {
    /// A name with the separator: namespaced, or own name made so.
    Namespaced(String),
    /// A plain name that the component keeps against `Auto` claims (an alias, a `Never` name).
    Kept(String),
    /// A plain name that yields to any other client wanting it (`Auto`).
    Yielding(String),
}

/// Works out every exposed name from what the clients registered; logs the collisions of
/// `logged` (the client that just registered), so that one registration is one set of lines.
fn rebuild<T: Named>(entries: &mut Entries<T>, logged: Option<&ClientId>) {
    let mut clients: Vec<(&ClientId, &ClientEntry<T>)> = entries.clients.iter().collect();
    clients.sort_by_key(|(_, entry)| entry.seq);
    let wanted: Vec<Vec<Wanted>> = clients
        .iter()
        .map(|(client, entry)| {
            entry
                .items
                .iter()
                .map(|item| wanted_name(client, &entry.naming, item.original_name()))
                .collect()
        })
        .collect();
    // Which clients want each plain name.
    let mut plain_wanted_by: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for (client_idx, names) in wanted.iter().enumerate() {
        for name in names {
            if let Wanted::Kept(plain) | Wanted::Yielding(plain) = name {
                plain_wanted_by
                    .entry(plain.as_str())
                    .or_default()
                    .insert(client_idx);
            }
        }
    }
    let mut by_name: BTreeMap<String, Registered<T>> = BTreeMap::new();
    let mut by_client: HashMap<ClientId, Vec<String>> = HashMap::new();
    for (client_idx, ((client, entry), names)) in clients.iter().zip(&wanted).enumerate() {
        let log = logged == Some(*client);
        let mut exposed_names = Vec::with_capacity(entry.items.len());
        for (item, want) in entry.items.iter().zip(names) {
            let original = item.original_name();
            let plain = match want {
                Wanted::Namespaced(name) | Wanted::Kept(name) => name.clone(),
                Wanted::Yielding(name) => {
                    let shared = plain_wanted_by
                        .get(name.as_str())
                        .is_some_and(|wanting| wanting.iter().any(|idx| *idx != client_idx));
                    if shared {
                        if log {
                            tracing::info!(client = %client, kind = T::KIND, name = %original, "another server exposes the same name; namespaced");
                        }
                        naming::namespaced(client.as_str(), original)
                    } else {
                        name.clone()
                    }
                }
            };
            let name = if by_name.contains_key(&plain) {
                let other = naming::disambiguated(client.as_str(), original);
                if log {
                    tracing::warn!(client = %client, kind = T::KIND, name = %original, taken = %plain, exposed_as = %other, "name collision");
                }
                other
            } else {
                plain
            };
            if by_name.contains_key(&name) {
                if log {
                    tracing::warn!(client = %client, kind = T::KIND, name = %original, "name collision could not be resolved; component skipped");
                }
                continue;
            }
            by_name.insert(
                name.clone(),
                Registered {
                    name: name.clone(),
                    client: (*client).clone(),
                    item: item.clone(),
                },
            );
            exposed_names.push(name);
        }
        by_client.insert((*client).clone(), exposed_names);
    }
    entries.by_name = by_name;
    entries.by_client = by_client;
}

/// The name component `original` of `client` asks for under `naming`.
fn wanted_name(client: &ClientId, naming: &Naming, original: &str) -> Wanted {
    if let Some(alias) = naming.aliases.get(original) {
        // Checked when the configuration was: plain characters, no separator.
        let alias = naming::sanitize(alias);
        if !alias.is_empty() && !alias.contains(naming::SEPARATOR) {
            return Wanted::Kept(alias);
        }
    }
    let own = match naming.namespace {
        Namespace::Always => {
            return Wanted::Namespaced(naming::namespaced(client.as_str(), original))
        }
        Namespace::Never | Namespace::Auto => naming::exposed(client.as_str(), original, false),
    };
    if own.contains(naming::SEPARATOR) {
        Wanted::Namespaced(own)
    } else if naming.namespace == Namespace::Auto {
        Wanted::Yielding(own)
    } else {
        Wanted::Kept(own)
    }
}

impl NamedRegistry<Tool> {
    /// [`NamedRegistry::route`] for a tool, with its output schema if it declares one.
    pub fn route_tool(
        &self,
        name: &str,
        scope: &AgentScope,
    ) -> Option<(ClientId, String, Option<serde_json::Value>)> {
        read(&self.inner)
            .by_name
            .get(name)
            .filter(|entry| entry.item.in_scope(scope, &entry.client, &entry.name))
            .map(|entry| {
                (
                    entry.client.clone(),
                    entry.item.name.clone(),
                    entry.item.output_schema.clone(),
                )
            })
    }
}

/// The registry of resources and resource templates, routed by URI.
///
/// Resource URIs are global names, so they are not namespaced: a URI is routed to the first
/// client (by id order) that listed it, and otherwise to a client whose template matches it.
#[derive(Debug, Default)]
pub struct ResourceManager {
    inner: RwLock<ResourceEntries>,
}

#[derive(Debug, Default)]
struct ResourceEntries {
    resources: BTreeMap<ClientId, Vec<Resource>>,
    templates: BTreeMap<ClientId, Vec<ResourceTemplate>>,
}

impl ResourceManager {
    /// An empty registry.
    pub fn new() -> ResourceManager {
        ResourceManager::default()
    }

    /// Registers (or replaces) the resources and templates of `client`.
    pub fn register_client(
        &self,
        client: &ClientId,
        resources: Vec<Resource>,
        templates: Vec<ResourceTemplate>,
    ) -> usize {
        let mut entries = write(&self.inner);
        let n_registered = resources.len() + templates.len();
        entries.resources.insert(client.clone(), resources);
        entries.templates.insert(client.clone(), templates);
        n_registered
    }

    /// Removes every resource and template of `client`; returns how many there were.
    pub fn unregister_client(&self, client: &ClientId) -> usize {
        let mut entries = write(&self.inner);
        let n_resources = entries.resources.remove(client).map_or(0, |r| r.len());
        let n_templates = entries.templates.remove(client).map_or(0, |t| t.len());
        n_resources + n_templates
    }

    /// Every resource the agent may see, with its client, in client order.
    pub fn list(&self, scope: &AgentScope) -> Vec<(ClientId, Resource)> {
        let entries = read(&self.inner);
        entries
            .resources
            .iter()
            .flat_map(|(client, resources)| {
                resources
                    .iter()
                    .filter(|resource| scope.permits_resource(client, &resource.uri))
                    .map(|resource| (client.clone(), resource.clone()))
            })
            .collect()
    }

    /// Every resource template the agent may see, with its client.
    pub fn list_templates(&self, scope: &AgentScope) -> Vec<(ClientId, ResourceTemplate)> {
        let entries = read(&self.inner);
        entries
            .templates
            .iter()
            .flat_map(|(client, templates)| {
                templates
                    .iter()
                    .filter(|template| scope.permits_resource(client, &template.uri_template))
                    .map(|template| (client.clone(), template.clone()))
            })
            .collect()
    }

    /// The client that serves `uri` for this agent: one that listed it, else one whose template
    /// matches it.
    pub fn route(&self, uri: &str, scope: &AgentScope) -> Option<ClientId> {
        let entries = read(&self.inner);
        let listed = entries.resources.iter().find(|(client, resources)| {
            scope.permits_resource(client, uri)
                && resources.iter().any(|resource| resource.uri == uri)
        });
        if let Some((client, _)) = listed {
            return Some(client.clone());
        }
        entries
            .templates
            .iter()
            .find(|(client, templates)| {
                templates.iter().any(|template| {
                    scope.permits_resource(client, &template.uri_template)
                        && scope.permits_resource(client, uri)
                        && template_matches(&template.uri_template, uri)
                })
            })
            .map(|(client, _)| client.clone())
    }

    /// The client whose resource template is exactly `uri_template`, for this agent (what
    /// `completion/complete` with a `ref/resource` names); the first by id order when several
    /// list it.
    pub fn route_template(&self, uri_template: &str, scope: &AgentScope) -> Option<ClientId> {
        let entries = read(&self.inner);
        entries
            .templates
            .iter()
            .find(|(client, templates)| {
                scope.permits_resource(client, uri_template)
                    && templates
                        .iter()
                        .any(|template| template.uri_template == uri_template)
            })
            .map(|(client, _)| client.clone())
    }

    /// How many resources and templates `client` has registered.
    pub fn count(&self, client: &ClientId) -> usize {
        let entries = read(&self.inner);
        entries.resources.get(client).map_or(0, Vec::len)
            + entries.templates.get(client).map_or(0, Vec::len)
    }
}

/// Whether `uri` can be produced by the RFC 6570 template: literal parts must match in order,
/// each `{…}` expression matches any non-empty text.
fn template_matches(template: &str, uri: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literals.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return false,
        }
    }
    let tail = rest;
    let Some((first, middle)) = literals.split_first() else {
        return template == uri;
    };
    let Some(mut remaining) = uri.strip_prefix(first) else {
        return false;
    };
    for literal in middle {
        if literal.is_empty() {
            continue;
        }
        // The expression before this literal must match at least one character.
        match remaining.get(1..).and_then(|after| after.find(literal)) {
            Some(idx) => remaining = &remaining[idx + 1 + literal.len()..],
            None => return false,
        }
    }
    if tail.is_empty() {
        !remaining.is_empty()
    } else {
        remaining.len() > tail.len() && remaining.ends_with(tail)
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Tool {
        serde_json::from_value(
            serde_json::json!({ "name": name, "inputSchema": {"type": "object"} }),
        )
        .unwrap()
    }

    fn id(text: &str) -> ClientId {
        ClientId::new(text).unwrap()
    }

    fn always() -> Naming {
        Naming::default()
    }

    fn never() -> Naming {
        Naming {
            namespace: Namespace::Never,
            ..Naming::default()
        }
    }

    fn auto() -> Naming {
        Naming {
            namespace: Namespace::Auto,
            ..Naming::default()
        }
    }

    fn names(tools: &ToolManager) -> Vec<String> {
        tools
            .list(&AgentScope::all())
            .into_iter()
            .map(|tool| tool.name)
            .collect()
    }

    #[test]
    fn namespacing_collisions_and_scopes() {
        let tools = ToolManager::new();
        assert_eq!(
            tools.register_client(&id("a.b"), &always(), vec![tool("t"), tool("t"), tool("u")]),
            2
        );
        assert_eq!(
            tools.register_client(&id("a_b"), &always(), vec![tool("t")]),
            1
        );
        let names: Vec<String> = tools
            .list(&AgentScope::all())
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"a_b__t".to_owned()));
        assert!(names.contains(&"a_b__u".to_owned()));
        let hashed = names
            .iter()
            .find(|name| name.starts_with("a_b__t_"))
            .unwrap();
        let routed = tools.resolve(hashed, &AgentScope::all()).unwrap();
        assert_eq!(routed.client, id("a_b"));
        assert_eq!(routed.item.name, "t");

        let scope = AgentScope {
            allowed_clients: Some([id("a.b")].into_iter().collect()),
            excluded: ["a_b__u".to_owned()].into_iter().collect(),
            ..AgentScope::default()
        };
        let visible: Vec<String> = tools.list(&scope).into_iter().map(|t| t.name).collect();
        assert_eq!(visible, vec!["a_b__t".to_owned()]);
        assert!(tools.resolve("a_b__u", &scope).is_none());
        assert!(tools.resolve(hashed, &scope).is_none());

        assert_eq!(tools.unregister_client(&id("a.b")), 2);
        assert_eq!(tools.count(&id("a.b")), 0);
        assert_eq!(tools.list(&AgentScope::all()).len(), 1);
    }

    #[test]
    fn unprefixed_names_and_collisions() {
        let tools = ToolManager::new();
        assert_eq!(
            tools.register_client(&id("plain"), &never(), vec![tool("t"), tool("x.y")]),
            2
        );
        assert_eq!(
            tools.register_client(&id("other"), &never(), vec![tool("t")]),
            1
        );
        assert_eq!(
            tools.register_client(&id("x"), &always(), vec![tool("y")]),
            1
        );
        let names: Vec<String> = tools
            .list(&AgentScope::all())
            .into_iter()
            .map(|t| t.name)
            .collect();
        // `plain` came first and keeps `t`; `other` falls back to the hashed namespaced name;
        // `x__y` is free because `plain`'s `x.y` is exposed as `x_y`.
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"t".to_owned()));
        assert!(names.contains(&"x_y".to_owned()));
        assert!(names.contains(&"x__y".to_owned()));
        let hashed = names
            .iter()
            .find(|name| name.starts_with("other__t_"))
            .unwrap();
        assert_eq!(
            tools.route("t", &AgentScope::all()),
            Some((id("plain"), "t".to_owned()))
        );
        assert_eq!(
            tools.route("x_y", &AgentScope::all()),
            Some((id("plain"), "x.y".to_owned()))
        );
        assert_eq!(
            tools.route(hashed, &AgentScope::all()),
            Some((id("other"), "t".to_owned()))
        );
        // Re-registering keeps the names: the plain name stays with its holder.
        tools.register_client(&id("other"), &never(), vec![tool("t")]);
        assert_eq!(
            tools.route("t", &AgentScope::all()),
            Some((id("plain"), "t".to_owned()))
        );
    }

    #[test]
    fn a_server_without_namespace_cannot_take_a_namespaced_name() {
        let tools = ToolManager::new();
        // `plain` registers first, as it would while `github` is restarting.
        tools.register_client(
            &id("plain"),
            &never(),
            vec![tool("github__create_issue"), tool("github._create_issue")],
        );
        assert_eq!(
            tools.route("github__create_issue", &AgentScope::all()),
            None
        );
        tools.register_client(&id("github"), &always(), vec![tool("create_issue")]);
        assert_eq!(
            tools.route("github__create_issue", &AgentScope::all()),
            Some((id("github"), "create_issue".to_owned()))
        );
        assert_eq!(
            tools.route("plain__github__create_issue", &AgentScope::all()),
            Some((id("plain"), "github__create_issue".to_owned()))
        );
        // Both of `plain`'s names are reachable, in its own namespace.
        assert_eq!(tools.count(&id("plain")), 2);
        assert!(tools
            .list(&AgentScope::all())
            .iter()
            .filter(|tool| tool.client == id("plain"))
            .all(|tool| tool.name.starts_with("plain__")));
    }

    #[test]
    fn auto_namespaces_only_where_names_collide() {
        let tools = ToolManager::new();
        tools.register_client(&id("a"), &auto(), vec![tool("search"), tool("only_a")]);
        assert_eq!(names(&tools), ["only_a", "search"]);
        // A second server with the same name: both are namespaced, whoever came first.
        tools.register_client(&id("b"), &auto(), vec![tool("search"), tool("only_b")]);
        assert_eq!(
            names(&tools),
            ["a__search", "b__search", "only_a", "only_b"]
        );
        // It goes: the name is plain again.
        tools.unregister_client(&id("b"));
        assert_eq!(names(&tools), ["only_a", "search"]);
        // A server that keeps its names (`false`) keeps the shared one; `auto` yields.
        tools.register_client(&id("c"), &never(), vec![tool("search")]);
        assert_eq!(names(&tools), ["a__search", "only_a", "search"]);
        assert_eq!(
            tools.route("search", &AgentScope::all()),
            Some((id("c"), "search".to_owned()))
        );
        // Namespaced servers never collide with plain names.
        tools.register_client(&id("d"), &always(), vec![tool("only_a")]);
        assert!(names(&tools).contains(&"d__only_a".to_owned()));
        assert!(names(&tools).contains(&"only_a".to_owned()));
        // The separator rule holds in `auto` too.
        tools.register_client(&id("e"), &auto(), vec![tool("github__create_issue")]);
        assert!(names(&tools).contains(&"e__github__create_issue".to_owned()));
    }

    #[test]
    fn aliases_rename_whatever_the_mode() {
        let tools = ToolManager::new();
        let mut naming = always();
        naming
            .aliases
            .insert("get_time".to_owned(), "clock".to_owned());
        tools.register_client(
            &id("time"),
            &naming,
            vec![tool("get_time"), tool("convert")],
        );
        assert_eq!(names(&tools), ["clock", "time__convert"]);
        assert_eq!(
            tools.route("clock", &AgentScope::all()),
            Some((id("time"), "get_time".to_owned()))
        );
        // An `auto` name yields to an alias; a second alias of the same name is hashed.
        tools.register_client(&id("other"), &auto(), vec![tool("clock")]);
        assert_eq!(names(&tools), ["clock", "other__clock", "time__convert"]);
        let mut late = never();
        late.aliases.insert("now".to_owned(), "clock".to_owned());
        tools.register_client(&id("late"), &late, vec![tool("now")]);
        let all = names(&tools);
        assert!(
            all.iter().any(|name| name.starts_with("late__now_")),
            "{all:?}"
        );
        assert_eq!(
            tools.route("clock", &AgentScope::all()),
            Some((id("time"), "get_time".to_owned()))
        );
    }

    #[track_caller]
    fn check_template(template: &str, uri: &str, expect: bool) {
        assert_eq!(
            template_matches(template, uri),
            expect,
            "{template} vs {uri}"
        );
    }

    #[test]
    fn templates() {
        check_template("mem://item/{id}", "mem://item/7", true);
        check_template("mem://item/{id}", "mem://item/", false);
        check_template("mem://item/{id}", "mem://other/7", false);
        check_template("file:///{path}.txt", "file:///a/b.txt", true);
        check_template("file:///{path}.txt", "file:///a/b.md", false);
        check_template("x://{a}/{b}", "x://1/2", true);
        check_template("x://{a}/{b}", "x://1", false);
        check_template("x://fixed", "x://fixed", true);
    }
}
