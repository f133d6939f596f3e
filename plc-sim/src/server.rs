//! Lifecycle of a running simulator: socket, async-opcua server, value-update tasks, shutdown.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use opcua::{
    crypto::SecurityPolicy,
    server::{
        address_space::{add_namespaces, AddressSpace},
        node_manager::{memory::InMemoryNodeManagerBuilder, ServerContext},
        Server, ServerBuilder, ServerEndpoint, ServerHandle, ServerUserToken,
        ANONYMOUS_USER_TOKEN_ID,
    },
    types::{ApplicationDescription, ApplicationType, LocalizedText, MessageSecurityMode, NodeId},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    node_manager::{PlcNodeManager, PlcNodeManagerImpl},
    nodes::{self, Shape},
    pki,
    push::{PushConfig, PushManager, SECURITY_ADMIN_TOKEN_PREFIX},
    simulation, PlcSimConfig, PlcSimError, NAMESPACE_URI,
};

/// Application name advertised in the ApplicationDescription and certificate subject.
pub const APPLICATION_NAME: &str = "iiot plc-sim";

/// How long `start` waits for async-opcua to finish initialising its node managers
/// (the generated core namespace is slow in unoptimised builds).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `shutdown` lets connections close gracefully before abandoning the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Application URI for a given host: the host is part of it so that two simulators on
/// different hosts are distinct applications, as OPC UA expects.
pub fn application_uri(host: &str) -> String {
    format!("{NAMESPACE_URI}:{host}")
}

/// A running simulated PLC. Dropping it stops the server too, but without waiting for the
/// port to be released; call [`PlcSim::shutdown`] when the port is reused right after.
pub struct PlcSim {
    host: String,
    port: u16,
    namespace_index: u16,
    handle: ServerHandle,
    server_task: Option<JoinHandle<Result<(), String>>>,
    updaters: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PlcSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlcSim")
            .field("endpoint_url", &self.endpoint_url())
            .field("namespace_index", &self.namespace_index)
            .finish_non_exhaustive()
    }
}

impl PlcSim {
    /// Starts the simulator and returns once it accepts OPC UA connections.
    ///
    /// The listening socket is bound first and handed to async-opcua, so with `port: 0` the
    /// chosen port cannot be taken by someone else between discovery and use.
    pub async fn start(config: PlcSimConfig) -> Result<PlcSim, PlcSimError> {
        let started = Instant::now();
        config.validate()?;
        if config.auto_accept {
            warn!("plc-sim auto-accepts untrusted client certificates; use only in tests");
        }

        let bind_addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|source| PlcSimError::Bind {
                addr: bind_addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| PlcSimError::Bind {
                addr: bind_addr,
                source,
            })?
            .port();

        let host = config.host.clone();
        let fast_period = Duration::from_millis(config.fast_rate_ms);
        let slow_period = Duration::from_millis(config.slow_rate_ms);
        let (server, handle, build_time) =
            tokio::task::spawn_blocking(move || build_server(&config, port))
                .await
                .map_err(|e| PlcSimError::Server(format!("server build task failed: {e}")))??;

        let nm = handle
            .node_managers()
            .get_of_type::<PlcNodeManager>()
            .ok_or_else(|| PlcSimError::Server("plc-sim node manager missing".to_owned()))?;
        let namespace_index = handle
            .get_namespace_index(NAMESPACE_URI)
            .ok_or_else(|| PlcSimError::Server("plc-sim namespace not registered".to_owned()))?;
        if handle.info().server_certificate().is_none() {
            return Err(PlcSimError::Server(
                "server certificate not loaded".to_owned(),
            ));
        }
        if let Some(push) = handle.node_managers().get_of_type::<PushManager>() {
            push.publish_properties();
        }

        let mut sim = PlcSim {
            host,
            port,
            namespace_index,
            server_task: Some(tokio::spawn(server.run_with(listener))),
            handle,
            updaters: Vec::new(),
        };
        sim.wait_until_listening().await?;

        let layout = nm.inner().layout().clone();
        let (node_count, tree_leaves) = (layout.node_count, layout.tree_leaves);
        let subscriptions = sim.handle.subscriptions().clone();
        for (ids, period) in [(layout.fast, fast_period), (layout.slow, slow_period)] {
            if !ids.is_empty() {
                sim.updaters.push(simulation::spawn_counter(
                    nm.clone(),
                    subscriptions.clone(),
                    ids,
                    period,
                ));
            }
        }

        info!(
            endpoint = %sim.endpoint_url(),
            namespace_index,
            nodes = node_count,
            tree_leaves,
            address_space_ms = build_time.as_millis() as u64,
            startup_ms = started.elapsed().as_millis() as u64,
            "plc-sim listening"
        );
        Ok(sim)
    }

    /// `opc.tcp://{host}:{port}/`, the URL of every endpoint and of discovery.
    pub fn endpoint_url(&self) -> String {
        format!("opc.tcp://{}:{}/", self.host, self.port)
    }

    /// The server's application URI (what its certificate names, and a GDS registers).
    pub fn application_uri(&self) -> String {
        application_uri(&self.host)
    }

    /// Port actually listened on (the OS's choice when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Index of [`NAMESPACE_URI`] in the server's namespace array.
    pub fn namespace_index(&self) -> u16 {
        self.namespace_index
    }

    /// Node id for a path in the simulator namespace, e.g. `sim.node_id("Scalar/Int32")`.
    pub fn node_id(&self, path: &str) -> NodeId {
        NodeId::new(self.namespace_index, path)
    }

    /// DER of the certificate the server presents to new connections (it changes when a
    /// certificate manager pushes one), to compare thumbprints in tests.
    pub fn server_certificate_der(&self) -> Vec<u8> {
        self.handle
            .info()
            .server_certificate()
            .and_then(|c| c.to_der().ok())
            .unwrap_or_default()
    }

    /// Stops value updates and the server, and returns once the listening socket is closed.
    pub async fn shutdown(mut self) {
        for updater in self.updaters.drain(..) {
            updater.abort();
            let _ = updater.await;
        }
        self.handle.cancel();
        if let Some(mut task) = self.server_task.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!("plc-sim server ended with error: {e}"),
                Ok(Err(e)) => warn!("plc-sim server task failed: {e}"),
                Err(_) => {
                    warn!("plc-sim connections did not close in {SHUTDOWN_GRACE:?}; aborting");
                    task.abort();
                    let _ = task.await;
                }
            }
        }
        info!(endpoint = %self.endpoint_url(), "plc-sim stopped");
    }

    /// async-opcua stores the port in `ServerInfo::port` right before entering its accept
    /// loop (server/src/server.rs, `run_with`); its `ServerInfo::state` is never updated
    /// from `Shutdown`, so `is_running()` cannot be used for this.
    async fn wait_until_listening(&mut self) -> Result<(), PlcSimError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if self.handle.info().port.load(Ordering::Relaxed) != 0 {
                return Ok(());
            }
            let finished = self
                .server_task
                .as_ref()
                .is_none_or(JoinHandle::is_finished);
            if finished {
                let reason = match self.server_task.take() {
                    Some(task) => match task.await {
                        Ok(Ok(())) => "server task ended".to_owned(),
                        Ok(Err(e)) => e,
                        Err(e) => e.to_string(),
                    },
                    None => "server task missing".to_owned(),
                };
                return Err(PlcSimError::Startup(reason));
            }
            if Instant::now() > deadline {
                return Err(PlcSimError::Startup(format!(
                    "not listening after {STARTUP_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for PlcSim {
    fn drop(&mut self) {
        for updater in &self.updaters {
            updater.abort();
        }
        self.handle.cancel();
        if let Some(task) = &self.server_task {
            task.abort();
        }
    }
}

/// Builds the async-opcua server, including the (possibly 100k-node) address space and the
/// certificate; blocking work, so called from `spawn_blocking`.
fn build_server(
    config: &PlcSimConfig,
    port: u16,
) -> Result<(Server, ServerHandle, Duration), PlcSimError> {
    let endpoint_url = format!("opc.tcp://{}:{}/", config.host, port);
    let app_uri = application_uri(&config.host);
    pki::ensure_own_certificate(
        &config.pki_dir,
        ApplicationDescription {
            application_uri: app_uri.as_str().into(),
            product_uri: NAMESPACE_URI.into(),
            application_name: LocalizedText::new("", APPLICATION_NAME),
            application_type: ApplicationType::Server,
            discovery_urls: Some(vec![endpoint_url.as_str().into()]),
            ..Default::default()
        },
        &config.host,
    )?;

    let shape = Shape {
        fast_nodes: config.fast_nodes,
        slow_nodes: config.slow_nodes,
        tree: config.tree,
    };
    let build_time = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let build_time_out = build_time.clone();
    let node_manager =
        InMemoryNodeManagerBuilder::new(move |context: ServerContext, space: &mut AddressSpace| {
            let t = Instant::now();
            let ns = add_namespaces(&context, space, &[NAMESPACE_URI])[0];
            let layout = nodes::populate(space, ns, shape);
            if let Ok(mut d) = build_time_out.lock() {
                *d = t.elapsed();
            }
            PlcNodeManagerImpl::new(NAMESPACE_URI, ns, layout)
        });

    let push_config = PushConfig {
        pki_dir: config.pki_dir.clone(),
        application_uri: app_uri.clone(),
    };
    let mut builder = ServerBuilder::new()
        .application_name(APPLICATION_NAME)
        .application_uri(app_uri)
        .product_uri(NAMESPACE_URI)
        .pki_dir(&config.pki_dir)
        // The certificate was prepared above; async-opcua only has to load it.
        .create_sample_keypair(false)
        .trust_client_certs(config.auto_accept)
        .host(&config.host)
        .port(port)
        .discovery_urls(vec![endpoint_url])
        .with_node_manager(node_manager)
        .with_node_manager(move |context: ServerContext| PushManager::new(push_config, context));

    let user_ids: Vec<String> = (0..config.users.len())
        .map(|i| format!("plc-sim-user-{i}"))
        .collect();
    for (id, (user, pass)) in user_ids.iter().zip(&config.users) {
        builder = builder.add_user_token(id, ServerUserToken::user_pass(user, pass));
    }
    let admin_ids: Vec<String> = (0..config.security_admins.len())
        .map(|i| format!("{SECURITY_ADMIN_TOKEN_PREFIX}{i}"))
        .collect();
    for (id, (user, pass)) in admin_ids.iter().zip(&config.security_admins) {
        builder = builder.add_user_token(id, ServerUserToken::user_pass(user, pass));
    }
    let anonymous = vec![ANONYMOUS_USER_TOKEN_ID.to_owned()];
    let mut sign_tokens = anonymous.clone();
    sign_tokens.extend(user_ids);
    // Security administrators only where keys and trust lists travel encrypted (Part 12): a
    // session's security mode is fixed at CreateSession, so the per-call check alone would let
    // an administrator's session re-activated on a Sign channel through; not offering the
    // token there refuses that activation.
    let mut sign_encrypt_tokens = sign_tokens.clone();
    sign_encrypt_tokens.extend(admin_ids);

    // Anonymous only on None: a UserName token there would carry the password in clear.
    builder = builder.add_endpoint(
        "none",
        ServerEndpoint::new(
            "/",
            SecurityPolicy::None,
            MessageSecurityMode::None,
            &anonymous,
        ),
    );
    for (name, policy) in [
        ("basic256sha256", SecurityPolicy::Basic256Sha256),
        ("aes128_sha256_rsaoaep", SecurityPolicy::Aes128Sha256RsaOaep),
        ("aes256_sha256_rsapss", SecurityPolicy::Aes256Sha256RsaPss),
    ] {
        for (suffix, mode, tokens) in [
            ("sign", MessageSecurityMode::Sign, &sign_tokens),
            (
                "sign_encrypt",
                MessageSecurityMode::SignAndEncrypt,
                &sign_encrypt_tokens,
            ),
        ] {
            builder = builder.add_endpoint(
                format!("{name}_{suffix}"),
                ServerEndpoint::new("/", policy, mode, tokens),
            );
        }
    }

    let limits = builder.limits_mut();
    limits.max_message_size = config.max_message_size as usize;
    limits.max_chunk_count = config.max_chunk_count as usize;
    limits.max_array_length = config.max_array_length as usize;
    limits.max_sessions = config.max_sessions as usize;
    limits.max_connections = config.max_connections as usize;
    limits.max_unactivated_sessions = config.max_unactivated_sessions as usize;
    limits.subscriptions.max_monitored_items_per_sub =
        config.max_monitored_items_per_subscription as usize;
    limits.subscriptions.max_subscriptions_per_session =
        config.max_subscriptions_per_session as usize;
    // The stack's defaults (20 notifications waiting for a Publish, 10 values per item) drop
    // data after 2 s without a client at a 100 ms publishing interval; a PLC's server keeps a
    // short network drop's worth, so clients can be tested for losing nothing across one.
    limits.subscriptions.max_queued_notifications = 600;
    limits.subscriptions.max_monitored_item_queue_size = 1000;
    // Sampling is allowed as fast as the counters change: with async-opcua's 100 ms floor a
    // client asking for a 20 ms counter's rate was revised to 100 ms and saw every fifth value.
    limits.subscriptions.min_sampling_interval_ms = config.min_sampling_interval_ms() as f64;
    let ops = &mut limits.operational;
    ops.max_monitored_items_per_call = config.max_monitored_items_per_call as usize;
    ops.max_nodes_per_browse = config.max_nodes_per_browse as usize;
    ops.max_nodes_per_read = config.max_nodes_per_read as usize;
    ops.max_nodes_per_write = config.max_nodes_per_write as usize;
    ops.max_nodes_per_method_call = config.max_nodes_per_method_call as usize;

    let (server, handle) = builder.build().map_err(PlcSimError::Server)?;
    let elapsed = build_time.lock().map(|d| *d).unwrap_or_default();
    Ok((server, handle, elapsed))
}
