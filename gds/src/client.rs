//! The pull-model calls (Part 12 §7.9) on an open async-opcua session: what an application
//! needs to enroll and stay enrolled. Session set-up (endpoint, security, user identity) is the
//! caller's: it decides what it trusts.

use std::sync::Arc;

use opcua::client::Session;
use opcua::types::{ByteString, CallMethodRequest, NodeId, ObjectTypeId, StatusCode, Variant};

use crate::ids::{self, MethodIds};
use crate::record::ApplicationRecord;
use crate::trust_list::TrustLists;
use crate::GDS_NAMESPACE_URI;

/// Why a GDS call did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum GdsError {
    /// The server answered the call with a Bad status.
    #[error("{call}: {status}")]
    Status {
        call: &'static str,
        status: StatusCode,
    },
    /// The service call itself failed (connection, secure channel, session).
    #[error("{call}: {status} (service)")]
    Service {
        call: &'static str,
        status: StatusCode,
    },
    /// An answer that does not have the shape the NodeSet declares.
    #[error("{0}")]
    Answer(String),
}

impl GdsError {
    /// The OPC UA status behind the failure, if there is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GdsError::Status { status, .. } | GdsError::Service { status, .. } => Some(*status),
            GdsError::Answer(_) => None,
        }
    }
}

type Result<T> = std::result::Result<T, GdsError>;

/// What FinishRequest hands out once a request is approved.
pub struct Finished {
    pub certificate: Vec<u8>,
    /// Only for a new key pair, and only the first time.
    pub private_key: Option<Vec<u8>>,
    pub issuers: Vec<Vec<u8>>,
}

/// Never prints the private key.
impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished")
            .field("certificate_bytes", &self.certificate.len())
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
            .field("issuers", &self.issuers.len())
            .finish()
    }
}

/// The Directory of one GDS, reached through `session`.
pub struct GdsClient {
    session: Arc<Session>,
    ns: u16,
}

fn bytes(v: Option<&Variant>) -> Vec<u8> {
    match v {
        Some(Variant::ByteString(b)) => b.value.clone().unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn node_id(v: Option<Variant>, call: &str) -> Result<NodeId> {
    match v {
        Some(Variant::NodeId(n)) => Ok(*n),
        other => Err(GdsError::Answer(format!(
            "{call} answered {other:?}, not a NodeId"
        ))),
    }
}

impl GdsClient {
    /// Resolves the GDS namespace's index on this server (never assumed).
    pub async fn new(session: Arc<Session>) -> Result<GdsClient> {
        let namespaces = session
            .read_namespace_array()
            .await
            .map_err(|e| GdsError::Service {
                call: "read NamespaceArray",
                status: e.into(),
            })?;
        let ns = namespaces.get_index(GDS_NAMESPACE_URI).ok_or_else(|| {
            GdsError::Answer(format!("the server has no {GDS_NAMESPACE_URI} namespace"))
        })?;
        Ok(GdsClient { session, ns })
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The GDS namespace's index on this server.
    pub fn namespace(&self) -> u16 {
        self.ns
    }

    /// A node of the GDS namespace.
    pub fn node(&self, id: u32) -> NodeId {
        NodeId::new(self.ns, id)
    }

    /// `DefaultApplicationGroup`.
    pub fn application_group(&self) -> NodeId {
        self.node(ids::GROUPS[0].id)
    }

    /// The binary encoding id of ApplicationRecordDataType on this server.
    pub fn record_encoding(&self) -> NodeId {
        self.node(ids::APPLICATION_RECORD_BINARY)
    }

    async fn call_on(
        &self,
        object: NodeId,
        method: NodeId,
        call: &'static str,
        args: Vec<Variant>,
    ) -> Result<Vec<Variant>> {
        let result = self
            .session
            .call_one(CallMethodRequest {
                object_id: object,
                method_id: method,
                input_arguments: Some(args),
            })
            .await
            .map_err(|e| GdsError::Service {
                call,
                status: e.into(),
            })?;
        if !result.status_code.is_good() {
            return Err(GdsError::Status {
                call,
                status: result.status_code,
            });
        }
        Ok(result.output_arguments.unwrap_or_default())
    }

    async fn call(&self, method: MethodIds, args: Vec<Variant>) -> Result<Vec<Variant>> {
        self.call_on(
            self.node(ids::DIRECTORY),
            self.node(method.id),
            method.name,
            args,
        )
        .await
    }

    pub async fn find_applications(&self, uri: &str) -> Result<Vec<ApplicationRecord>> {
        let out = self
            .call(ids::FIND_APPLICATIONS, vec![Variant::from(uri)])
            .await?;
        let values = match out.into_iter().next() {
            Some(Variant::Array(a)) => a.values,
            Some(Variant::Empty) | None => Vec::new(),
            Some(v) => vec![v],
        };
        values
            .iter()
            .map(|v| match v {
                Variant::ExtensionObject(o) => {
                    ApplicationRecord::from_extension_object(o, &self.record_encoding())
                        .map_err(|s| GdsError::Answer(format!("FindApplications record: {s}")))
                }
                other => Err(GdsError::Answer(format!(
                    "FindApplications answered {other:?}"
                ))),
            })
            .collect()
    }

    pub async fn register_application(&self, record: &ApplicationRecord) -> Result<NodeId> {
        let object = record.to_extension_object(&self.record_encoding());
        let out = self
            .call(ids::REGISTER_APPLICATION, vec![Variant::from(object)])
            .await?;
        node_id(out.into_iter().next(), "RegisterApplication")
    }

    /// StartSigningRequest with a DER PKCS#10 request.
    pub async fn start_signing_request(
        &self,
        app: &NodeId,
        group: &NodeId,
        certificate_type: ObjectTypeId,
        csr_der: &[u8],
    ) -> Result<NodeId> {
        let out = self
            .call(
                ids::START_SIGNING_REQUEST,
                vec![
                    app.clone().into(),
                    group.clone().into(),
                    NodeId::from(certificate_type).into(),
                    ByteString::from(csr_der.to_vec()).into(),
                ],
            )
            .await?;
        node_id(out.into_iter().next(), "StartSigningRequest")
    }

    /// FinishRequest; `None` while the request waits for approval (Bad_NothingToDo).
    pub async fn finish_request(&self, app: &NodeId, request: &NodeId) -> Result<Option<Finished>> {
        let out = match self
            .call(
                ids::FINISH_REQUEST,
                vec![app.clone().into(), request.clone().into()],
            )
            .await
        {
            Err(GdsError::Status { status, .. }) if status == StatusCode::BadNothingToDo => {
                return Ok(None)
            }
            other => other?,
        };
        let certificate = bytes(out.first());
        if certificate.is_empty() {
            return Err(GdsError::Answer(
                "FinishRequest answered Good without a certificate".into(),
            ));
        }
        let key = bytes(out.get(1));
        let issuers = match out.get(2) {
            Some(Variant::Array(a)) => a.values.iter().map(|v| bytes(Some(v))).collect(),
            _ => Vec::new(),
        };
        Ok(Some(Finished {
            certificate,
            private_key: (!key.is_empty()).then_some(key),
            issuers,
        }))
    }

    /// GetCertificateStatus: whether the application should renew its certificate.
    pub async fn update_required(
        &self,
        app: &NodeId,
        group: &NodeId,
        certificate_type: ObjectTypeId,
    ) -> Result<bool> {
        let out = self
            .call(
                ids::GET_CERTIFICATE_STATUS,
                vec![
                    app.clone().into(),
                    group.clone().into(),
                    NodeId::from(certificate_type).into(),
                ],
            )
            .await?;
        match out.first() {
            Some(Variant::Boolean(b)) => Ok(*b),
            other => Err(GdsError::Answer(format!(
                "GetCertificateStatus answered {other:?}"
            ))),
        }
    }

    /// GetTrustList, then the TrustList file read through Open, Read and Close.
    pub async fn trust_list(&self, app: &NodeId, group: &NodeId) -> Result<TrustLists> {
        let out = self
            .call(
                ids::GET_TRUST_LIST,
                vec![app.clone().into(), group.clone().into()],
            )
            .await?;
        let file = node_id(out.into_iter().next(), "GetTrustList")?;
        let base = match (&file.identifier, file.namespace == self.ns) {
            (opcua::types::Identifier::Numeric(n), true)
                if ids::GROUPS.iter().any(|g| g.trust_list == *n) =>
            {
                *n
            }
            _ => {
                return Err(GdsError::Answer(format!(
                    "GetTrustList answered {file}, not a TrustList of the GDS namespace"
                )))
            }
        };
        let member = |name: &str| {
            ids::trust_list::METHODS
                .iter()
                .find(|(n, ..)| *n == name)
                .map(|(_, offset, ..)| self.node(base + offset))
                .unwrap_or_default()
        };
        let out = self
            .call_on(
                file.clone(),
                member("Open"),
                "TrustList.Open",
                vec![Variant::Byte(1)],
            )
            .await?;
        let handle = match out.first() {
            Some(Variant::UInt32(h)) => *h,
            other => return Err(GdsError::Answer(format!("Open answered {other:?}"))),
        };
        let mut content = Vec::new();
        let read = loop {
            let chunk = self
                .call_on(
                    file.clone(),
                    member("Read"),
                    "TrustList.Read",
                    vec![Variant::UInt32(handle), Variant::Int32(64 * 1024)],
                )
                .await;
            match chunk {
                Ok(out) => {
                    let data = bytes(out.first());
                    if data.is_empty() {
                        break Ok(());
                    }
                    content.extend_from_slice(&data);
                    if content.len() > 64 * 1024 * 1024 {
                        break Err(GdsError::Answer("trust list larger than 64 MiB".into()));
                    }
                }
                Err(e) => break Err(e),
            }
        };
        // Closed whatever happened, so the server's handle is not left to expire.
        let closed = self
            .call_on(
                file,
                member("Close"),
                "TrustList.Close",
                vec![Variant::UInt32(handle)],
            )
            .await;
        read?;
        closed?;
        TrustLists::decode(&content).map_err(|e| GdsError::Answer(e.to_string()))
    }
}
