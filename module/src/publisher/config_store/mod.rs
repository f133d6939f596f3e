//! The running publisher configuration: what is published, kept in `publishednodes.json`.
//!
//! The store is the one source of truth the engine follows (`subscribe`). Every change, from
//! the configuration API or from a hand edit of the file, goes through the same gate: the
//! whole resulting configuration must plan (`publisher::plan`), or it is refused and the
//! running configuration stays. Accepted API changes are written back atomically in the 2.9
//! file form with credentials sealed (`crypto`); the file is polled so hand edits apply within
//! a second or two.
//!
//! Methods are synchronous (they fsync): async callers run them on the blocking pool.

mod crypto;
mod file;
mod identity;
mod packed;
mod report;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opcua::types::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::api::{parse_published_nodes, ConfigFileError, OpcNodeModel, PublishedNodesEntryModel};
use crate::error::{ErrorKind, ServiceError};
use crate::publisher::plan::{check, PlanError};

pub use crypto::CryptoError;
pub use identity::{same_data_set, same_node};
pub use packed::PackedEntries;
pub use report::render_prometheus;

/// File name used when `--pf` is not given, under the data directory.
pub const DEFAULT_FILE_NAME: &str = "publishednodes.json";
/// The credential key, under the data directory.
pub const KEY_FILE_NAME: &str = "config.key";
/// How often the file is checked for hand edits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

const ENCRYPTED_USERNAME: &str = "EncryptedAuthUsername";
const ENCRYPTED_PASSWORD: &str = "EncryptedAuthPassword";

/// A configuration as the engine sees it: credentials in clear, no `Encrypted*` members.
pub type Entries = Arc<Vec<PublishedNodesEntryModel>>;

/// Why a configuration or a change to it was refused. Messages name the entry and the
/// member at fault and never carry a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: ConfigFileError,
    },
    #[error("{context}: {}", join(.errors))]
    Invalid {
        context: String,
        errors: Vec<PlanError>,
    },
    #[error("entry {index} ({endpoint}): {source}")]
    Credentials {
        index: usize,
        endpoint: String,
        #[source]
        source: CryptoError,
    },
    #[error(transparent)]
    Key(CryptoError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    EndpointNotFound(String),
    #[error("{0}")]
    NodesNotFound(String),
    /// The in-memory form of the configuration did not round-trip (a bug, never input).
    #[error("the running configuration could not be decoded: {0}")]
    Memory(String),
}

fn join(errors: &[PlanError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The configuration API's answer for each refusal: bad input is 400, a writer or node that
/// is not configured is 404 (as OPC Publisher answers), trouble with our own files is 500.
impl From<ConfigError> for ServiceError {
    fn from(e: ConfigError) -> Self {
        let message = e.to_string();
        match e {
            ConfigError::Io { .. } | ConfigError::Key(_) | ConfigError::Memory(_) => {
                ServiceError::internal(message)
            }
            ConfigError::File { .. } => {
                ServiceError::bad_request(StatusCode::BadDecodingError, message)
            }
            ConfigError::Invalid { .. } | ConfigError::BadRequest(_) => {
                ServiceError::bad_request(StatusCode::BadInvalidArgument, message)
            }
            ConfigError::Credentials { .. } => {
                ServiceError::bad_request(StatusCode::BadIdentityTokenInvalid, message)
            }
            ConfigError::EndpointNotFound(_) => ServiceError::not_found(message),
            ConfigError::NodesNotFound(_) => {
                ServiceError::new(ErrorKind::NotFound, StatusCode::BadNodeIdUnknown, message)
            }
        }
    }
}

struct State {
    entries: PackedEntries,
    /// What the file looked like when last read or written.
    stamp: Option<file::FileStamp>,
    hash: Option<file::ContentHash>,
    /// The file holds a hand edit that was refused; it is saved aside before being replaced.
    file_invalid: bool,
}

pub struct ConfigStore {
    path: PathBuf,
    cipher: crypto::CredentialCipher,
    state: Mutex<State>,
    tx: watch::Sender<PackedEntries>,
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Moves a 2.5 top-level `NodeId` into `OpcNodes`, so node operations see one list.
fn with_nodes_list(mut e: PublishedNodesEntryModel) -> PublishedNodesEntryModel {
    if let Some(legacy) = e.node_id.take() {
        e.opc_nodes.get_or_insert_with(Vec::new).insert(
            0,
            OpcNodeModel {
                id: Some(legacy.identifier),
                ..Default::default()
            },
        );
    }
    e
}

fn node_count(e: &PublishedNodesEntryModel) -> usize {
    e.opc_nodes.as_ref().map_or(0, Vec::len) + usize::from(e.node_id.is_some())
}

/// How an error names the writer a request meant.
fn describe(e: &PublishedNodesEntryModel) -> String {
    format!(
        "EndpointUrl '{}', DataSetWriterGroup '{}', DataSetWriterId '{}'",
        e.endpoint_url,
        e.data_set_writer_group.as_deref().unwrap_or(""),
        e.data_set_writer_id.as_deref().unwrap_or("")
    )
}

fn validate(context: &str, entries: &[PublishedNodesEntryModel]) -> Result<(), ConfigError> {
    check(entries).map_err(|errors| ConfigError::Invalid {
        context: context.to_string(),
        errors,
    })
}

fn require_endpoint(e: &PublishedNodesEntryModel, method: &str) -> Result<(), ConfigError> {
    if e.endpoint_url.trim().is_empty() {
        return Err(ConfigError::BadRequest(format!(
            "{method}: EndpointUrl is required"
        )));
    }
    Ok(())
}

impl ConfigStore {
    /// Loads the configuration from `pf_file` (default `{data_dir}/publishednodes.json`). A
    /// missing file is an empty configuration, created at the first change; a file that does
    /// not parse, does not plan or holds credentials sealed with another key is refused, so
    /// the module does not start on a configuration the user did not mean.
    pub fn open(pf_file: Option<PathBuf>, data_dir: &Path) -> Result<Arc<Self>, ConfigError> {
        let path = pf_file.unwrap_or_else(|| data_dir.join(DEFAULT_FILE_NAME));
        let cipher = crypto::CredentialCipher::new(data_dir.join(KEY_FILE_NAME));
        let (tx, _) = watch::channel(PackedEntries::default());
        let store = Self {
            path,
            cipher,
            state: Mutex::new(State {
                entries: PackedEntries::default(),
                stamp: None,
                hash: None,
                file_invalid: false,
            }),
            tx,
        };
        let io = |source| ConfigError::Io {
            path: store.path.clone(),
            source,
        };
        match file::read(&store.path).map_err(io)? {
            None => info!(
                path = %store.path.display(),
                "no publisher configuration file yet; it is created at the first change"
            ),
            Some((bytes, stamp)) => {
                let entries = store.load(&bytes)?;
                info!(path = %store.path.display(), entries = entries.len(), "publisher configuration loaded");
                let mut st = store.lock();
                st.stamp = Some(stamp);
                st.hash = Some(file::hash(&bytes));
                st.entries = PackedEntries::pack(&entries)?;
                store.tx.send_replace(st.entries.clone());
            }
        }
        Ok(Arc::new(store))
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Follows the running configuration; the engine re-plans on every change.
    pub fn subscribe(&self) -> watch::Receiver<PackedEntries> {
        self.tx.subscribe()
    }

    /// The running configuration (credentials in clear; in memory only), decoded afresh.
    pub fn entries(&self) -> Result<Entries, ConfigError> {
        let packed = self.packed();
        packed.unpack().map(Arc::new)
    }

    /// The running configuration in its compact form (cheap: a shared buffer).
    pub fn packed(&self) -> PackedEntries {
        self.lock().entries.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written (it is replaced
        // whole), so the data is still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses, opens the credentials of and validates a file's text.
    fn load(&self, bytes: &[u8]) -> Result<Vec<PublishedNodesEntryModel>, ConfigError> {
        let text = String::from_utf8_lossy(bytes);
        let parsed = parse_published_nodes(&text).map_err(|source| ConfigError::File {
            path: self.path.clone(),
            source,
        })?;
        let mut clear_credentials = false;
        let entries = parsed
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                clear_credentials |= e.opc_authentication_password.is_some()
                    || e.opc_authentication_username.is_some();
                self.admit(i, e)
            })
            .collect::<Result<Vec<_>, _>>()?;
        validate(&self.path.display().to_string(), &entries)?;
        if clear_credentials {
            warn!(
                path = %self.path.display(),
                "the configuration file holds credentials in clear; they are written encrypted at the next change"
            );
        }
        Ok(entries)
    }

    /// Opens sealed credentials into the clear members. A clear value present beside a
    /// sealed one wins: it is what a user typed last.
    fn admit(
        &self,
        index: usize,
        mut e: PublishedNodesEntryModel,
    ) -> Result<PublishedNodesEntryModel, ConfigError> {
        let sealed_user = e.encrypted_auth_username.take();
        let sealed_password = e.encrypted_auth_password.take();
        let fail = |e: &PublishedNodesEntryModel, source| ConfigError::Credentials {
            index,
            endpoint: e.endpoint_url.clone(),
            source,
        };
        if let Some(s) = sealed_user.filter(|_| e.opc_authentication_username.is_none()) {
            let clear = self
                .cipher
                .open(ENCRYPTED_USERNAME, &s)
                .map_err(|err| fail(&e, err))?;
            e.opc_authentication_username = Some(clear);
        }
        if let Some(s) = sealed_password.filter(|_| e.opc_authentication_password.is_none()) {
            let clear = self
                .cipher
                .open(ENCRYPTED_PASSWORD, &s)
                .map_err(|err| fail(&e, err))?;
            e.opc_authentication_password = Some(clear);
        }
        Ok(e)
    }

    /// The at-rest form of an entry: clear credentials replaced by sealed ones.
    fn seal(&self, e: &PublishedNodesEntryModel) -> Result<PublishedNodesEntryModel, ConfigError> {
        let mut out = e.clone();
        if let Some(user) = out.opc_authentication_username.take() {
            out.encrypted_auth_username = Some(
                self.cipher
                    .seal(ENCRYPTED_USERNAME, &user)
                    .map_err(ConfigError::Key)?,
            );
        }
        if let Some(password) = out.opc_authentication_password.take() {
            out.encrypted_auth_password = Some(
                self.cipher
                    .seal(ENCRYPTED_PASSWORD, &password)
                    .map_err(ConfigError::Key)?,
            );
        }
        Ok(out)
    }

    /// Validates, persists and publishes a new configuration, in that order, so that a
    /// refused or unwritable change leaves both the file and the running configuration alone.
    fn commit(
        &self,
        st: &mut State,
        entries: Vec<PublishedNodesEntryModel>,
    ) -> Result<(), ConfigError> {
        validate("the resulting configuration", &entries)?;
        let sealed = entries
            .iter()
            .map(|e| self.seal(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut bytes = serde_json::to_vec_pretty(&sealed).map_err(|e| ConfigError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        let io = |source| ConfigError::Io {
            path: self.path.clone(),
            source,
        };
        if st.file_invalid {
            // Keep the user's refused edit rather than silently overwrite it.
            let aside = self.path.with_extension("json.invalid");
            match std::fs::copy(&self.path, &aside) {
                Ok(_) => warn!(
                    path = %self.path.display(),
                    saved = %aside.display(),
                    "the configuration file held a refused edit; it was saved aside before the API change was written"
                ),
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "could not save the refused edit aside")
                }
            }
        }
        let stamp = file::write_atomic(&self.path, &bytes).map_err(io)?;
        st.stamp = Some(stamp);
        st.hash = Some(file::hash(&bytes));
        st.file_invalid = false;
        st.entries = PackedEntries::pack(&entries)?;
        self.tx.send_replace(st.entries.clone());
        info!(
            path = %self.path.display(),
            entries = st.entries.len(),
            "publisher configuration changed"
        );
        Ok(())
    }

    /// PublishNodes: adds the request's nodes to the data set writer it names (see
    /// `identity::same_data_set`), or creates that writer. A node already published there
    /// (same node id, browse path and publishing interval) takes the request's settings
    /// instead of being listed twice. Other writers and writer groups are left as they are
    /// (2.9.17 documents that groups not in the request are removed; nobody wants that).
    pub fn publish_nodes(&self, request: PublishedNodesEntryModel) -> Result<(), ConfigError> {
        let request = with_nodes_list(self.admit(0, request)?);
        require_endpoint(&request, "PublishNodes")?;
        let nodes = request.opc_nodes.clone().unwrap_or_default();
        if nodes.is_empty() {
            return Err(ConfigError::BadRequest(
                "PublishNodes: OpcNodes must list at least one node".into(),
            ));
        }
        validate("PublishNodes request", std::slice::from_ref(&request))?;
        let mut st = self.lock();
        let mut entries = st.entries.unpack()?;
        match entries.iter_mut().find(|e| same_data_set(e, &request)) {
            Some(existing) => {
                *existing = with_nodes_list(std::mem::take(existing));
                let list = existing.opc_nodes.get_or_insert_with(Vec::new);
                for node in nodes {
                    match list.iter_mut().find(|n| same_node(n, &node)) {
                        Some(slot) => *slot = node,
                        None => list.push(node),
                    }
                }
            }
            None => entries.push(request),
        }
        self.commit(&mut st, entries)
    }

    /// UnpublishNodes: removes the listed nodes from the writer the request names; a writer
    /// left without nodes is removed, and a request without nodes removes the whole writer
    /// (2.5 behaviour). Nothing changes unless every listed node is found (404 naming the
    /// missing ones). A request node without a publishing interval matches the node at any
    /// interval.
    pub fn unpublish_nodes(&self, request: PublishedNodesEntryModel) -> Result<(), ConfigError> {
        let request = with_nodes_list(self.admit(0, request)?);
        require_endpoint(&request, "UnpublishNodes")?;
        let remove = request.opc_nodes.clone().unwrap_or_default();
        let mut st = self.lock();
        let mut entries = st.entries.unpack()?;
        if !entries.iter().any(|e| same_data_set(e, &request)) {
            return Err(ConfigError::EndpointNotFound(format!(
                "UnpublishNodes: no configured data set writer matches {}",
                describe(&request)
            )));
        }
        if remove.is_empty() {
            entries.retain(|e| !same_data_set(e, &request));
            return self.commit(&mut st, entries);
        }
        let missing: Vec<&str> = remove
            .iter()
            .filter(|r| {
                !entries
                    .iter()
                    .filter(|e| same_data_set(e, &request))
                    .any(|e| {
                        with_nodes_list(e.clone())
                            .opc_nodes
                            .unwrap_or_default()
                            .iter()
                            .any(|n| identity::request_names_node(r, n))
                    })
            })
            .map(identity::node_id)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::NodesNotFound(format!(
                "UnpublishNodes: not published in the writer ({}): {}",
                describe(&request),
                missing.join(", ")
            )));
        }
        let entries = entries
            .into_iter()
            .filter_map(|e| {
                if !same_data_set(&e, &request) {
                    return Some(e);
                }
                let mut e = with_nodes_list(e);
                if let Some(list) = e.opc_nodes.as_mut() {
                    list.retain(|n| !remove.iter().any(|r| identity::request_names_node(r, n)));
                }
                (node_count(&e) > 0).then_some(e)
            })
            .collect();
        self.commit(&mut st, entries)
    }

    /// UnpublishAllNodes: removes the writer the request names, or everything when there is
    /// no request or its EndpointUrl is empty (2.5 behaviour). A request that lists nodes is
    /// refused, as OPC Publisher documents, because it almost always meant UnpublishNodes.
    pub fn unpublish_all_nodes(
        &self,
        request: Option<PublishedNodesEntryModel>,
    ) -> Result<(), ConfigError> {
        let mut st = self.lock();
        let request = match request.filter(|r| !r.endpoint_url.trim().is_empty()) {
            None => return self.commit(&mut st, Vec::new()),
            Some(r) => self.admit(0, r)?,
        };
        if node_count(&request) > 0 {
            return Err(ConfigError::BadRequest(
                "UnpublishAllNodes takes no OpcNodes; use UnpublishNodes to remove single nodes"
                    .into(),
            ));
        }
        let mut entries = st.entries.unpack()?;
        let before = entries.len();
        entries.retain(|e| !same_data_set(e, &request));
        if entries.len() == before {
            return Err(ConfigError::EndpointNotFound(format!(
                "UnpublishAllNodes: no configured data set writer matches {}",
                describe(&request)
            )));
        }
        self.commit(&mut st, entries)
    }

    /// AddOrUpdateEndpoints: each request entry replaces the writer it names (nodes and all),
    /// or is added; an entry with no nodes removes its writer, and one that names no
    /// configured writer fails the whole request with 404. Two entries naming the same
    /// writer are a 400. All or nothing: the configuration changes only if every entry can
    /// be applied.
    pub fn add_or_update_endpoints(
        &self,
        request: Vec<PublishedNodesEntryModel>,
    ) -> Result<(), ConfigError> {
        let request = request
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.admit(i, e).map(with_nodes_list))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, e) in request.iter().enumerate() {
            require_endpoint(e, &format!("AddOrUpdateEndpoints entry {i}"))?;
            if let Some(j) = request[..i].iter().position(|p| same_data_set(p, e)) {
                return Err(ConfigError::BadRequest(format!(
                    "AddOrUpdateEndpoints: entries {j} and {i} name the same data set writer"
                )));
            }
        }
        validate("AddOrUpdateEndpoints request", &request)?;
        let mut st = self.lock();
        let mut entries = st.entries.unpack()?;
        for removal in request.iter().filter(|e| node_count(e) == 0) {
            let before = entries.len();
            entries.retain(|e| !same_data_set(e, removal));
            if entries.len() == before {
                return Err(ConfigError::EndpointNotFound(format!(
                    "AddOrUpdateEndpoints: cannot remove, no configured data set writer matches {}",
                    describe(removal)
                )));
            }
        }
        for update in request.into_iter().filter(|e| node_count(e) > 0) {
            match entries.iter().position(|e| same_data_set(e, &update)) {
                Some(pos) => {
                    entries.retain(|e| !same_data_set(e, &update));
                    entries.insert(pos.min(entries.len()), update);
                }
                None => entries.push(update),
            }
        }
        self.commit(&mut st, entries)
    }

    /// SetConfiguredEndpoints: replaces the whole configuration (an empty list clears it).
    pub fn set_configured_endpoints(
        &self,
        request: Vec<PublishedNodesEntryModel>,
    ) -> Result<(), ConfigError> {
        let request = request
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.admit(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        validate("SetConfiguredEndpoints request", &request)?;
        let mut st = self.lock();
        self.commit(&mut st, request)
    }

    /// GetConfiguredEndpoints: the entries as persisted (credentials sealed, never in clear),
    /// without their nodes unless `include_nodes`. Sealed values can be sent back as they
    /// are to name a writer in the other methods.
    pub fn get_configured_endpoints(
        &self,
        include_nodes: bool,
    ) -> Result<Vec<PublishedNodesEntryModel>, ConfigError> {
        self.entries()?
            .iter()
            .map(|e| {
                let mut e = self.seal(e)?;
                if !include_nodes {
                    e.opc_nodes = None;
                    e.node_id = None;
                }
                Ok(e)
            })
            .collect()
    }

    /// GetConfiguredNodesOnEndpoint: the nodes of the writer the request names (404 if none).
    pub fn get_configured_nodes_on_endpoint(
        &self,
        request: PublishedNodesEntryModel,
    ) -> Result<Vec<OpcNodeModel>, ConfigError> {
        let request = self.admit(0, request)?;
        require_endpoint(&request, "GetConfiguredNodesOnEndpoint")?;
        let entries = self.entries()?;
        let matching: Vec<_> = entries
            .iter()
            .filter(|e| same_data_set(e, &request))
            .collect();
        if matching.is_empty() {
            return Err(ConfigError::EndpointNotFound(format!(
                "GetConfiguredNodesOnEndpoint: no configured data set writer matches {}",
                describe(&request)
            )));
        }
        Ok(matching
            .into_iter()
            .flat_map(|e| with_nodes_list(e.clone()).opc_nodes.unwrap_or_default())
            .collect())
    }

    /// Applies a hand edit of the file, if there is one. `Ok(true)` when a new configuration
    /// was applied. A refused file leaves the running configuration (and the file) as they
    /// are and is reported once, not on every poll. A deleted file also leaves the running
    /// configuration: deleting is more often a mistake than a wish to stop publishing, and
    /// the next change writes the file again.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let mut st = self.lock();
        let io = |source| ConfigError::Io {
            path: self.path.clone(),
            source,
        };
        let stamp = file::stamp(&self.path).map_err(io)?;
        if stamp == st.stamp {
            return Ok(false);
        }
        let Some((bytes, stamp)) = file::read(&self.path).map_err(io)? else {
            if st.stamp.take().is_some() {
                warn!(path = %self.path.display(), "the configuration file was removed; publishing continues unchanged");
            }
            st.hash = None;
            return Ok(false);
        };
        st.stamp = Some(stamp);
        let hash = file::hash(&bytes);
        if st.hash == Some(hash) {
            return Ok(false);
        }
        st.hash = Some(hash);
        match self.load(&bytes) {
            Ok(entries) => {
                st.file_invalid = false;
                // Compared packed: unpacking the running one would hold two parsed copies.
                let packed = PackedEntries::pack(&entries)?;
                drop(entries);
                if packed == st.entries {
                    return Ok(false);
                }
                st.entries = packed;
                self.tx.send_replace(st.entries.clone());
                Ok(true)
            }
            Err(e) => {
                st.file_invalid = true;
                Err(e)
            }
        }
    }

    /// Polls the file every `every` until `shutdown` (or until the store is dropped).
    pub fn spawn_watcher(
        self: &Arc<Self>,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let Some(store) = weak.upgrade() else { return };
                let path = store.path.clone();
                match tokio::task::spawn_blocking(move || store.reload()).await {
                    Ok(Ok(true)) => {
                        info!(path = %path.display(), "hand edit of the publisher configuration applied")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => error!(
                        path = %path.display(),
                        error = %e,
                        "hand edit of the publisher configuration refused; the running configuration stays"
                    ),
                    Err(e) => error!(error = %e, "configuration file check failed"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
