//! The push-model calls (Part 12 §7.7, §7.8) on an open async-opcua session: what a
//! certificate manager needs to give any OPC UA server a certificate and a trust list.
//! Session set-up is the caller's: servers take these calls only over SignAndEncrypt from a
//! user with the SecurityAdmin role, and the caller decides which server it trusts.

use std::sync::Arc;

use opcua::client::Session;
use opcua::types::MethodId::{
    ServerConfiguration_ApplyChanges as APPLY_CHANGES,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_AddCertificate as ADD_CERTIFICATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Close as CLOSE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_CloseAndUpdate as CLOSE_AND_UPDATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Open as OPEN,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_OpenWithMasks as OPEN_WITH_MASKS,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Read as READ,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_RemoveCertificate as REMOVE_CERTIFICATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Write as WRITE,
    ServerConfiguration_CreateSigningRequest as CREATE_SIGNING_REQUEST,
    ServerConfiguration_GetRejectedList as GET_REJECTED_LIST,
    ServerConfiguration_UpdateCertificate as UPDATE_CERTIFICATE,
};
use opcua::types::VariableId::{
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_CertificateTypes as CERTIFICATE_TYPES,
    ServerConfiguration_MaxTrustListSize as MAX_TRUST_LIST_SIZE,
    ServerConfiguration_SupportedPrivateKeyFormats as KEY_FORMATS,
};
use opcua::types::{
    AttributeId, ByteString, CallMethodRequest, MethodId, NodeId, ObjectId, ObjectTypeId,
    ReadValueId, StatusCode, TimestampsToReturn, UAString, VariableId, Variant,
};

use crate::file::{MODE_ERASE_EXISTING, MODE_WRITE};
use crate::trust_list::TrustLists;

/// Below the 65,535-byte ByteString limit async-opcua (and other stacks) decode by default, so
/// a trust list larger than one chunk still travels.
const WRITE_CHUNK: usize = 32 * 1024;
const READ_CHUNK: i32 = 32 * 1024;
/// A trust list larger than this is a server misbehaving, not a trust list.
const MAX_READ_TOTAL: usize = 16 * 1024 * 1024;
/// Reads per file at most: a server answering a byte at a time must not hold the caller.
const MAX_READS: usize = 4096;
/// Part 12 §7.7.4 asks for at least 32 bytes of entropy with a new key.
const NONCE_LEN: usize = 32;

/// Why a push call did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The server answered the call (or the property read) with a Bad status: callers tell
    /// refusals (Bad_UserAccessDenied, Bad_SecurityModeInsufficient), missing support
    /// (Bad_NotSupported, Bad_MethodInvalid) and bad input apart by it.
    #[error("{method}: {status}")]
    Refused {
        method: &'static str,
        status: StatusCode,
    },
    /// The service itself failed (connection, secure channel, session).
    #[error("{method}: {status} (service)")]
    Service {
        method: &'static str,
        status: StatusCode,
    },
    /// An answer that does not have the shape Part 12 declares.
    #[error("{0}")]
    Answer(String),
    #[error("nonce: {0}")]
    Nonce(#[from] openssl::error::ErrorStack),
}

impl PushError {
    /// The OPC UA status behind the failure, if there is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            PushError::Refused { status, .. } | PushError::Service { status, .. } => Some(*status),
            PushError::Answer(_) | PushError::Nonce(_) => None,
        }
    }
}

type Result<T> = std::result::Result<T, PushError>;

fn service(method: &'static str) -> impl FnOnce(opcua::types::Error) -> PushError {
    move |e| PushError::Service {
        method,
        status: e.into(),
    }
}

fn bytes(v: Option<&Variant>) -> Vec<u8> {
    match v {
        Some(Variant::ByteString(b)) => b.value.clone().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Array or scalar alike, so a server answering one element unwrapped is still understood.
fn elements(v: Option<Variant>) -> Vec<Variant> {
    match v {
        Some(Variant::Array(a)) => a.values,
        Some(Variant::Empty) | None => Vec::new(),
        Some(v) => vec![v],
    }
}

fn first<T>(out: &[Variant], method: &str, pick: impl Fn(&Variant) -> Option<T>) -> Result<T> {
    out.first()
        .and_then(pick)
        .ok_or_else(|| PushError::Answer(format!("{method} answered {:?}", out.first())))
}

fn boolean(out: &[Variant], method: &str) -> Result<bool> {
    first(out, method, |v| match v {
        Variant::Boolean(b) => Some(*b),
        _ => None,
    })
}

fn handle(out: &[Variant], method: &str) -> Result<u32> {
    first(out, method, |v| match v {
        Variant::UInt32(h) => Some(*h),
        _ => None,
    })
}

fn group_and_type() -> [Variant; 2] {
    let group = ObjectId::ServerConfiguration_CertificateGroups_DefaultApplicationGroup;
    [
        NodeId::from(group).into(),
        NodeId::from(ObjectTypeId::RsaSha256ApplicationCertificateType).into(),
    ]
}

/// The ServerConfiguration and DefaultApplicationGroup of one server, reached through
/// `session`: the one group every Part 12 server has.
pub struct PushClient {
    session: Arc<Session>,
}

impl PushClient {
    pub fn new(session: Arc<Session>) -> Self {
        PushClient { session }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// A property's value as a list, keeping the elements `pick` takes.
    async fn read<T>(
        &self,
        id: VariableId,
        method: &'static str,
        pick: impl Fn(Variant) -> Option<T>,
    ) -> Result<Vec<T>> {
        let nodes = [ReadValueId {
            node_id: id.into(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        }];
        let read = self.session.read(&nodes, TimestampsToReturn::Neither, 0.0);
        let values = read.await.map_err(service(method))?;
        let value = values.into_iter().next().unwrap_or_default();
        match value.status {
            Some(status) if !status.is_good() => Err(PushError::Refused { method, status }),
            _ => Ok(elements(value.value).into_iter().filter_map(pick).collect()),
        }
    }

    /// The formats `update_certificate` may send a private key in (e.g. "PEM", "PFX").
    pub async fn supported_private_key_formats(&self) -> Result<Vec<String>> {
        self.read(KEY_FORMATS, "SupportedPrivateKeyFormats", |v| match v {
            Variant::String(s) => s.value().clone(),
            _ => None,
        })
        .await
    }

    /// Which certificates (so which CSRs) the DefaultApplicationGroup takes.
    pub async fn certificate_types(&self) -> Result<Vec<NodeId>> {
        self.read(CERTIFICATE_TYPES, "CertificateTypes", |v| match v {
            Variant::NodeId(n) => Some(*n),
            _ => None,
        })
        .await
    }

    /// The largest trust list the server takes; 0 when it declares none.
    pub async fn max_trust_list_size(&self) -> Result<u32> {
        let size = self.read(MAX_TRUST_LIST_SIZE, "MaxTrustListSize", |v| match v {
            Variant::UInt32(n) => Some(n),
            _ => None,
        });
        Ok(size.await?.first().copied().unwrap_or(0))
    }

    async fn call(
        &self,
        id: MethodId,
        method: &'static str,
        args: Vec<Variant>,
    ) -> Result<Vec<Variant>> {
        let object = match id {
            CREATE_SIGNING_REQUEST | UPDATE_CERTIFICATE | APPLY_CHANGES | GET_REJECTED_LIST => {
                ObjectId::ServerConfiguration
            }
            _ => ObjectId::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList,
        };
        let request = CallMethodRequest {
            object_id: object.into(),
            method_id: id.into(),
            input_arguments: Some(args),
        };
        let result = self.session.call_one(request).await;
        let result = result.map_err(service(method))?;
        match result.status_code {
            status if !status.is_good() => Err(PushError::Refused { method, status }),
            _ => Ok(result.output_arguments.unwrap_or_default()),
        }
    }

    /// A DER PKCS#10 request for the server's current key, or for a new key the server makes
    /// and keeps until `update_certificate`, so the key never travels. The subject stays the
    /// server's own.
    pub async fn create_signing_request(&self, regenerate_key: bool) -> Result<Vec<u8>> {
        let mut nonce = vec![0u8; if regenerate_key { NONCE_LEN } else { 0 }];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut args = Vec::from(group_and_type());
        args.extend([
            UAString::null().into(),
            regenerate_key.into(),
            ByteString::from(nonce).into(),
        ]);
        let out = self.call(CREATE_SIGNING_REQUEST, "CreateSigningRequest", args);
        let csr = bytes(out.await?.first());
        if csr.is_empty() {
            return Err(PushError::Answer(
                "CreateSigningRequest answered no CSR".into(),
            ));
        }
        Ok(csr)
    }

    /// Stages a certificate with its issuers (nearest first) and, when the server did not
    /// make the key, the key as `(format, bytes)`; answers whether `apply_changes` is needed.
    pub async fn update_certificate(
        &self,
        certificate: &[u8],
        issuers: &[Vec<u8>],
        private_key: Option<(&str, &[u8])>,
    ) -> Result<bool> {
        // A null format, not an empty one, says "no key" to every server.
        let (format, key) = match private_key {
            Some((format, key)) => (UAString::from(format), key),
            None => (UAString::null(), &[][..]),
        };
        let issuers: Vec<ByteString> = issuers.iter().map(|d| d.clone().into()).collect();
        let mut args = Vec::from(group_and_type());
        args.extend([
            ByteString::from(certificate.to_vec()).into(),
            issuers.into(),
            format.into(),
            ByteString::from(key.to_vec()).into(),
        ]);
        let out = self.call(UPDATE_CERTIFICATE, "UpdateCertificate", args);
        boolean(&out.await?, "UpdateCertificate")
    }

    /// Makes the staged certificate the one new channels see. Some servers restart their
    /// endpoints on it: expect to reconnect.
    pub async fn apply_changes(&self) -> Result<()> {
        self.call(APPLY_CHANGES, "ApplyChanges", Vec::new())
            .await
            .map(drop)
    }

    /// The certificates the server refused, for an operator to pick the ones to trust.
    pub async fn rejected_list(&self) -> Result<Vec<Vec<u8>>> {
        let out = self.call(GET_REJECTED_LIST, "GetRejectedList", Vec::new());
        let list = elements(out.await?.into_iter().next());
        Ok(list.iter().map(|v| bytes(Some(v))).collect())
    }

    /// Opens the TrustList file: 0x01 to read, 0x06 to replace it. `read_trust_list` and
    /// `write_trust_list` are safer: they always close what they open, and a server refuses
    /// changes while a handle is open.
    pub async fn open(&self, mode: u8) -> Result<u32> {
        handle(&self.call(OPEN, "Open", vec![mode.into()]).await?, "Open")
    }

    pub async fn close(&self, handle: u32) -> Result<()> {
        self.call(CLOSE, "Close", vec![handle.into()])
            .await
            .map(drop)
    }

    /// The lists `masks` selects (`trust_list::TRUSTED_CERTIFICATES` …).
    pub async fn read_trust_list(&self, masks: u32) -> Result<TrustLists> {
        let out = self.call(OPEN_WITH_MASKS, "OpenWithMasks", vec![masks.into()]);
        let handle = handle(&out.await?, "OpenWithMasks")?;
        let mut content = Vec::new();
        let mut reads = 0;
        let read = loop {
            reads += 1;
            if reads > MAX_READS {
                break Err(PushError::Answer(format!(
                    "trust list not read in {MAX_READS} reads"
                )));
            }
            let args = vec![handle.into(), READ_CHUNK.into()];
            let data = match self.call(READ, "Read", args).await {
                Ok(out) => bytes(out.first()),
                Err(e) => break Err(e),
            };
            if data.is_empty() {
                break Ok(());
            }
            content.extend_from_slice(&data);
            if content.len() > MAX_READ_TOTAL {
                break Err(PushError::Answer("trust list larger than 16 MiB".into()));
            }
        };
        let closed = self.close(handle).await;
        read?;
        closed?;
        TrustLists::decode(&content).map_err(|e| PushError::Answer(e.to_string()))
    }

    /// Replaces the lists `masks` selects with those of `lists` and leaves the others;
    /// answers whether `apply_changes` is needed.
    pub async fn write_trust_list(&self, lists: &TrustLists, masks: u32) -> Result<bool> {
        self.write_trust_list_file(&lists.encode(masks)).await
    }

    /// Writes a TrustList file's content as it is (a TrustListDataType in UA Binary).
    pub async fn write_trust_list_file(&self, content: &[u8]) -> Result<bool> {
        let handle = self.open(MODE_WRITE | MODE_ERASE_EXISTING).await?;
        let mut updated = Ok(Vec::new());
        for chunk in content.chunks(WRITE_CHUNK) {
            let args = vec![handle.into(), ByteString::from(chunk.to_vec()).into()];
            updated = self.call(WRITE, "Write", args).await;
            if updated.is_err() {
                break;
            }
        }
        if updated.is_ok() {
            let args = vec![handle.into()];
            updated = self.call(CLOSE_AND_UPDATE, "CloseAndUpdate", args).await;
        }
        match updated {
            Ok(out) => boolean(&out, "CloseAndUpdate"),
            Err(e) => {
                // Some servers keep the file open after a failed CloseAndUpdate, and would
                // refuse every change until the handle expired.
                let _ = self.close(handle).await;
                Err(e)
            }
        }
    }

    /// One certificate into the trusted (or issuer) list, without rewriting the list.
    pub async fn add_certificate(&self, der: &[u8], trusted: bool) -> Result<()> {
        let args = vec![ByteString::from(der.to_vec()).into(), trusted.into()];
        self.call(ADD_CERTIFICATE, "AddCertificate", args)
            .await
            .map(drop)
    }

    /// The certificate with this SHA-1 thumbprint (hex) leaves the trusted (or issuer) list,
    /// and with it the CRLs it issued.
    pub async fn remove_certificate(&self, thumbprint: &str, trusted: bool) -> Result<()> {
        let args = vec![UAString::from(thumbprint).into(), trusted.into()];
        self.call(REMOVE_CERTIFICATE, "RemoveCertificate", args)
            .await
            .map(drop)
    }
}
