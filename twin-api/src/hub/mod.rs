//! The hub (issue 17): an identity registry of devices and modules with their twins, served
//! with IoT Hub's own service routes, JSON shapes, errors and shared-access-policy
//! authorisation, so Microsoft's service SDKs and scripts written for IoT Hub work against it
//! unchanged.
//!
//! Layers: `http` (routes, who may do what) → `identity` and `twin` (the rules, no I/O) and
//! `query` (the query language subset) → `store` (SQLite or PostgreSQL, the twin API's
//! database) with `secrets` sealing every key it keeps. `sas` is the token format both the
//! service routes and (next) the device endpoint verify.

pub mod error;
mod files;
mod http;
pub mod identity;
pub mod query;
pub mod sas;
pub mod secrets;
pub mod store;
pub mod twin;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::HubError;
pub(crate) use http::routes;

use secrets::HubKek;
use store::{HubStore, Policy, Right};

/// File in the data directory that receives the owner policy's service connection string.
pub const CONNECTION_STRING_FILE: &str = "hub-connection-string";
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
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            kek_file: None,
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

/// The running hub's state, shared by its routes.
pub struct Hub {
    pub(crate) store: HubStore,
    pub(crate) hostname: String,
    pub(crate) policies: Vec<Policy>,
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
    /// (`https_port`: the port when it is not 443).
    pub async fn open(
        pool: sqlx::AnyPool,
        data_dir: &Path,
        config: &HubConfig,
        port: u16,
    ) -> Result<Arc<Self>, HubError> {
        let kek_file = config
            .kek_file
            .clone()
            .unwrap_or_else(|| data_dir.join(KEK_FILE));
        let store = HubStore::new(pool, HubKek::load_or_create(&kek_file)?);
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
        let hub = Self {
            store,
            hostname: config.hostname.to_ascii_lowercase(),
            policies,
        };
        hub.write_connection_string(&data_dir.join(CONNECTION_STRING_FILE), port)?;
        Ok(Arc::new(hub))
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
