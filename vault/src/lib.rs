//! The certificate authority and GDS core (issue 5): application registrations, certificate
//! groups with one CA per certificate type, signing and key pair requests through an approval
//! workflow, CRLs and trust lists, all behind the OPC Vault REST API.
//!
//! Layers: `routes` (HTTP) → `service` (operations, policy) → `ca` / `csr` (cryptography) and
//! `store` (SQL). Private keys only leave memory sealed by the [`kek`].

pub mod ca;
pub mod config;
pub mod csr;
pub mod error;
pub mod gds;
pub mod kek;
mod keypair;
pub mod model;
pub mod push;
mod routes;
pub mod service;
pub mod store;
mod validate;
pub mod workflow;

use std::net::SocketAddr;
use std::sync::Arc;

use iiot_auth::Authenticator;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use ca::CertType;
pub use config::{KekSource, VaultConfig, DEFAULT_PORT};
pub use error::VaultError;
/// The credential types callers configure the vault with.
pub use iiot_auth::{ApiKeys, Role};
pub use kek::Kek;
pub use store::Store;

/// A running vault.
pub struct VaultHandle {
    addr: SocketAddr,
    public_url: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    refresher: JoinHandle<()>,
    store: Store,
    gds: Option<gds::GdsEndpoint>,
    push: Option<push::PushEngine>,
}

impl VaultHandle {
    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL written into issued certificates.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// `opc.tcp://…` of the OPC UA face (GDS), when it runs.
    pub fn opcua_url(&self) -> Option<&str> {
        self.gds.as_ref().map(|g| g.url())
    }

    /// How many commits the request state changes took so far; benchmarks report it to show
    /// how well concurrent requests share commits.
    pub fn write_stats(&self) -> store::WriteStats {
        self.store.write_stats()
    }

    /// Stops accepting requests, finishes the ones in flight and closes the database.
    pub async fn shutdown(self) -> Result<(), VaultError> {
        let _ = self.stop.send(true);
        self.refresher.abort();
        if let Some(push) = &self.push {
            push.stop();
        }
        if let Some(gds) = self.gds {
            gds.shutdown().await;
        }
        let result = self.server.await;
        self.store.close().await;
        match result {
            Ok(r) => r.map_err(VaultError::Io),
            Err(e) => Err(VaultError::Io(std::io::Error::other(e))),
        }
    }

    /// Runs until the server stops on its own (an I/O error).
    pub async fn wait(&mut self) -> Result<(), VaultError> {
        match (&mut self.server).await {
            Ok(r) => r.map_err(VaultError::Io),
            Err(e) => Err(VaultError::Io(std::io::Error::other(e))),
        }
    }
}

/// Resolves the key-encryption key of `config`. A missing KEK file is created only for a
/// database that holds no sealed CA keys yet: otherwise a lost KEK would be silently replaced.
pub fn load_kek(config: &VaultConfig, may_create: bool) -> Result<Kek, VaultError> {
    let path = match &config.kek {
        Some(KekSource::Value(v)) => return Kek::parse(v),
        Some(KekSource::File(p)) => p.clone(),
        None => {
            let path = config.data_dir.join("vault.kek");
            tracing::warn!(path = %path.display(), "no --kek-file or IIOT_KEK: keeping the key-encryption key beside the database");
            path
        }
    };
    if !may_create && !path.exists() {
        return Err(VaultError::Config(format!(
            "the key-encryption key file {} is missing but the database holds CA keys sealed with it: restore it",
            path.display()
        )));
    }
    Kek::load_or_create(&path)
}

/// Opens the store, creates or unseals the CAs and serves the REST API.
///
/// Replicas sharing one PostgreSQL database start one at a time from the migration until the
/// CAs exist (the [`store::StartupLock`]), so the first creates the groups and CAs and the
/// others load them.
pub async fn start(config: VaultConfig) -> Result<VaultHandle, VaultError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            VaultError::Config(format!(
                "cannot listen on {}: {e} (choose another --http-port)",
                config.bind
            ))
        })?;
    let addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = if addr.ip().is_unspecified() {
                tracing::warn!("listening on all interfaces without --public-url: issued certificates will point at 127.0.0.1 for their CRL");
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            format!("http://{}", SocketAddr::new(host, addr.port()))
        }
    };
    let (store, startup) =
        Store::open_locked(config.database_url.as_deref(), &config.data_dir).await?;
    // Read under the lock: a replica that lost the race sees the CAs the winner sealed, and
    // does not create a KEK file of its own that could not open them.
    let kek = load_kek(&config, store.all_cas().await?.is_empty())?;
    let auth = Arc::new(match &config.jwt {
        Some(jwt) => Authenticator::new(config.api_keys.clone()).with_jwt(jwt.clone()),
        None => Authenticator::new(config.api_keys.clone()),
    });
    let refresh_every = config.crl_refresh_interval;
    let opcua = config.opcua.clone();
    let keys = config.api_keys.clone();
    let data_dir = config.data_dir.clone();
    let vault =
        Arc::new(service::Vault::open(store.clone(), kek, config, public_url.clone()).await?);
    startup.release().await?;
    let gds = match &opcua {
        Some(c) => Some(gds::start(vault.clone(), keys, c, &data_dir).await?),
        None => None,
    };
    let gds_pki = gds.as_ref().map(|_| data_dir.join("gds-pki"));
    // The push engine is the GDS face's application as a client: same certificate and PKI.
    let push = opcua.as_ref().map(|c| {
        push::PushEngine::start(
            vault.clone(),
            push::PushIdentity {
                pki_dir: data_dir.join("gds-pki"),
                application_uri: c.application_uri(),
                application_name: gds::APPLICATION_NAME.to_owned(),
            },
        )
    });

    let (stop, mut stopped) = watch::channel(false);
    let app = routes::router(routes::AppState {
        vault: vault.clone(),
        auth,
    });
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh_every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = vault.refresh_crls().await {
                tracing::error!(error = %e, "CRL refresh failed; will retry");
            }
            if let Some(pki) = &gds_pki {
                if let Err(e) = gds::sync_trust_store(&vault, pki).await {
                    tracing::error!(error = %e, "GDS trust store update failed; will retry");
                }
            }
        }
    });
    tracing::info!(%addr, %public_url, "vault listening");
    Ok(VaultHandle {
        addr,
        public_url,
        stop,
        server,
        refresher,
        store,
        gds,
        push,
    })
}
