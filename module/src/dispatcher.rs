//! Method name → operation, the one place both transports call.
//!
//! Bodies are decoded here so that every transport reports a malformed request the same way
//! (400, `BadDecodingError`, with serde's own words on what is wrong).

use std::future::Future;
use std::sync::Arc;

use opcua::types::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::publish_items::{
    entry_for, PublishBulkRequestModel, PublishBulkResponseModel, PublishResultModel,
    PublishStartRequestModel, PublishStopRequestModel, PublishedItemListRequestModel,
    PublishedItemListResponseModel, PublishedItemModel,
};
use crate::api::published_nodes::OpcNodeModel;
use crate::api::publisher_config::{parse_entries, parse_entry, parse_set_configured_endpoints};
use crate::api::{
    BrowseFirstRequestModel, BrowseNextRequestModel, BrowsePathRequestModel,
    BrowseStreamRequestModel, DiscoveryCancelRequestModel, DiscoveryRequestModel, EndpointModel,
    MethodCallRequestModel, MethodMetadataRequestModel, ReadRequestModel, RequestEnvelope,
    RequestHeaderModel, ServerEndpointQueryModel, ServerRegistrationRequestModel,
    TestConnectionRequestModel, TestConnectionResponseModel, ValueReadRequestModel,
    ValueWriteRequestModel, WriteRequestModel, X509CertificateModel,
};
use crate::api::{
    EntryBodyError, GetConfiguredEndpointsRequestModel, GetConfiguredEndpointsResponseModel,
    GetConfiguredNodesOnEndpointResponseModel, PublishedNodesEntryModel,
    PublishedNodesResponseModel,
};
use crate::api::{Operation, ServiceResultModel};
use crate::discovery::Discovery;
use crate::error::{ErrorKind, Result, ServiceError};
use crate::opcua::session_pool::SessionPool;
use crate::pki::{Pki, Store};
use crate::publisher::config_store::{render_prometheus, ConfigError, ConfigStore};
use crate::publisher::metrics::PublisherDiagnostics;
use crate::transport::problem::{http_status, problem_body};
use crate::twin::{self, capabilities, Twin};

pub struct Dispatcher {
    twin: Twin,
    pki: Pki,
    discovery: Arc<Discovery>,
    config: Arc<ConfigStore>,
    diagnostics: Arc<PublisherDiagnostics>,
}

/// A failure as a per-item result (bulk answers carry one per node).
fn result_of(e: &ServiceError) -> ServiceResultModel {
    ServiceResultModel {
        status_code: e.status.bits(),
        error_message: Some(e.message.clone()),
        symbolic_id: Some(e.symbol().to_string()),
        ..Default::default()
    }
}

/// The answer to a method this module does not serve by name.
fn unsupported(method: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::NotImplemented,
        StatusCode::BadServiceUnsupported,
        format!("unknown method '{method}'"),
    )
}

fn bad_body(e: EntryBodyError) -> ServiceError {
    ServiceError::bad_request(
        StatusCode::BadDecodingError,
        format!("request body is not valid: {e}"),
    )
}

/// The entry a configuration method needs; an empty body is a 400, not a panic.
fn required_entry(method: &str, body: &[u8]) -> Result<PublishedNodesEntryModel> {
    parse_entry(body).map_err(bad_body)?.ok_or_else(|| {
        ServiceError::bad_request(
            StatusCode::BadDecodingError,
            format!("{method} needs a PublishedNodesEntryModel body"),
        )
    })
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ServiceError::bad_request(
            StatusCode::BadDecodingError,
            format!("request body is not valid: {e}"),
        )
    })
}

fn encode<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| ServiceError::internal(e.to_string()))
}

impl Dispatcher {
    pub fn new(
        pool: Arc<SessionPool>,
        pki: Pki,
        discovery: Arc<Discovery>,
        config: Arc<ConfigStore>,
        diagnostics: Arc<PublisherDiagnostics>,
    ) -> Self {
        Self {
            twin: Twin::new(pool),
            pki,
            discovery,
            config,
            diagnostics,
        }
    }

    /// Whether `invoke` serves `op` from a request body. The others are served by routes of
    /// their own (streams, PKI, diagnostics), or not yet.
    pub const fn implements(op: Operation) -> bool {
        use Operation as O;
        match op {
            O::ValueRead
            | O::NodeRead
            | O::ValueWrite
            | O::NodeWrite
            | O::Browse
            | O::BrowseNext
            | O::BrowsePath
            | O::MethodMetadata
            | O::MethodCall
            | O::GetServerCapabilities
            | O::GetEndpointCertificate
            | O::TestConnection
            | O::FindServer
            | O::Register
            | O::Discover
            | O::Cancel
            | O::PublishNodes
            | O::UnpublishNodes
            | O::UnpublishAllNodes
            | O::AddOrUpdateEndpoints
            | O::GetConfiguredEndpoints
            | O::SetConfiguredEndpoints
            | O::GetConfiguredNodesOnEndpoint
            | O::GetDiagnosticInfo
            | O::PublishStart
            | O::PublishStop
            | O::PublishBulk
            | O::PublishList => true,
            O::BrowseStream
            | O::GetMetadata
            | O::CompileQuery
            | O::ListCertificates
            | O::AddCertificate
            | O::RemoveCertificate
            | O::ListCertificateRevocationLists
            | O::AddCertificateRevocationList
            | O::RemoveCertificateRevocationList
            | O::RemoveAll
            | O::AddCertificateChain
            | O::AddTrustedHttpsCertificate
            | O::ApproveRejectedCertificate
            | O::GetActiveConnections
            | O::ResetAllConnections
            | O::GetChannelDiagnostics
            | O::GetConnectionDiagnostics
            | O::WatchChannelDiagnostics
            | O::GetApiKey
            | O::GetServerCertificate
            | O::Shutdown => false,
        }
    }

    /// Runs a configuration store operation on the blocking pool: it writes and fsyncs.
    async fn config_op<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ConfigStore) -> Result<T, ConfigError> + Send + 'static,
    {
        let store = self.config.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| ServiceError::internal(format!("configuration task failed: {e}")))?
            .map_err(ServiceError::from)
    }

    /// `/metrics`: Prometheus text of every publisher counter.
    pub fn metrics_text(&self) -> String {
        render_prometheus(&self.diagnostics, &self.config.packed())
    }

    /// Runs a method named as RPC callers name it (any `_V1`/`_V2` suffix, any case) and
    /// answers `(HTTP-style status, JSON body)`, as MQTT RPC sends it.
    pub async fn call(&self, method: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let result = match Operation::from_rpc_name(method) {
            Some(op) => self.invoke(op, body).await,
            None => Err(unsupported(method)),
        };
        match result {
            Ok(v) => (200, serde_json::to_vec(&v).unwrap_or_default()),
            Err(e) => (http_status(e.kind).as_u16(), problem_body(&e).to_json()),
        }
    }

    /// Runs an operation on its JSON request body.
    pub async fn invoke(&self, op: Operation, body: &[u8]) -> Result<Value> {
        if !Self::implements(op) {
            return Err(unsupported(op.name()));
        }
        let method = op.name();
        match op {
            Operation::ValueRead => {
                self.twin_op(
                    body,
                    |r: &ValueReadRequestModel| r.header.clone(),
                    |c, r| async move { twin::read::value_read(c, &r).await },
                )
                .await
            }
            Operation::NodeRead => {
                self.twin_op(
                    body,
                    |r: &ReadRequestModel| r.header.clone(),
                    |c, r| async move { twin::read::node_read(c, &r).await },
                )
                .await
            }
            Operation::ValueWrite => {
                self.twin_op(
                    body,
                    |r: &ValueWriteRequestModel| r.header.clone(),
                    |c, r| async move { twin::write::value_write(c, &r).await },
                )
                .await
            }
            Operation::NodeWrite => {
                self.twin_op(
                    body,
                    |r: &WriteRequestModel| r.header.clone(),
                    |c, r| async move { twin::write::node_write(c, &r).await },
                )
                .await
            }
            Operation::Browse => {
                self.twin_op(
                    body,
                    |r: &BrowseFirstRequestModel| r.header.clone(),
                    |c, r| async move { twin::browse::browse_first(c, &r).await },
                )
                .await
            }
            Operation::BrowseNext => {
                self.twin_op(
                    body,
                    |r: &BrowseNextRequestModel| r.header.clone(),
                    |c, r| async move { twin::browse::browse_next(c, &r).await },
                )
                .await
            }
            Operation::BrowsePath => {
                self.twin_op(
                    body,
                    |r: &BrowsePathRequestModel| r.header.clone(),
                    |c, r| async move { twin::browse::browse_path(c, &r).await },
                )
                .await
            }
            Operation::MethodMetadata => {
                self.twin_op(
                    body,
                    |r: &MethodMetadataRequestModel| r.header.clone(),
                    |c, r| async move { twin::call::method_metadata(c, &r).await },
                )
                .await
            }
            Operation::MethodCall => {
                self.twin_op(
                    body,
                    |r: &MethodCallRequestModel| r.header.clone(),
                    |c, r| async move { twin::call::method_call(c, &r).await },
                )
                .await
            }
            Operation::GetServerCapabilities => {
                self.twin_op(
                    body,
                    |r: &Option<RequestHeaderModel>| r.clone(),
                    |c, _| capabilities::server_capabilities(c),
                )
                .await
            }
            Operation::GetEndpointCertificate => {
                let endpoint: EndpointModel = decode(body)?;
                let connection = crate::api::ConnectionModel {
                    endpoint,
                    ..Default::default()
                };
                encode(
                    self.twin
                        .run(&connection, None, |c| async move {
                            capabilities::endpoint_certificate(&c)
                        })
                        .await?,
                )
            }
            Operation::TestConnection => {
                let r: RequestEnvelope<Option<TestConnectionRequestModel>> = decode(body)?;
                let h = r.request.as_ref().and_then(|t| t.header.clone());
                let outcome = self
                    .twin
                    .run(&r.connection, h.as_ref(), |_| async { Ok(()) })
                    .await;
                encode(match outcome {
                    Ok(()) => TestConnectionResponseModel { error_info: None },
                    Err(e) if e.kind == ErrorKind::BadRequest => return Err(e),
                    Err(e) => TestConnectionResponseModel {
                        error_info: Some(twin::error_info_of(&e)),
                    },
                })
            }
            Operation::FindServer => {
                let q: ServerEndpointQueryModel = decode(body)?;
                let mut found = self.discovery.find_server(&q).await?;
                encode(found.swap_remove(0))
            }
            Operation::Register => {
                let r: ServerRegistrationRequestModel = decode(body)?;
                self.discovery.register(r)?;
                encode(true)
            }
            Operation::Discover => {
                let r: DiscoveryRequestModel = decode(body)?;
                self.discovery.discover(r)?;
                encode(true)
            }
            Operation::Cancel => {
                let r: DiscoveryCancelRequestModel = decode(body)?;
                self.discovery.cancel(&r)?;
                encode(true)
            }
            Operation::PublishNodes => {
                let e = required_entry(method, body)?;
                self.config_op(move |s| s.publish_nodes(e)).await?;
                encode(PublishedNodesResponseModel::default())
            }
            Operation::UnpublishNodes => {
                let e = required_entry(method, body)?;
                self.config_op(move |s| s.unpublish_nodes(e)).await?;
                encode(PublishedNodesResponseModel::default())
            }
            Operation::PublishStart => {
                let r: RequestEnvelope<PublishStartRequestModel> = decode(body)?;
                let item = r
                    .request
                    .item
                    .filter(|i| !i.node_id.trim().is_empty())
                    .ok_or_else(|| {
                        ServiceError::bad_request(
                            StatusCode::BadNodeIdInvalid,
                            "PublishStart needs request.item with a nodeId",
                        )
                    })?;
                let mut entry = entry_for(&r.connection);
                entry.opc_nodes = Some(vec![item.to_node()]);
                self.config_op(move |s| s.publish_nodes(entry)).await?;
                encode(PublishResultModel::default())
            }
            Operation::PublishStop => {
                let r: RequestEnvelope<PublishStopRequestModel> = decode(body)?;
                if r.request.node_id.trim().is_empty() {
                    return Err(ServiceError::bad_request(
                        StatusCode::BadNodeIdInvalid,
                        "PublishStop needs request.nodeId",
                    ));
                }
                let mut entry = entry_for(&r.connection);
                entry.opc_nodes = Some(vec![OpcNodeModel {
                    id: Some(r.request.node_id),
                    ..Default::default()
                }]);
                self.config_op(move |s| s.unpublish_nodes(entry)).await?;
                encode(PublishResultModel::default())
            }
            Operation::PublishBulk => {
                let r: RequestEnvelope<PublishBulkRequestModel> = decode(body)?;
                let base = entry_for(&r.connection);
                let mut answer = PublishBulkResponseModel::default();
                // Adds go in as one change (one persist, one re-plan); a refusal is each one's.
                let adds: Vec<_> = r.request.nodes_to_add.iter().map(|i| i.to_node()).collect();
                if !adds.is_empty() {
                    let mut entry = base.clone();
                    entry.opc_nodes = Some(adds);
                    let result = match self.config_op(move |s| s.publish_nodes(entry)).await {
                        Ok(()) => ServiceResultModel::default(),
                        Err(e) => result_of(&e),
                    };
                    answer.nodes_to_add = vec![result; r.request.nodes_to_add.len()];
                }
                // Removals one by one: a node that is not published fails alone.
                for node_id in r.request.nodes_to_remove {
                    let mut entry = base.clone();
                    entry.opc_nodes = Some(vec![OpcNodeModel {
                        id: Some(node_id),
                        ..Default::default()
                    }]);
                    answer.nodes_to_remove.push(
                        match self.config_op(move |s| s.unpublish_nodes(entry)).await {
                            Ok(()) => ServiceResultModel::default(),
                            Err(e) => result_of(&e),
                        },
                    );
                }
                encode(answer)
            }
            Operation::PublishList => {
                let r: RequestEnvelope<PublishedItemListRequestModel> = decode(body)?;
                let entry = entry_for(&r.connection);
                let nodes = match self
                    .config_op(move |s| s.get_configured_nodes_on_endpoint(entry))
                    .await
                {
                    Ok(nodes) => nodes,
                    // Nothing published on this connection yet: an empty list.
                    Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e),
                };
                encode(PublishedItemListResponseModel {
                    items: nodes
                        .iter()
                        .filter_map(PublishedItemModel::from_node)
                        .collect(),
                    continuation_token: None,
                })
            }
            Operation::UnpublishAllNodes => {
                let e = parse_entry(body).map_err(bad_body)?;
                self.config_op(move |s| s.unpublish_all_nodes(e)).await?;
                encode(PublishedNodesResponseModel::default())
            }
            Operation::AddOrUpdateEndpoints => {
                let entries = parse_entries(body).map_err(bad_body)?;
                self.config_op(move |s| s.add_or_update_endpoints(entries))
                    .await?;
                encode(PublishedNodesResponseModel::default())
            }
            Operation::SetConfiguredEndpoints => {
                let entries = parse_set_configured_endpoints(body).map_err(bad_body)?;
                self.config_op(move |s| s.set_configured_endpoints(entries))
                    .await?;
                encode(PublishedNodesResponseModel::default())
            }
            Operation::GetConfiguredEndpoints => {
                let r: Option<GetConfiguredEndpointsRequestModel> = decode(body)?;
                let include = r.and_then(|r| r.include_nodes).unwrap_or(false);
                let endpoints = self
                    .config_op(move |s| s.get_configured_endpoints(include))
                    .await?;
                encode(GetConfiguredEndpointsResponseModel { endpoints })
            }
            Operation::GetConfiguredNodesOnEndpoint => {
                let e = required_entry(method, body)?;
                let opc_nodes = self
                    .config_op(move |s| s.get_configured_nodes_on_endpoint(e))
                    .await?;
                encode(GetConfiguredNodesOnEndpointResponseModel { opc_nodes })
            }
            Operation::GetDiagnosticInfo => {
                let diagnostics = self.diagnostics.clone();
                encode(
                    self.config_op(move |s| s.diagnostic_info(&diagnostics))
                        .await?,
                )
            }
            _ => Err(unsupported(method)),
        }
    }

    /// Decodes a `{connection, request}` envelope and runs `op` on the connection's session.
    async fn twin_op<Req, Resp, H, F, Fut>(&self, body: &[u8], header: H, op: F) -> Result<Value>
    where
        Req: DeserializeOwned + Default,
        Resp: Serialize,
        H: FnOnce(&Req) -> Option<RequestHeaderModel>,
        F: FnOnce(twin::OpContext, Req) -> Fut,
        Fut: Future<Output = Result<Resp>>,
    {
        let r: RequestEnvelope<Req> = decode(body)?;
        let h = header(&r.request);
        let RequestEnvelope {
            connection,
            request,
        } = r;
        encode(
            self.twin
                .run(&connection, h.as_ref(), move |c| op(c, request))
                .await?,
        )
    }

    /// Starts a BrowseStream; the receiver yields JSON lines until the walk ends.
    pub async fn browse_stream(
        &self,
        body: &[u8],
    ) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>> {
        let r: RequestEnvelope<BrowseStreamRequestModel> = decode(body)?;
        let ctx = self
            .twin
            .context(&r.connection, r.request.header.as_ref())
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(twin::browse_stream::run(ctx, r.request, tx));
        Ok(rx)
    }

    /// Runs a trust-store operation on the blocking pool: stores are directories of files.
    async fn pki_op<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Pki) -> Result<T> + Send + 'static,
    {
        let pki = self.pki.clone();
        tokio::task::spawn_blocking(move || op(&pki))
            .await
            .map_err(|e| ServiceError::internal(format!("trust store task failed: {e}")))?
    }

    pub async fn pki_list(&self, store: &str) -> Result<Value> {
        let store = Store::parse(store)?;
        let certs: Vec<X509CertificateModel> = self
            .pki_op(move |pki| pki.list(store))
            .await?
            .iter()
            .map(capabilities::certificate_model)
            .collect();
        encode(certs)
    }

    /// Adds a certificate sent as DER, PEM, base64 DER, or `{"pfxBlob": base64}`.
    pub async fn pki_add(&self, store: &str, body: &[u8]) -> Result<Value> {
        let store = Store::parse(store)?;
        let der = certificate_bytes(body)?;
        let info = self.pki_op(move |pki| pki.add(store, &der)).await?;
        encode(capabilities::certificate_model(&info))
    }

    pub async fn pki_remove(&self, store: &str, thumbprint: &str) -> Result<()> {
        let store = Store::parse(store)?;
        let thumbprint = thumbprint.to_string();
        self.pki_op(move |pki| pki.remove(store, &thumbprint)).await
    }

    pub async fn pki_approve(&self, thumbprint: &str) -> Result<Value> {
        let thumbprint = thumbprint.to_string();
        let info = self.pki_op(move |pki| pki.approve(&thumbprint)).await?;
        encode(capabilities::certificate_model(&info))
    }
}

fn certificate_bytes(body: &[u8]) -> Result<Vec<u8>> {
    use base64::Engine;
    let bad = || {
        ServiceError::bad_request(
            StatusCode::BadCertificateInvalid,
            "send the certificate as DER, PEM, a base64 string or {\"pfxBlob\": \"<base64>\"}",
        )
    };
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    if body.starts_with(b"-----BEGIN") {
        return x509_parser::pem::parse_x509_pem(body)
            .map(|(_, p)| p.contents)
            .map_err(|_| bad());
    }
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(o)) => o
            .get("pfxBlob")
            .or_else(|| o.get("certificate"))
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string(),
        _ => String::from_utf8(body.to_vec()).map_err(|_| bad())?,
    };
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests;
