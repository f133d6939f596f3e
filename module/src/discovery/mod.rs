//! Discovery: FindServer, Register, Discover (discovery URLs and network scans) and Cancel.
//!
//! A run reports progress and its results as events on `{root}/events`, so a twin API can
//! keep its registry current; FindServer answers directly.

pub mod events;
pub mod scan;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use opcua::client::Client;
use opcua::types::{
    ApplicationDescription, ApplicationType as UaAppType, EndpointDescription, MessageSecurityMode,
    StatusCode, UserTokenType,
};
use sha1::{Digest, Sha1};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{
    ApplicationInfoModel, ApplicationRegistrationModel, ApplicationType, AuthenticationMethodModel,
    CredentialType, DiscoveryCancelRequestModel, DiscoveryMode, DiscoveryProgressType,
    DiscoveryRequestModel, EndpointModel, EndpointRegistrationModel, SecurityMode,
    ServerEndpointQueryModel, ServerRegistrationRequestModel,
};
use crate::error::{ErrorKind, Result, ServiceError};
use crate::pki::thumbprint;
use crate::twin::read::parse_duration_ms;
use events::{EventSink, Run};

/// Ports probed on localhost by `Local` discovery when the caller names none: the IANA OPC UA
/// port and the defaults of common servers and simulators.
pub const WELL_KNOWN_PORTS: &str =
    "4840-4841,48010,48400-48401,49320,50000,51210,53530,62541,26543";

pub struct Discovery {
    client: Arc<Client>,
    events: EventSink,
    discoverer_id: String,
    timeout: Duration,
    runs: DashMap<String, CancellationToken>,
}

impl Discovery {
    pub fn new(client: Arc<Client>, events: EventSink, discoverer_id: String) -> Arc<Self> {
        Arc::new(Self {
            client,
            events,
            discoverer_id,
            timeout: Duration::from_secs(10),
            runs: DashMap::new(),
        })
    }

    /// FindServers on the discovery URL, then GetEndpoints of each server found.
    pub async fn find_server(
        &self,
        query: &ServerEndpointQueryModel,
    ) -> Result<Vec<ApplicationRegistrationModel>> {
        let url = query
            .discovery_url
            .as_deref()
            .or(query.url.as_deref())
            .map(str::trim)
            .filter(|u| u.starts_with("opc.tcp://"))
            .ok_or_else(|| {
                ServiceError::bad_request(
                    StatusCode::BadTcpEndpointUrlInvalid,
                    "discoveryUrl must be an opc.tcp:// URL",
                )
            })?;
        let mut found = self.applications_at(url).await?;
        for reg in &mut found {
            if let Some(eps) = reg.endpoints.as_mut() {
                eps.retain(|e| endpoint_matches(e, query));
            }
        }
        found.retain(|r| r.endpoints.as_ref().is_some_and(|e| !e.is_empty()));
        if found.is_empty() {
            return Err(ServiceError::service(
                StatusCode::BadNotFound,
                format!("no server endpoint at {url} matches the query"),
            ));
        }
        Ok(found)
    }

    /// The applications a discovery URL knows about, each with its endpoints.
    pub async fn applications_at(&self, url: &str) -> Result<Vec<ApplicationRegistrationModel>> {
        let apps = tokio::time::timeout(self.timeout, self.client.find_servers(url, None, None))
            .await
            .map_err(|_| timeout_error(url))?
            .map_err(|e| ServiceError::from_opcua(&e, &format!("FindServers on {url}")))?;
        let mut out = Vec::new();
        for app in apps
            .iter()
            .filter(|a| a.application_type != UaAppType::Client)
        {
            let mut urls: Vec<String> = app
                .discovery_urls
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|u| u.as_ref().to_string())
                .filter(|u| u.starts_with("opc.tcp://"))
                .collect();
            // The URL we reached is the one known to work from here; try it first.
            urls.retain(|u| u != url);
            urls.insert(0, url.to_string());
            let mut endpoints = None;
            for u in &urls {
                match tokio::time::timeout(
                    self.timeout,
                    self.client.get_server_endpoints_from_url(u.as_str()),
                )
                .await
                {
                    Ok(Ok(eps)) => {
                        endpoints = Some(eps);
                        break;
                    }
                    Ok(Err(e)) => warn!(url = %u, error = %e, "GetEndpoints failed"),
                    Err(_) => warn!(url = %u, "GetEndpoints timed out"),
                }
            }
            let endpoints = endpoints.unwrap_or_default();
            let eps: Vec<_> = endpoints
                .iter()
                .filter(|e| e.server.application_uri == app.application_uri)
                .collect();
            let eps = if eps.is_empty() {
                endpoints.iter().collect()
            } else {
                eps
            };
            out.push(self.registration(app, url, &eps));
        }
        Ok(out)
    }

    fn registration(
        &self,
        app: &ApplicationDescription,
        reached: &str,
        endpoints: &[&EndpointDescription],
    ) -> ApplicationRegistrationModel {
        let app_type = match app.application_type {
            UaAppType::Server => ApplicationType::Server,
            UaAppType::Client => ApplicationType::Client,
            UaAppType::ClientAndServer => ApplicationType::ClientAndServer,
            UaAppType::DiscoveryServer => ApplicationType::DiscoveryServer,
        };
        let uri = app.application_uri.as_ref().to_string();
        let application_id = stable_id(
            "uat",
            &[&self.discoverer_id, &uri.to_lowercase(), app_type.as_str()],
        );
        let application = ApplicationInfoModel {
            application_id: application_id.clone(),
            application_type: app_type,
            application_uri: uri,
            product_uri: Some(app.product_uri.as_ref().to_string()).filter(|s| !s.is_empty()),
            application_name: Some(app.application_name.text.as_ref().to_string()),
            locale: Some(app.application_name.locale.as_ref().to_string())
                .filter(|s| !s.is_empty()),
            discovery_urls: Some(vec![reached.to_string()]),
            discovery_profile_uri: Some(app.discovery_profile_uri.as_ref().to_string())
                .filter(|s| !s.is_empty()),
            gateway_server_uri: Some(app.gateway_server_uri.as_ref().to_string())
                .filter(|s| !s.is_empty()),
            host_addresses: host_of(reached).map(|h| vec![h]),
            discoverer_id: Some(self.discoverer_id.clone()),
            ..Default::default()
        };
        let endpoints = endpoints
            .iter()
            .map(|e| {
                let mode = match e.security_mode {
                    MessageSecurityMode::None => SecurityMode::None,
                    MessageSecurityMode::Sign => SecurityMode::Sign,
                    _ => SecurityMode::SignAndEncrypt,
                };
                let policy = e.security_policy_uri.as_ref().to_string();
                EndpointRegistrationModel {
                    id: stable_id(
                        "uas",
                        &[
                            &application_id,
                            e.endpoint_url.as_ref(),
                            mode.as_str(),
                            &policy,
                        ],
                    ),
                    endpoint_url: Some(e.endpoint_url.as_ref().to_string()),
                    discoverer_id: Some(self.discoverer_id.clone()),
                    site_id: None,
                    endpoint: Some(EndpointModel {
                        url: e.endpoint_url.as_ref().to_string(),
                        alternative_urls: Some(vec![reached.to_string()]),
                        security_mode: Some(mode),
                        security_policy: Some(policy),
                        certificate: (!e.server_certificate.is_null_or_empty())
                            .then(|| thumbprint(e.server_certificate.as_ref())),
                    }),
                    security_level: Some(i32::from(e.security_level)),
                    authentication_methods: Some(
                        e.user_identity_tokens
                            .as_deref()
                            .unwrap_or_default()
                            .iter()
                            .map(|t| AuthenticationMethodModel {
                                id: t.policy_id.as_ref().to_string(),
                                credential_type: match t.token_type {
                                    UserTokenType::Anonymous => CredentialType::None,
                                    UserTokenType::UserName => CredentialType::UserName,
                                    UserTokenType::Certificate => CredentialType::X509Certificate,
                                    UserTokenType::IssuedToken => CredentialType::JwtToken,
                                },
                                security_policy: Some(t.security_policy_uri.as_ref().to_string())
                                    .filter(|s| !s.is_empty()),
                                configuration: None,
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        ApplicationRegistrationModel {
            application,
            endpoints: Some(endpoints),
        }
    }

    /// Registers the server(s) at one discovery URL: a run of its own, results as events.
    pub fn register(self: &Arc<Self>, req: ServerRegistrationRequestModel) -> Result<()> {
        let url = req.discovery_url.trim().to_string();
        if !url.starts_with("opc.tcp://") {
            return Err(ServiceError::bad_request(
                StatusCode::BadTcpEndpointUrlInvalid,
                "discoveryUrl must be an opc.tcp:// URL",
            ));
        }
        let request = DiscoveryRequestModel {
            id: req
                .id
                .clone()
                .or_else(|| Some(uuid::Uuid::new_v4().to_string())),
            discovery: Some(DiscoveryMode::Off),
            configuration: Some(crate::api::DiscoveryConfigModel {
                discovery_urls: Some(vec![url]),
                ..Default::default()
            }),
            context: req.context.clone(),
        };
        self.start_run(request, true)
    }

    /// Starts a discovery run described by the request.
    pub fn discover(self: &Arc<Self>, req: DiscoveryRequestModel) -> Result<()> {
        let mut req = req;
        req.id = req.id.or_else(|| Some(uuid::Uuid::new_v4().to_string()));
        self.start_run(req, false)
    }

    pub fn cancel(&self, req: &DiscoveryCancelRequestModel) -> Result<()> {
        let id = req.id.as_deref().unwrap_or_default();
        match self.runs.remove(id) {
            Some((_, token)) => {
                token.cancel();
                Ok(())
            }
            None => Err(ServiceError::new(
                ErrorKind::NotFound,
                StatusCode::BadNotFound,
                format!("no discovery run '{id}' is in progress"),
            )),
        }
    }

    fn start_run(self: &Arc<Self>, req: DiscoveryRequestModel, register_only: bool) -> Result<()> {
        let plan = Plan::from_request(&req)?;
        let id = req.id.clone().unwrap_or_default();
        let token = CancellationToken::new();
        if self.runs.insert(id.clone(), token.clone()).is_some() {
            return Err(ServiceError::bad_request(
                StatusCode::BadInvalidState,
                format!("a discovery run with id '{id}' is already in progress"),
            ));
        }
        let this = self.clone();
        tokio::spawn(async move {
            let run = Run::new(this.events.clone(), req, this.discoverer_id.clone());
            this.execute(&run, plan, register_only, token).await;
            this.runs.remove(&id);
        });
        Ok(())
    }

    async fn execute(&self, run: &Run, plan: Plan, register_only: bool, cancel: CancellationToken) {
        run.progress(DiscoveryProgressType::Started, None, None)
            .await;
        let mut urls = plan.discovery_urls.clone();
        if !plan.targets.is_empty() {
            let total = plan.targets.len();
            run.progress_counts(DiscoveryProgressType::PortScanStarted, 0, total, 0)
                .await;
            // The latest (done, found) only: a progress report is a snapshot, so one the
            // publisher had no time for is superseded by the next, and nothing queues up.
            let (tx, mut rx) = tokio::sync::watch::channel((0usize, 0usize));
            let found = {
                let scan = scan::scan(
                    plan.targets.clone(),
                    plan.concurrency,
                    plan.probe_timeout,
                    cancel.clone(),
                    move |done, found| {
                        let _ = tx.send((done, found));
                    },
                );
                tokio::pin!(scan);
                loop {
                    tokio::select! {
                        found = &mut scan => break found,
                        Ok(()) = rx.changed() => {
                            let (done, n) = *rx.borrow_and_update();
                            run.progress_counts(DiscoveryProgressType::PortScanProgress, done, total, n).await;
                        }
                    }
                }
            };
            for addr in &found {
                run.progress(
                    DiscoveryProgressType::PortScanResult,
                    Some(addr.to_string()),
                    None,
                )
                .await;
                urls.push(format!("opc.tcp://{addr}"));
            }
            run.progress_counts(
                DiscoveryProgressType::PortScanFinished,
                total,
                total,
                found.len(),
            )
            .await;
        }
        if cancel.is_cancelled() {
            run.progress(DiscoveryProgressType::Cancelled, None, None)
                .await;
            return;
        }
        urls.sort();
        urls.dedup();
        run.progress_counts(
            DiscoveryProgressType::ServerDiscoveryStarted,
            0,
            urls.len(),
            0,
        )
        .await;
        let mut registrations = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if cancel.is_cancelled() {
                run.progress(DiscoveryProgressType::Cancelled, None, None)
                    .await;
                return;
            }
            run.progress(
                DiscoveryProgressType::EndpointsDiscoveryStarted,
                Some(url.clone()),
                None,
            )
            .await;
            match self.applications_at(url).await {
                Ok(found) => {
                    let n = found
                        .iter()
                        .map(|r| r.endpoints.as_ref().map_or(0, Vec::len))
                        .sum::<usize>();
                    run.progress(
                        DiscoveryProgressType::EndpointsDiscoveryFinished,
                        Some(url.clone()),
                        Some(n),
                    )
                    .await;
                    registrations.extend(found);
                }
                Err(e) => {
                    run.progress(
                        DiscoveryProgressType::EndpointsDiscoveryFinished,
                        Some(format!("{url}: {e}")),
                        Some(0),
                    )
                    .await;
                }
            }
            run.progress_counts(
                DiscoveryProgressType::ServerDiscoveryFinished,
                i + 1,
                urls.len(),
                registrations.len(),
            )
            .await;
        }
        info!(id = %run.id(), servers = registrations.len(), "discovery run finished");
        run.results(&registrations, register_only).await;
        run.progress_counts(
            DiscoveryProgressType::Finished,
            urls.len(),
            urls.len(),
            registrations.len(),
        )
        .await;
    }
}

/// What a run will probe, decided and validated before it starts.
struct Plan {
    discovery_urls: Vec<String>,
    targets: Vec<std::net::SocketAddr>,
    concurrency: usize,
    probe_timeout: Duration,
}

impl Plan {
    fn from_request(req: &DiscoveryRequestModel) -> Result<Self> {
        let config = req.configuration.clone().unwrap_or_default();
        let bad = |e: scan::ScanError| {
            ServiceError::bad_request(StatusCode::BadInvalidArgument, e.to_string())
        };
        let mut discovery_urls = Vec::new();
        for u in config.discovery_urls.unwrap_or_default() {
            if !u.starts_with("opc.tcp://") {
                return Err(ServiceError::bad_request(
                    StatusCode::BadTcpEndpointUrlInvalid,
                    format!("discovery URL '{u}' is not an opc.tcp:// URL"),
                ));
            }
            discovery_urls.push(u);
        }
        let mode = req.discovery.unwrap_or_default();
        let ranges = match (config.address_ranges_to_scan.as_deref(), mode) {
            (Some(r), _) if !r.trim().is_empty() => scan::parse_address_ranges(r).map_err(bad)?,
            // Local discovery probes this host only.
            (_, DiscoveryMode::Local) => scan::parse_address_ranges("127.0.0.1").map_err(bad)?,
            _ => Vec::new(),
        };
        let ports = match config.port_ranges_to_scan.as_deref() {
            Some(p) if !p.trim().is_empty() => scan::parse_port_ranges(p).map_err(bad)?,
            _ => scan::parse_port_ranges(WELL_KNOWN_PORTS).map_err(bad)?,
        };
        let targets = if ranges.is_empty() {
            Vec::new()
        } else {
            scan::targets(&ranges, &ports).map_err(bad)?
        };
        if targets.is_empty() && discovery_urls.is_empty() {
            return Err(ServiceError::bad_request(
                StatusCode::BadNothingToDo,
                "nothing to discover: give configuration.discoveryUrls or addressRangesToScan \
                 (networks are only scanned where you name them)",
            ));
        }
        let probe_timeout = config
            .port_probe_timeout
            .as_deref()
            .and_then(parse_duration_ms)
            .filter(|ms| *ms > 0.0)
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(Duration::from_secs(3));
        let concurrency = config
            .max_port_probes
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .unwrap_or(256)
            .min(4096);
        Ok(Self {
            discovery_urls,
            targets,
            concurrency,
            probe_timeout,
        })
    }
}

fn endpoint_matches(e: &EndpointRegistrationModel, q: &ServerEndpointQueryModel) -> bool {
    let Some(ep) = &e.endpoint else { return false };
    let mode_ok = match q.security_mode {
        None | Some(SecurityMode::Best) => true,
        Some(SecurityMode::NotNone) => ep.security_mode != Some(SecurityMode::None),
        Some(m) => ep.security_mode == Some(m),
    };
    let policy_ok = q.security_policy.as_deref().is_none_or(|p| {
        let p = crate::opcua::session_pool::normalize_policy(p);
        ep.security_policy.as_deref() == Some(p.as_str())
    });
    let cert_ok = q.certificate.as_deref().is_none_or(|c| {
        ep.certificate
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(c))
    });
    mode_ok && policy_ok && cert_ok
}

fn timeout_error(url: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::Timeout,
        StatusCode::BadTimeout,
        format!("{url} did not answer in time"),
    )
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("opc.tcp://")?;
    let hostport = rest.split('/').next()?;
    Some(
        hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .to_string(),
    )
}

/// Ids stable across runs and modules: a prefix and the SHA-1 of the identifying parts.
pub fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("{prefix}{}", hex::encode(h.finalize()))
}
