//! The GDS node manager: every Directory method, the TrustList file methods and the vault's
//! approval methods, each calling the same [`Vault`] service operation as its REST route, so
//! validation, workflow, auto-approve policy and audit lines are the same on both faces.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use iiot_auth::{ApiKeys, Role};
use iiot_gds::{args::Args, file::OpenFiles};
use opcua::{
    server::{
        address_space::{AddressSpace, NodeType},
        diagnostics::NamespaceMetadata,
        node_manager::{
            memory::{InMemoryNodeManager, InMemoryNodeManagerImpl},
            MethodCall, RequestContext, ServerContext,
        },
    },
    sync::RwLock,
    types::{
        ApplicationDescription, ByteString, DateTime, Guid, Identifier, LocalizedText, NodeId,
        NumericRange, ObjectTypeId, ServerOnNetwork, StatusCode, UAString, Variant,
    },
};

use super::access::{self, Caller};
use super::args::like;
use super::ids::{self, trust_list, GroupIds};
use super::nodes::{self, APPROVE_REQUEST, REJECT_REQUEST};
use super::records;
use super::status::status_of;
use super::trust_file;
use crate::ca::CertType;
use crate::model::{
    ApplicationQuery, ApplicationType, CertificateRequestState, StartNewKeyPairRequest,
    StartSigningRequest,
};
use crate::service::{Revocation, Vault};
use iiot_gds::record::ApplicationRecord;
use iiot_gds::trust_list::ALL as MASK_ALL;

/// The node manager type as registered in the server.
pub type GdsNodeManager = InMemoryNodeManager<GdsNodeManagerImpl>;

type Outputs = Result<Vec<Variant>, StatusCode>;

/// Most records one QueryApplications or QueryServers call returns.
const MAX_RECORDS: usize = 1000;

pub struct GdsNodeManagerImpl {
    vault: Arc<Vault>,
    keys: ApiKeys,
    ns: u16,
    vault_ns: u16,
    namespaces: Vec<NamespaceMetadata>,
    files: OpenFiles,
    /// When the record ids of QueryApplications/QueryServers were last renumbered: they are
    /// positions in the registration order, valid for this process's life.
    started: DateTime,
}

impl GdsNodeManagerImpl {
    pub fn new(vault: Arc<Vault>, keys: ApiKeys, ns: u16, vault_ns: u16) -> Self {
        let meta = |uri: &str, index: u16| NamespaceMetadata {
            namespace_uri: uri.to_owned(),
            namespace_index: index,
            is_namespace_subset: Some(false),
            ..Default::default()
        };
        Self {
            vault,
            keys,
            ns,
            vault_ns,
            namespaces: vec![
                meta(super::GDS_NAMESPACE_URI, ns),
                meta(nodes::VAULT_NAMESPACE_URI, vault_ns),
            ],
            files: OpenFiles::default(),
            started: DateTime::now(),
        }
    }

    fn encoding(&self) -> NodeId {
        NodeId::new(self.ns, ids::APPLICATION_RECORD_BINARY)
    }

    /// Application and request ids are UUIDs, carried as Guid NodeIds in the GDS namespace.
    fn to_node_id(&self, id: &str) -> NodeId {
        match uuid::Uuid::parse_str(id) {
            Ok(u) => NodeId::new(self.ns, Guid::from(u)),
            Err(_) => NodeId::new(self.ns, id),
        }
    }

    /// The vault id a NodeId names; anything else cannot be a record here (Bad_NotFound).
    fn vault_id(&self, n: &NodeId) -> Result<String, StatusCode> {
        if n.namespace != self.ns {
            return Err(StatusCode::BadNotFound);
        }
        match &n.identifier {
            Identifier::Guid(g) => Ok(uuid::Uuid::from(g.clone()).to_string()),
            Identifier::String(s) => s.value().clone().ok_or(StatusCode::BadNotFound),
            _ => Err(StatusCode::BadNotFound),
        }
    }

    /// The group a CertificateGroupId names; null is DefaultApplicationGroup (Part 12 §7.9.3).
    fn group(&self, n: &NodeId) -> Result<(usize, &'static GroupIds), StatusCode> {
        if n.is_null() {
            return Ok((0, &ids::GROUPS[0]));
        }
        ids::GROUPS
            .iter()
            .enumerate()
            .find(|(_, g)| *n == NodeId::new(self.ns, g.id))
            .ok_or(StatusCode::BadInvalidArgument)
    }

    fn group_node(&self, name: &str) -> Option<NodeId> {
        ids::GROUPS
            .iter()
            .find(|g| g.name == name)
            .map(|g| NodeId::new(self.ns, g.id))
    }

    /// The application the first argument names, and who acts on it: the API key holder with
    /// `role`, or the application itself (ApplicationSelfAdmin).
    async fn application_arg(
        &self,
        caller: &Caller,
        args: &Args<'_>,
        role: Role,
    ) -> Result<(String, iiot_auth::Principal), StatusCode> {
        let app = self.vault_id(&args.node_id(0)?)?;
        let who = caller.require_or_self(&self.vault, role, &app).await?;
        Ok((app, who))
    }

    async fn call_one(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        call: &MethodCall,
    ) -> Outputs {
        let caller = Caller::of(context, &self.keys)?;
        let args = Args(call.arguments());
        let method = call.method_id();
        if method.namespace == self.vault_ns {
            return self.vault_method(&caller, method, &args).await;
        }
        let Identifier::Numeric(id) = method.identifier else {
            return Err(StatusCode::BadMethodInvalid);
        };
        if let Some((index, g)) = ids::GROUPS
            .iter()
            .enumerate()
            .find(|(_, g)| *call.object_id() == NodeId::new(self.ns, g.trust_list))
        {
            let offset = id
                .checked_sub(g.trust_list)
                .ok_or(StatusCode::BadMethodInvalid)?;
            return self
                .trust_list_method(context, space, &caller, index, g, offset, &args)
                .await;
        }
        match id {
            143 => self.find_applications(&caller, &args).await,
            146 => self.register_application(&caller, &args).await,
            200 => self.update_application(&caller, &args).await,
            149 => self.unregister_application(&caller, &args).await,
            216 => self.get_application(&caller, &args).await,
            992 => self.query_applications(&caller, &args).await,
            151 => self.query_servers(&caller, &args).await,
            157 => self.start_signing_request(&caller, &args).await,
            154 => self.start_new_key_pair_request(&caller, &args).await,
            163 => self.finish_request(&caller, &args).await,
            508 => self.get_certificate_groups(&caller, &args).await,
            204 => self.get_trust_list(&caller, &args).await,
            225 => self.get_certificate_status(&caller, &args).await,
            15003 => self.revoke_certificate(&caller, &args).await,
            89 => self.get_certificates(&caller, &args).await,
            126 => self.check_revocation_status(&args).await,
            _ => Err(StatusCode::BadMethodInvalid),
        }
    }

    async fn find_applications(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        caller.require(Role::Reader)?;
        let uri = args.string(0)?.unwrap_or_default();
        let found = self
            .vault
            .query_applications(&ApplicationQuery {
                application_uri: Some(uri),
                ..Default::default()
            })
            .await
            .map_err(status_of)?;
        let records: Vec<_> = found
            .iter()
            .map(|r| {
                records::from_model(self.to_node_id(&r.application_id), r)
                    .to_extension_object(&self.encoding())
            })
            .collect();
        Ok(vec![Variant::from(records)])
    }

    async fn register_application(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let who = caller.require(Role::Writer)?;
        let record =
            ApplicationRecord::from_extension_object(args.extension_object(0)?, &self.encoding())?;
        let request = records::to_request(&record)?;
        let created = self
            .vault
            .register_application(&who, &request)
            .await
            .map_err(status_of)?;
        Ok(vec![Variant::from(
            self.to_node_id(&created.application_id),
        )])
    }

    async fn update_application(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let record =
            ApplicationRecord::from_extension_object(args.extension_object(0)?, &self.encoding())?;
        let id = self.vault_id(&record.application_id)?;
        let who = caller
            .require_or_self(&self.vault, Role::Writer, &id)
            .await?;
        let request = records::to_request(&record)?;
        if who.name.starts_with(access::SELF_PREFIX) {
            // An application may describe itself, not become another one: its URI (in its
            // certificates) and its type stay what an operator registered.
            let current = self.vault.application(&id).await.map_err(status_of)?;
            if request.application_uri.as_deref() != Some(current.application_uri.as_str())
                || request.application_type != Some(current.application_type)
            {
                return Err(StatusCode::BadUserAccessDenied);
            }
        }
        self.vault
            .update_application(&who, &id, &request)
            .await
            .map_err(status_of)?;
        Ok(vec![])
    }

    async fn unregister_application(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let who = caller.require(Role::Approver)?;
        let id = self.vault_id(&args.node_id(0)?)?;
        self.vault
            .unregister_application(&who, &id)
            .await
            .map_err(status_of)?;
        Ok(vec![])
    }

    async fn get_application(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (id, _) = self.application_arg(caller, args, Role::Reader).await?;
        let row = self.vault.application(&id).await.map_err(status_of)?;
        let record = records::from_model(self.to_node_id(&row.id), &row.to_record());
        Ok(vec![Variant::from(
            record.to_extension_object(&self.encoding()),
        )])
    }

    /// Registered applications with their record ids (1-based, in registration order).
    async fn numbered_applications(
        &self,
    ) -> Result<Vec<(u32, crate::model::ApplicationRecord)>, StatusCode> {
        // Numbered over every registration, unregistered ones included, so an unregistration
        // does not shift the ids a paging client holds.
        let all = self
            .vault
            .query_applications(&ApplicationQuery {
                include_unregistered: true,
                ..Default::default()
            })
            .await
            .map_err(status_of)?;
        Ok(all
            .into_iter()
            .enumerate()
            .map(|(i, r)| (u32::try_from(i + 1).unwrap_or(u32::MAX), r))
            .filter(|(_, r)| r.state == "Registered")
            .collect())
    }

    async fn query_applications(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        caller.require(Role::Reader)?;
        let start = args.u32(0)?;
        let max = args.u32(1)?;
        let name = args.string(2)?.unwrap_or_default();
        let uri = args.string(3)?.unwrap_or_default();
        let kind = args.u32(4)?;
        let product = args.string(5)?.unwrap_or_default();
        let capabilities = args.strings(6)?;
        let matching: Vec<_> = self
            .numbered_applications()
            .await?
            .into_iter()
            .filter(|(id, r)| {
                *id >= start
                    && matches_filters(r, &name, &uri, &product, &capabilities)
                    && match kind {
                        1 => r.application_type.is_server(),
                        2 => matches!(
                            r.application_type,
                            ApplicationType::Client | ApplicationType::ClientAndServer
                        ),
                        _ => true,
                    }
            })
            .collect();
        let limit = if max == 0 {
            MAX_RECORDS
        } else {
            (max as usize).min(MAX_RECORDS)
        };
        let next = matching.get(limit).map_or(0, |(id, _)| *id);
        let descriptions: Vec<ApplicationDescription> = matching
            .iter()
            .take(limit)
            .map(|(_, r)| ApplicationDescription {
                application_uri: r.application_uri.as_str().into(),
                product_uri: r.product_uri.as_str().into(),
                application_name: first_name(r),
                application_type: ua_application_type(r.application_type),
                gateway_server_uri: UAString::null(),
                discovery_profile_uri: UAString::null(),
                discovery_urls: Some(r.discovery_urls.iter().map(|u| u.as_str().into()).collect()),
            })
            .collect();
        Ok(vec![
            Variant::from(self.started),
            Variant::UInt32(next),
            Variant::from(descriptions),
        ])
    }

    async fn query_servers(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        caller.require(Role::Reader)?;
        let start = args.u32(0)?;
        let max = args.u32(1)?;
        let name = args.string(2)?.unwrap_or_default();
        let uri = args.string(3)?.unwrap_or_default();
        let product = args.string(4)?.unwrap_or_default();
        let capabilities = args.strings(5)?;
        let limit = if max == 0 {
            MAX_RECORDS
        } else {
            (max as usize).min(MAX_RECORDS)
        };
        let servers: Vec<ServerOnNetwork> = self
            .numbered_applications()
            .await?
            .into_iter()
            .filter(|(id, r)| {
                *id >= start
                    && r.application_type.is_server()
                    && matches_filters(r, &name, &uri, &product, &capabilities)
            })
            .flat_map(|(id, r)| {
                let name = first_name(&r).text;
                r.discovery_urls
                    .iter()
                    .map(|url| ServerOnNetwork {
                        record_id: id,
                        server_name: name.clone(),
                        discovery_url: url.as_str().into(),
                        server_capabilities: Some(
                            r.server_capabilities
                                .iter()
                                .map(|c| c.as_str().into())
                                .collect(),
                        ),
                    })
                    .collect::<Vec<_>>()
            })
            .take(limit)
            .collect();
        Ok(vec![Variant::from(self.started), Variant::from(servers)])
    }

    fn cert_type(&self, n: &NodeId) -> Result<Option<String>, StatusCode> {
        if n.is_null() {
            return Ok(None);
        }
        CertType::ALL
            .into_iter()
            .find(|t| {
                *n == type_node(*t)
                    || (*t == CertType::RsaSha256 && *n == ObjectTypeId::ApplicationCertificateType)
            })
            .map(|t| Some(t.id().to_string()))
            .ok_or(StatusCode::BadInvalidArgument)
    }

    async fn start_signing_request(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, who) = self.application_arg(caller, args, Role::Writer).await?;
        let (_, group) = self.group(&args.node_id(1)?)?;
        let cert_type = self.cert_type(&args.node_id(2)?)?;
        let csr = args.bytes(3)?;
        if csr.is_empty() {
            return Err(StatusCode::BadInvalidArgument);
        }
        // Part 12 sends DER; a PEM text is taken as well, as the REST route takes it.
        let certificate_request = if csr.starts_with(b"-----BEGIN") {
            String::from_utf8(csr).map_err(|_| StatusCode::BadInvalidArgument)?
        } else {
            base64::engine::general_purpose::STANDARD.encode(&csr)
        };
        let id = self
            .vault
            .submit_signing_request(
                &who,
                &StartSigningRequest {
                    entity_id: app,
                    group_id: group.name.to_string(),
                    certificate_type_id: cert_type,
                    certificate_request,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(vec![Variant::from(self.to_node_id(&id))])
    }

    async fn start_new_key_pair_request(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, who) = self.application_arg(caller, args, Role::Writer).await?;
        let (_, group) = self.group(&args.node_id(1)?)?;
        let cert_type = self.cert_type(&args.node_id(2)?)?;
        let subject_name = args.string(3)?.filter(|s| !s.is_empty());
        let domain_names = args.strings(4)?;
        let format = args.string(5)?.filter(|s| !s.is_empty());
        let password = args.string(6)?.filter(|s| !s.is_empty());
        if format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("PFX"))
        {
            // A PFX is assembled when the certificate is collected and needs the password
            // then, which FinishRequest does not carry and the vault never stores.
            tracing::info!(application = %app, "GDS StartNewKeyPairRequest asked for PFX; only PEM is served over OPC UA");
            return Err(StatusCode::BadInvalidArgument);
        }
        let id = self
            .vault
            .submit_keypair_request(
                &who,
                &StartNewKeyPairRequest {
                    entity_id: app,
                    group_id: group.name.to_string(),
                    certificate_type_id: cert_type,
                    subject_name,
                    domain_names,
                    private_key_format: format,
                    private_key_password: password,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(vec![Variant::from(self.to_node_id(&id))])
    }

    async fn finish_request(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, who) = self.application_arg(caller, args, Role::Writer).await?;
        self.vault.application(&app).await.map_err(status_of)?;
        let request_id = self.vault_id(&args.node_id(1)?)?;
        let request = self.vault.request(&request_id).await.map_err(status_of)?;
        if request.entity_id != app {
            return Err(StatusCode::BadInvalidArgument);
        }
        match request.state {
            CertificateRequestState::New => return Err(StatusCode::BadNothingToDo),
            // A revoked certificate is not handed out again: an application installing it
            // would lock itself out.
            CertificateRequestState::Rejected | CertificateRequestState::Revoked => {
                return Err(StatusCode::BadRequestNotAllowed)
            }
            _ => {}
        }
        let fetched = self
            .vault
            .fetch(&who, &request_id, request.request_type, None)
            .await
            .map_err(status_of)?;
        let certificate = fetched
            .certificate
            .as_ref()
            .and_then(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(&c.certificate)
                    .ok()
            })
            .ok_or(StatusCode::BadInternalError)?;
        let private_key = fetched
            .private_key
            .map(|k| ByteString::from(k.key.into_bytes()))
            .unwrap_or_else(ByteString::null);
        let mut issuers = Vec::new();
        if let Some(ca) = &request.ca_serial {
            issuers.push(ByteString::from(
                self.vault.issuer(ca).await.map_err(status_of)?,
            ));
        }
        Ok(vec![
            Variant::from(ByteString::from(certificate)),
            Variant::from(private_key),
            Variant::from(issuers),
        ])
    }

    async fn get_certificate_groups(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, _) = self.application_arg(caller, args, Role::Reader).await?;
        self.vault.application(&app).await.map_err(status_of)?;
        let groups: Vec<NodeId> = self
            .vault
            .groups()
            .await
            .map_err(status_of)?
            .iter()
            .filter_map(|g| self.group_node(&g.id))
            .collect();
        Ok(vec![Variant::from(groups)])
    }

    async fn get_trust_list(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, _) = self.application_arg(caller, args, Role::Reader).await?;
        self.vault.application(&app).await.map_err(status_of)?;
        let (_, group) = self.group(&args.node_id(1)?)?;
        Ok(vec![Variant::from(NodeId::new(self.ns, group.trust_list))])
    }

    async fn get_certificate_status(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, _) = self.application_arg(caller, args, Role::Reader).await?;
        let (_, group) = self.group(&args.node_id(1)?)?;
        let cert_type = self.cert_type(&args.node_id(2)?)?;
        let status = self
            .vault
            .certificate_status(&app, group.name, cert_type.as_deref())
            .await
            .map_err(status_of)?;
        Ok(vec![Variant::Boolean(status.update_required)])
    }

    async fn revoke_certificate(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let who = caller.require(Role::Approver)?;
        let app = self.vault_id(&args.node_id(0)?)?;
        let der = args.bytes(1)?;
        self.vault
            .revoke_certificate(&who, &app, &der)
            .await
            .map_err(status_of)?;
        Ok(vec![])
    }

    async fn get_certificates(&self, caller: &Caller, args: &Args<'_>) -> Outputs {
        let (app, _) = self.application_arg(caller, args, Role::Reader).await?;
        let (_, group) = self.group(&args.node_id(1)?)?;
        let current = self
            .vault
            .current_certificates(&app, group.name)
            .await
            .map_err(status_of)?;
        let types: Vec<NodeId> = current.iter().map(|(t, _)| type_node(*t)).collect();
        let certs: Vec<ByteString> = current
            .into_iter()
            .map(|(_, der)| ByteString::from(der))
            .collect();
        Ok(vec![Variant::from(types), Variant::from(certs)])
    }

    /// Open to any session on a secure channel: what a CRL says is public.
    async fn check_revocation_status(&self, args: &Args<'_>) -> Outputs {
        let der = args.bytes(0)?;
        let found = self
            .vault
            .revocation_status(&der)
            .await
            .map_err(status_of)?;
        let (status, until) = match found {
            Revocation::Good { until } => (StatusCode::Good, until),
            Revocation::Revoked { until } => (StatusCode::BadCertificateRevoked, until),
            Revocation::UnknownIssuer => (StatusCode::BadCertificateUntrusted, 0),
        };
        let validity = if until > 0 {
            DateTime::parse_from_rfc3339(&crate::model::rfc3339(until)).unwrap_or_default()
        } else {
            DateTime::null()
        };
        Ok(vec![Variant::StatusCode(status), Variant::from(validity)])
    }

    #[allow(clippy::too_many_arguments)]
    async fn trust_list_method(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        caller: &Caller,
        index: usize,
        group: &GroupIds,
        offset: u32,
        args: &Args<'_>,
    ) -> Outputs {
        caller
            .require_or_any_application(&self.vault, Role::Reader)
            .await?;
        let session = context.session_id;
        let name = trust_list::METHODS
            .iter()
            .find(|(_, m, _, _)| *m == offset)
            .map(|(n, _, _, _)| *n)
            .ok_or(StatusCode::BadMethodInvalid)?;
        match name {
            "Open" | "OpenWithMasks" => {
                let masks = if name == "Open" {
                    let mode = args.byte(0)?;
                    // Part 5 OpenFileMode: 1 Read, 2 Write, 4 EraseExisting, 8 Append.
                    if mode & 0x0E != 0 {
                        return Err(StatusCode::BadNotWritable);
                    }
                    if mode != 1 {
                        return Err(StatusCode::BadInvalidArgument);
                    }
                    MASK_ALL
                } else {
                    args.u32(0)? & MASK_ALL
                };
                let list = self
                    .vault
                    .trust_list(group.name, None)
                    .await
                    .map_err(status_of)?;
                let data = trust_file::encode(&list, masks)?;
                let size = data.len() as u64;
                let handle = self.files.open(session, index, data)?;
                self.publish_file_state(space, index, group, Some(size));
                Ok(vec![Variant::UInt32(handle)])
            }
            "Read" => {
                let data = self
                    .files
                    .read(session, index, args.u32(0)?, args.i32(1)?)?;
                Ok(vec![Variant::from(ByteString::from(data))])
            }
            "Close" => {
                self.files.close(session, index, args.u32(0)?)?;
                self.publish_file_state(space, index, group, None);
                Ok(vec![])
            }
            "GetPosition" => Ok(vec![Variant::UInt64(self.files.position(
                session,
                index,
                args.u32(0)?,
            )?)]),
            "SetPosition" => {
                self.files
                    .set_position(session, index, args.u32(0)?, args.u64(1)?)?;
                Ok(vec![])
            }
            // The vault's trust lists change only through its CAs and CRLs.
            _ => Err(StatusCode::BadNotWritable),
        }
    }

    /// Keeps the TrustList's Size and OpenCount properties true for clients that read them.
    fn publish_file_state(
        &self,
        space: &RwLock<AddressSpace>,
        index: usize,
        group: &GroupIds,
        size: Option<u64>,
    ) {
        let mut space = space.write();
        let mut set = |offset: u32, value: Variant| {
            let id = nodes::trust_list_member(self.ns, group, offset);
            if let Some(NodeType::Variable(v)) = space.find_mut(&id) {
                let _ = v.set_value(&NumericRange::None, value);
            }
        };
        if let Some(size) = size {
            set(trust_list::SIZE, Variant::UInt64(size));
            set(trust_list::LAST_UPDATE_TIME, Variant::from(DateTime::now()));
        }
        set(
            trust_list::OPEN_COUNT,
            Variant::UInt16(self.files.open_count(index)),
        );
    }

    async fn vault_method(&self, caller: &Caller, method: &NodeId, args: &Args<'_>) -> Outputs {
        let who = caller.require(Role::Approver)?;
        let id = match &args.node_id(0)?.identifier {
            Identifier::Guid(g) => uuid::Uuid::from(g.clone()).to_string(),
            Identifier::String(s) => s.value().clone().unwrap_or_default(),
            _ => return Err(StatusCode::BadNotFound),
        };
        let result = if *method == NodeId::new(self.vault_ns, APPROVE_REQUEST) {
            self.vault.approve(&who, &id).await
        } else if *method == NodeId::new(self.vault_ns, REJECT_REQUEST) {
            self.vault.reject(&who, &id).await
        } else {
            return Err(StatusCode::BadMethodInvalid);
        };
        result.map_err(status_of)?;
        Ok(vec![])
    }
}

/// The OPC UA node of a certificate type.
pub fn type_node(t: CertType) -> NodeId {
    match t {
        CertType::RsaSha256 => ObjectTypeId::RsaSha256ApplicationCertificateType.into(),
        CertType::EccNistP256 => ObjectTypeId::EccNistP256ApplicationCertificateType.into(),
        CertType::EccNistP384 => ObjectTypeId::EccNistP384ApplicationCertificateType.into(),
    }
}

fn first_name(r: &crate::model::ApplicationRecord) -> LocalizedText {
    r.application_names
        .first()
        .map(|n| LocalizedText::new(&n.locale, &n.text))
        .unwrap_or_else(LocalizedText::null)
}

fn ua_application_type(t: ApplicationType) -> opcua::types::ApplicationType {
    use opcua::types::ApplicationType as U;
    match records::type_code(t) {
        0 => U::Server,
        1 => U::Client,
        2 => U::ClientAndServer,
        _ => U::DiscoveryServer,
    }
}

fn matches_filters(
    r: &crate::model::ApplicationRecord,
    name: &str,
    uri: &str,
    product: &str,
    capabilities: &[String],
) -> bool {
    (name.is_empty() || r.application_names.iter().any(|n| like(name, &n.text)))
        && like(uri, &r.application_uri)
        && like(product, &r.product_uri)
        && capabilities.iter().all(|c| {
            r.server_capabilities
                .iter()
                .any(|s| s.eq_ignore_ascii_case(c))
        })
}

#[async_trait]
impl InMemoryNodeManagerImpl for GdsNodeManagerImpl {
    async fn init(&self, _address_space: &mut AddressSpace, _context: ServerContext) {}

    fn name(&self) -> &str {
        "iiot-vault-gds"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        self.namespaces.clone()
    }

    async fn call(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        methods_to_call: &mut [&mut &mut MethodCall],
    ) -> Result<(), StatusCode> {
        for call in methods_to_call {
            match self.call_one(context, address_space, call).await {
                Ok(outputs) => {
                    call.set_outputs(outputs);
                    call.set_status(StatusCode::Good);
                }
                Err(status) => call.set_status(status),
            }
        }
        Ok(())
    }
}
