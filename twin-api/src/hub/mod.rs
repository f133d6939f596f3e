//! The hub (issue 17): an identity registry of devices and modules with their twins, served
//! with IoT Hub's own service routes, JSON shapes, errors and shared-access-policy
//! authorisation, so Microsoft's service SDKs and scripts written for IoT Hub work against it
//! unchanged.
//!
//! Layers: `http` (routes, who may do what) → `identity` and `twin` (the rules, no I/O) and
//! `query` (the query language subset) → `store` (SQLite or PostgreSQL, the twin API's
//! database) with `secrets` sealing every key it keeps. `sas` is the token format both the
//! service routes and (next) the device endpoint verify.

mod bulk;
pub mod bus;
mod c2d;
pub mod deliveries;
pub mod edge_routes;
pub mod endpoint;
pub mod error;
mod files;
mod http;
pub mod identity;
pub mod messages;
pub mod publishers;
pub mod query;
pub mod replicas;
pub mod route;
/// IoT Hub's SAS tokens; they live in the contract crate, shared with the module.
pub use iiot_api::iothub::sas;
pub mod secrets;
mod sqlite_writer;
pub mod store;
mod stream;
pub mod twin;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::HubError;
pub(crate) use http::routes;

use secrets::HubKek;
use store::{HubStore, Policy, Right};

/// File in the data directory that receives the owner policy's service connection string.
pub const CONNECTION_STRING_FILE: &str = "hub-connection-string";
/// How long a device's `$edgeHub` routes are used before they are read again (a change
/// made through this replica applies at once).
const ROUTES_KEPT: std::time::Duration = std::time::Duration::from_secs(5);

/// Default file of the key-encryption key, in the data directory.
pub const KEK_FILE: &str = "hub.kek";

/// What the hub needs beyond the twin API's own settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The name devices and service clients know the hub by (`HostName=` of connection
    /// strings, the host of SAS resources).
    pub hostname: String,
    /// The key-encryption key file; replicas on one database must share it.
    pub kek_file: Option<PathBuf>,
    /// Port of the device endpoint (MQTT over TLS) on the twin API's address; `None`: no
    /// device endpoint.
    pub device_port: Option<u16>,
    /// Its server certificate and key; `None`: issued by the hub's own CA.
    pub server_cert: Option<endpoint::certs::ServerFiles>,
    /// CAs (and CRLs) that `certificateAuthority` devices chain to.
    pub trust: Option<PathBuf>,
    /// Most device connections at once.
    pub max_connections: usize,
    /// How long device messages are kept for the routes.
    pub retention: std::time::Duration,
    /// Publish every device message on the twin API's broker, on this topic template.
    pub route_topic: Option<route::TopicTemplate>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            kek_file: None,
            device_port: None,
            server_cert: None,
            trust: None,
            max_connections: 20_000,
            retention: std::time::Duration::from_secs(24 * 3600),
            route_topic: None,
        }
    }
}

/// The policies IoT Hub creates with every hub, with the same names and rights, so scripts
/// that name them work.
const DEFAULT_POLICIES: &[(&str, &[Right])] = &[
    (
        "iothubowner",
        &[
            Right::RegistryRead,
            Right::RegistryWrite,
            Right::ServiceConnect,
            Right::DeviceConnect,
        ],
    ),
    ("service", &[Right::ServiceConnect]),
    ("device", &[Right::DeviceConnect]),
    ("registryRead", &[Right::RegistryRead]),
    (
        "registryReadWrite",
        &[Right::RegistryRead, Right::RegistryWrite],
    ),
];

/// The running hub's state, shared by its routes and its device sessions.
pub struct Hub {
    pub(crate) store: HubStore,
    pub(crate) hostname: String,
    pub(crate) policies: Vec<Policy>,
    pub(crate) live: endpoint::live::Live,
    pub(crate) messages: messages::Messages,
    pub(crate) deliveries: deliveries::Deliveries,
    /// Each device's `$edgeHub` routes, read again after [`ROUTES_KEPT`].
    edge_routes: dashmap::DashMap<String, (std::time::Instant, Arc<Vec<edge_routes::Route>>)>,
    trust: endpoint::x509::Trust,
    /// The registry the publishers view feeds; set once the registry exists.
    publishers: std::sync::OnceLock<publishers::PublisherLink>,
    pub(crate) replicas: replicas::Replicas,
    /// Background tasks of the replicas' bus, for the service to wait on when it stops.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens the hub on the twin API's database: the key-encryption key (made at first
    /// start), the default policies (likewise), and the owner's connection string written to
    /// `<data_dir>/hub-connection-string` for the address the service is reached at
    /// (`https_port`: the port when it is not 443). On PostgreSQL (`database_url`) it joins
    /// the other replicas on that database (see `replicas`).
    pub async fn open(
        pool: sqlx::AnyPool,
        database_url: &str,
        data_dir: &Path,
        config: &HubConfig,
        port: u16,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Arc<Self>, HubError> {
        let kek_file = config
            .kek_file
            .clone()
            .unwrap_or_else(|| data_dir.join(KEK_FILE));
        let store = HubStore::new(pool.clone(), HubKek::load_or_create(&kek_file)?);
        let mut policies = store.policies().await?;
        if DEFAULT_POLICIES
            .iter()
            .any(|(name, _)| !policies.iter().any(|p| p.name == *name))
        {
            for (name, rights) in DEFAULT_POLICIES {
                store
                    .add_policy(&Policy {
                        name: (*name).into(),
                        rights: rights.to_vec(),
                        keys: identity::Keys {
                            primary_key: secrets::new_key(),
                            secondary_key: secrets::new_key(),
                        },
                    })
                    .await?;
            }
            policies = store.policies().await?;
        }
        let live = endpoint::live::Live::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (bus, notes) = if database_url.starts_with("postgres") {
            let (lost, resync) = (wake.clone(), resync.clone());
            let (bus, notes) = bus::Bus::connect(
                database_url,
                pool.clone(),
                live.instance(),
                move || {
                    lost.notify_one();
                    resync.store(true, std::sync::atomic::Ordering::Release);
                },
                shutdown.clone(),
            )
            .await?;
            (Some(bus), Some(notes))
        } else {
            (None, None)
        };
        let hub = Arc::new(Self {
            store,
            hostname: config.hostname.to_ascii_lowercase(),
            policies,
            live,
            messages: messages::Messages::start(
                pool.clone(),
                sqlite_writer::file_of(database_url),
                bus.clone(),
                wake,
            ),
            deliveries: deliveries::Deliveries::new(pool),
            edge_routes: dashmap::DashMap::new(),
            trust: endpoint::x509::Trust::new(config.trust.clone()),
            publishers: std::sync::OnceLock::new(),
            replicas: replicas::Replicas::new(bus, resync),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        hub.write_connection_string(&data_dir.join(CONNECTION_STRING_FILE), port)?;
        let mut tasks = vec![tokio::spawn(hub.clone().beat(shutdown))];
        if let Some(notes) = notes {
            tasks.push(tokio::spawn(hub.clone().serve_replicas(notes)));
        }
        if let Ok(mut t) = hub.tasks.lock() {
            t.extend(tasks);
        }
        Ok(hub)
    }

    /// The hub's background tasks, for the service to wait on when it stops.
    pub fn take_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    /// Records that connection `connection_id` of an identity connected or disconnected (its
    /// `connectionState`). A disconnect counts only while that connection is still the one
    /// recorded: a session ending after its replacement connected must not mark the identity
    /// disconnected. `reset` forgets kept subscriptions (clean session).
    pub(crate) async fn set_connected(
        &self,
        device_id: &str,
        module_id: &str,
        connection_id: &str,
        connected: bool,
        reset: bool,
    ) -> Option<identity::Identity> {
        let now = crate::registry::now();
        let mut written = false;
        let mut previous = String::new();
        let done = self
            .store
            .update(device_id, module_id, |i| {
                written = false;
                if !connected && i.connection_id != connection_id {
                    return Ok(false);
                }
                written = true;
                previous.clone_from(&i.connection_id);
                i.connected = connected;
                i.connection_id = if connected {
                    connection_id.to_string()
                } else {
                    String::new()
                };
                if reset {
                    i.subscriptions = 0;
                }
                i.connection_updated = now.clone();
                i.last_activity = now.clone();
                Ok(true)
            })
            .await;
        if connected && written && !previous.is_empty() && previous != connection_id {
            self.taken_over(device_id, module_id, &previous).await;
        }
        match done {
            Ok(i) => i.filter(|_| written),
            Err(e) => {
                tracing::warn!(error = %e, device = %device_id, "hub: recording the connection state failed");
                None
            }
        }
    }

    /// The device's `$edgeHub` message routes (none when it has no `$edgeHub` module).
    pub(crate) async fn routes_for(&self, device_id: &str) -> Arc<Vec<edge_routes::Route>> {
        if let Some(e) = self.edge_routes.get(device_id) {
            if e.0.elapsed() < ROUTES_KEPT {
                return e.1.clone();
            }
        }
        let routes = match self.store.get(device_id, "$edgeHub").await {
            Ok(Some(i)) => Arc::new(edge_routes::from_desired(&i.twin.desired.props)),
            Ok(None) => Arc::new(Vec::new()),
            Err(e) => {
                tracing::warn!(error = %e, device = %device_id, "hub: reading $edgeHub routes failed");
                Arc::new(Vec::new())
            }
        };
        self.edge_routes.insert(
            device_id.to_string(),
            (std::time::Instant::now(), routes.clone()),
        );
        routes
    }

    /// A device's `$edgeHub` twin changed: its routes are read again.
    pub(crate) fn forget_routes(&self, device_id: &str) {
        self.edge_routes.remove(device_id);
    }

    /// Feeds publisher identities into `registry` (see `publishers`).
    pub(crate) fn link_publishers(&self, link: publishers::PublisherLink) {
        let _ = self.publishers.set(link);
    }

    /// Tells the publishers views (this replica's and the others') about an identity, if
    /// it is a publisher.
    pub(crate) async fn publisher_state(&self, i: &identity::Identity, online: bool) {
        if publishers::is_publisher(i) {
            self.publisher_seen(i, online).await;
            self.announce_publisher(i, online).await;
        }
    }

    /// Tells this replica's publishers view about an identity, if it is a publisher.
    pub(crate) async fn publisher_seen(&self, i: &identity::Identity, online: bool) {
        if let Some(link) = self.publishers.get() {
            if publishers::is_publisher(i) {
                link.seen(i, online).await;
            }
        }
    }

    /// A twin API operation for a publisher connected through the hub: the direct method
    /// OPC Publisher names `{Operation}_V2`, the module's answer as the broker path gives it.
    pub(crate) async fn call_module(
        &self,
        device_id: &str,
        module_id: &str,
        op: iiot_api::Operation,
        payload: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<bytes::Bytes, crate::error::ApiError> {
        use crate::error::ApiError;
        let who = publishers::publisher_id(device_id, module_id);
        let method = format!("{}_V2", op.name());
        match self
            .invoke(
                device_id,
                module_id,
                &method,
                bytes::Bytes::from(payload),
                timeout,
            )
            .await
        {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(ApiError::Module {
                status: u16::try_from(status).unwrap_or(502),
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            }),
            Err(endpoint::live::MethodError::NotOnline) => Err(ApiError::Offline(format!(
                "publisher '{who}' is not connected to the hub"
            ))),
            Err(endpoint::live::MethodError::Timeout) => Err(ApiError::Timeout {
                module: who,
                method,
                millis: timeout.as_millis(),
            }),
        }
    }

    /// Whether a presented certificate chain proves an X.509 identity.
    pub(crate) fn x509_matches(&self, identity: &identity::Identity, chain: &[Vec<u8>]) -> bool {
        self.trust.matches(identity, chain)
    }

    /// Deletes messages older than `retention`, every minute, until `shutdown`.
    pub async fn prune_messages(
        self: Arc<Self>,
        retention: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let cutoff = time::OffsetDateTime::now_utc() - retention;
            let cutoff = messages::new_id(cutoff);
            match self.messages.prune_before(&cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(messages = n, "hub: pruned old device messages"),
                Err(e) => tracing::warn!(error = %e, "hub: pruning device messages failed"),
            }
            match self.deliveries.prune().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deliveries = n, "hub: pruned expired deliveries"),
                Err(e) => tracing::warn!(error = %e, "hub: pruning deliveries failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// `HostName=…;SharedAccessKeyName=iothubowner;SharedAccessKey=…` — no trailing `;`, which
    /// the Python SDK's parser refuses. Rewritten only when it would change.
    fn write_connection_string(&self, path: &Path, port: u16) -> Result<(), HubError> {
        let Some(owner) = self.policies.iter().find(|p| p.name == "iothubowner") else {
            return Err(HubError::Setup("the iothubowner policy is missing".into()));
        };
        let host = if port == 443 {
            self.hostname.clone()
        } else {
            format!("{}:{port}", self.hostname)
        };
        let text = format!(
            "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
            owner.name, owner.keys.primary_key
        );
        if std::fs::read_to_string(path).is_ok_and(|old| old.trim() == text) {
            return Ok(());
        }
        files::replace_private(path, text.as_bytes())?;
        tracing::info!(path = %path.display(), "wrote the hub's service connection string (iothubowner)");
        Ok(())
    }
}
