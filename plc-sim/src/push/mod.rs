//! Part 12 push management (§7.7, §7.8): the `ServerConfiguration` object (ns=0 i=12637) and
//! its DefaultApplicationGroup TrustList (i=12642), so a certificate manager — `iiot vault`, or
//! any Part 12 push client — can give plc-sim a CA-issued certificate and its trust list.
//!
//! The core namespace defines these methods but answers them Bad_NotSupported; this node
//! manager owns no node and claims their Calls (vendor patch `claims_method_call`). Only
//! sessions over SignAndEncrypt whose user is a configured security administrator (Part 12's
//! SecurityAdmin role) may call them.

mod certificate;
mod trust_list;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use iiot_gds::{args::Args, file::OpenFiles};
use opcua::{
    nodes::DefaultTypeTree,
    server::{
        diagnostics::NamespaceMetadata,
        node_manager::{
            memory::CoreNodeManager, MethodCall, NodeManager, RequestContext, ServerContext,
        },
    },
    types::{
        DataValue, DateTime, MessageSecurityMode, MethodId, NodeId, ObjectId, ObjectTypeId,
        StatusCode, VariableId, Variant,
    },
};
use tracing::warn;

use certificate::Staging;

/// The largest trust list accepted (its encoded size), advertised as MaxTrustListSize.
pub(crate) const MAX_TRUST_LIST_SIZE: u32 = 1 << 20;

/// Index of the only certificate group's file in the handle table.
const TRUST_LIST_FILE: usize = 0;

/// How often the TrustList's OpenCount is checked for handles that expired unused (their
/// session went away without Close), which no call announces.
const OPEN_COUNT_REFRESH: Duration = Duration::from_secs(5);

/// Prefix of the user token ids of security administrators (`PlcSimConfig::security_admins`).
pub(crate) const SECURITY_ADMIN_TOKEN_PREFIX: &str = "plc-sim-security-admin-";

use MethodId::{
    ServerConfiguration_ApplyChanges as APPLY_CHANGES,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_AddCertificate as ADD_CERTIFICATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Close as CLOSE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_CloseAndUpdate as CLOSE_AND_UPDATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_GetPosition as GET_POSITION,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Open as OPEN,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_OpenWithMasks as OPEN_WITH_MASKS,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Read as READ,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_RemoveCertificate as REMOVE_CERTIFICATE,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_SetPosition as SET_POSITION,
    ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Write as WRITE,
    ServerConfiguration_CreateSigningRequest as CREATE_SIGNING_REQUEST,
    ServerConfiguration_GetRejectedList as GET_REJECTED_LIST,
    ServerConfiguration_UpdateCertificate as UPDATE_CERTIFICATE,
};

const SERVER_CONFIGURATION_METHODS: [MethodId; 4] = [
    CREATE_SIGNING_REQUEST,
    UPDATE_CERTIFICATE,
    APPLY_CHANGES,
    GET_REJECTED_LIST,
];
const TRUST_LIST_METHODS: [MethodId; 10] = [
    OPEN,
    OPEN_WITH_MASKS,
    READ,
    WRITE,
    CLOSE,
    CLOSE_AND_UPDATE,
    GET_POSITION,
    SET_POSITION,
    ADD_CERTIFICATE,
    REMOVE_CERTIFICATE,
];

/// What the push manager is configured with.
pub(crate) struct PushConfig {
    pub pki_dir: PathBuf,
    pub application_uri: String,
}

/// The node manager running the push methods.
pub(crate) struct PushManager {
    config: PushConfig,
    context: ServerContext,
    staging: Staging,
    files: OpenFiles,
    /// The OpenCount last published; `u32::MAX` before the first publication.
    published_open_count: AtomicU32,
}

impl PushManager {
    pub(crate) fn new(config: PushConfig, context: ServerContext) -> Self {
        PushManager {
            staging: Staging::new(config.pki_dir.clone()),
            config,
            context,
            files: OpenFiles::new(MAX_TRUST_LIST_SIZE as usize),
            published_open_count: AtomicU32::new(u32::MAX),
        }
    }

    /// Publishes the TrustList's state again when handles expired since it was published.
    fn refresh_open_count(&self) {
        let open = u32::from(self.files.open_count(TRUST_LIST_FILE));
        if open != self.published_open_count.load(Ordering::Relaxed) {
            self.publish_trust_list_state();
        }
    }

    /// Publishes the ServerConfiguration properties clients read before pushing (which key
    /// formats, which certificate types, how large a trust list) and the TrustList's state.
    pub(crate) fn publish_properties(&self) {
        use VariableId as V;
        let values = [
            (
                V::ServerConfiguration_SupportedPrivateKeyFormats,
                Variant::from(vec!["PEM".to_owned()]),
            ),
            (
                V::ServerConfiguration_MaxTrustListSize,
                Variant::UInt32(MAX_TRUST_LIST_SIZE),
            ),
            (
                V::ServerConfiguration_MulticastDnsEnabled,
                Variant::Boolean(false),
            ),
            (
                V::ServerConfiguration_ServerCapabilities,
                Variant::from(Vec::<String>::new()),
            ),
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_CertificateTypes,
                Variant::from(vec![NodeId::from(
                    ObjectTypeId::RsaSha256ApplicationCertificateType,
                )]),
            ),
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Writable,
                Variant::Boolean(true),
            ),
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_UserWritable,
                Variant::Boolean(true),
            ),
        ];
        self.set_values(values.into_iter().map(|(id, v)| (NodeId::from(id), v)));
        self.publish_trust_list_state();
    }

    /// Size, OpenCount and LastUpdateTime of the TrustList, after every change to it.
    fn publish_trust_list_state(&self) {
        use VariableId as V;
        let open_count = self.files.open_count(TRUST_LIST_FILE);
        self.published_open_count
            .store(u32::from(open_count), Ordering::Relaxed);
        let size = trust_list::read(&self.config.pki_dir, iiot_gds::trust_list::ALL)
            .map(|data| data.len() as u64)
            .unwrap_or(0);
        let values = [
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_Size,
                Variant::UInt64(size),
            ),
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_OpenCount,
                Variant::UInt16(open_count),
            ),
            (
                V::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList_LastUpdateTime,
                Variant::DateTime(Box::new(trust_list::last_update(&self.config.pki_dir))),
            ),
        ];
        self.set_values(values.into_iter().map(|(id, v)| (NodeId::from(id), v)));
    }

    fn set_values(&self, values: impl Iterator<Item = (NodeId, Variant)>) {
        let Some(core) = self.context.node_managers.get_of_type::<CoreNodeManager>() else {
            return;
        };
        let now = DateTime::now();
        let values: Vec<(NodeId, DataValue)> = values
            .map(|(id, v)| (id, DataValue::new_at(v, now)))
            .collect();
        if let Err(e) = core.set_values(
            &self.context.subscriptions,
            values.iter().map(|(id, dv)| (id, None, dv.clone())),
        ) {
            warn!(status = %e, "cannot publish a ServerConfiguration property");
        }
    }

    /// SignAndEncrypt and a security administrator, or the call is refused.
    fn authorize(context: &RequestContext) -> Result<u32, StatusCode> {
        let session = context.session.read();
        if session.message_security_mode() != MessageSecurityMode::SignAndEncrypt {
            return Err(StatusCode::BadSecurityModeInsufficient);
        }
        if !context.token.0.starts_with(SECURITY_ADMIN_TOKEN_PREFIX) {
            return Err(StatusCode::BadUserAccessDenied);
        }
        Ok(session.session_id_numeric())
    }

    fn call_one(
        &self,
        context: &RequestContext,
        call: &MethodCall,
    ) -> Result<Vec<Variant>, StatusCode> {
        let method = call
            .method_id()
            .as_method_id()
            .map_err(|_| StatusCode::BadMethodInvalid)?;
        let object = call.object_id();
        let on_configuration = SERVER_CONFIGURATION_METHODS.contains(&method)
            && object.as_object_id().ok() == Some(ObjectId::ServerConfiguration);
        let on_trust_list = TRUST_LIST_METHODS.contains(&method)
            && object.as_object_id().ok()
                == Some(ObjectId::ServerConfiguration_CertificateGroups_DefaultApplicationGroup_TrustList);
        if !on_configuration && !on_trust_list {
            return Err(StatusCode::BadMethodInvalid);
        }
        let session = Self::authorize(context)?;
        let args = Args(call.arguments());
        let pki = &self.config.pki_dir;
        let file = TRUST_LIST_FILE;
        let outputs = match method {
            CREATE_SIGNING_REQUEST => {
                let csr = self.staging.create_signing_request(
                    &context.info,
                    &certificate::SigningRequestArgs {
                        group: args.node_id(0)?,
                        certificate_type: args.node_id(1)?,
                        subject: args.string(2)?,
                        regenerate_key: args.bool(3)?,
                        nonce: args.bytes(4)?,
                    },
                )?;
                vec![Variant::from(opcua::types::ByteString::from(csr))]
            }
            UPDATE_CERTIFICATE => {
                let required = self.staging.update_certificate(
                    &context.info,
                    &self.config.application_uri,
                    session,
                    certificate::UpdateArgs {
                        group: args.node_id(0)?,
                        certificate_type: args.node_id(1)?,
                        certificate: args.bytes(2)?,
                        issuers: args.byte_strings(3)?,
                        key_format: args.string(4)?,
                        key: args.bytes(5)?,
                    },
                )?;
                vec![Variant::Boolean(required)]
            }
            APPLY_CHANGES => {
                // Part 12 §7.10.7: not while a TrustList is being written.
                if self.files.is_open_to_write(file) {
                    return Err(StatusCode::BadInvalidState);
                }
                self.staging.apply(&context.info, session)?;
                Vec::new()
            }
            GET_REJECTED_LIST => {
                let rejected = trust_list::rejected(pki)?;
                vec![Variant::from(
                    rejected
                        .into_iter()
                        .map(opcua::types::ByteString::from)
                        .collect::<Vec<_>>(),
                )]
            }
            OPEN => {
                let handle = match args.byte(0)? {
                    iiot_gds::file::MODE_READ => self.files.open(
                        session,
                        file,
                        trust_list::read(pki, iiot_gds::trust_list::ALL)?,
                    )?,
                    m if m == iiot_gds::file::MODE_WRITE | iiot_gds::file::MODE_ERASE_EXISTING => {
                        self.files.open_to_write(session, file)?
                    }
                    // Part 12 §7.8.2.1: a TrustList opens to read, or to write it whole.
                    _ => return Err(StatusCode::BadInvalidArgument),
                };
                self.publish_trust_list_state();
                vec![Variant::UInt32(handle)]
            }
            OPEN_WITH_MASKS => {
                let masks = args.u32(0)?;
                let data = trust_list::read(pki, masks)?;
                let handle = self.files.open(session, file, data)?;
                self.publish_trust_list_state();
                vec![Variant::UInt32(handle)]
            }
            READ => {
                let data = self.files.read(session, file, args.u32(0)?, args.i32(1)?)?;
                vec![Variant::from(opcua::types::ByteString::from(data))]
            }
            WRITE => {
                self.files
                    .write(session, file, args.u32(0)?, &args.bytes(1)?)?;
                Vec::new()
            }
            GET_POSITION => vec![Variant::UInt64(self.files.position(
                session,
                file,
                args.u32(0)?,
            )?)],
            SET_POSITION => {
                self.files
                    .set_position(session, file, args.u32(0)?, args.u64(1)?)?;
                Vec::new()
            }
            CLOSE => {
                self.files.close(session, file, args.u32(0)?)?;
                self.publish_trust_list_state();
                Vec::new()
            }
            CLOSE_AND_UPDATE => {
                let data = self.files.close_written(session, file, args.u32(0)?)?;
                let result = trust_list::replace(pki, &data);
                self.publish_trust_list_state();
                result?;
                // Trust lists are read from the folders on every new session: nothing to
                // apply.
                vec![Variant::Boolean(false)]
            }
            ADD_CERTIFICATE => {
                if self.files.open_count(file) > 0 {
                    return Err(StatusCode::BadInvalidState);
                }
                trust_list::add(pki, &args.bytes(0)?, args.bool(1)?)?;
                self.publish_trust_list_state();
                Vec::new()
            }
            REMOVE_CERTIFICATE => {
                if self.files.open_count(file) > 0 {
                    return Err(StatusCode::BadInvalidState);
                }
                let thumbprint = args.string(0)?.unwrap_or_default();
                trust_list::remove(pki, &thumbprint, args.bool(1)?)?;
                self.publish_trust_list_state();
                Vec::new()
            }
            _ => return Err(StatusCode::BadMethodInvalid),
        };
        Ok(outputs)
    }
}

#[async_trait]
impl NodeManager for PushManager {
    fn owns_node(&self, _id: &NodeId) -> bool {
        false
    }

    fn claims_method_call(&self, method_id: &NodeId) -> bool {
        method_id.as_method_id().is_ok_and(|m| {
            SERVER_CONFIGURATION_METHODS.contains(&m) || TRUST_LIST_METHODS.contains(&m)
        })
    }

    fn name(&self) -> &str {
        "plc-sim-push"
    }

    fn namespaces_for_user(&self, _context: &RequestContext) -> Vec<NamespaceMetadata> {
        Vec::new()
    }

    async fn init(&self, _type_tree: &mut DefaultTypeTree, context: ServerContext) {
        // Holds the node managers weakly: the task ends once the server is dropped.
        let managers = context.node_managers.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(OPEN_COUNT_REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match managers.get_of_type::<PushManager>() {
                    Some(push) => push.refresh_open_count(),
                    None => break,
                }
            }
        });
    }

    async fn call(
        &self,
        context: &RequestContext,
        methods_to_call: &mut [&mut MethodCall],
    ) -> Result<(), StatusCode> {
        self.refresh_open_count();
        for call in methods_to_call.iter_mut() {
            match self.call_one(context, call) {
                Ok(outputs) => {
                    call.set_outputs(outputs);
                    call.set_status(StatusCode::Good);
                }
                Err(status) => {
                    warn!(method = %call.method_id(), %status, "push method refused");
                    call.set_status(status);
                }
            }
        }
        Ok(())
    }
}
