//! GetServerCapabilities, GetEndpointCertificate and TestConnection.

use std::collections::BTreeMap;

use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue, NodeId,
    ReadValueId, ReferenceTypeId, TimestampsToReturn, Variant,
};

use super::OpContext;
use crate::api::{
    OperationLimitsModel, ServerCapabilitiesModel, X509CertificateChainModel, X509CertificateModel,
};
use crate::error::{Result, ServiceError};
use crate::pki::CertificateInfo;

/// Namespace-0 numeric ids of the capability variables read, in the order of `apply`.
const CAPABILITY_IDS: &[u32] = &[
    2272, 2735, 2736, 2737, 11702, 11703, 12911, // server-wide limits
    11705, 11707, 11709, 11710, 11711, 11712, 11713, 11714, // operation limits
    12165, 12166, 12167, 12168, // history operation limits
    2269, 2271, // profiles, locales
    24095, 24096, 24097, 24098, 24099, 24100, 24101, 24104, 31916, // 1.05 limits
];

fn as_u32(dv: &DataValue) -> Option<u32> {
    match dv.value.as_ref()? {
        Variant::UInt32(v) => Some(*v),
        Variant::UInt16(v) => Some(u32::from(*v)),
        Variant::Int32(v) => u32::try_from(*v).ok(),
        _ => None,
    }
    .filter(|v| *v != 0)
}

fn as_u16(dv: &DataValue) -> Option<u16> {
    as_u32(dv).and_then(|v| u16::try_from(v).ok())
}

fn as_strings(dv: &DataValue) -> Option<Vec<String>> {
    match dv.value.as_ref()? {
        Variant::Array(a) => Some(
            a.values
                .iter()
                .filter_map(|v| match v {
                    Variant::String(s) => Some(s.as_ref().to_string()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

pub async fn server_capabilities(ctx: OpContext) -> Result<ServerCapabilitiesModel> {
    let reads: Vec<_> = CAPABILITY_IDS
        .iter()
        .map(|id| ReadValueId {
            node_id: NodeId::new(0, *id),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        })
        .collect();
    let v = ctx
        .live
        .session
        .read(&reads, TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Read"))?;
    if v.len() != reads.len() {
        return Err(ServiceError::service(
            opcua::types::StatusCode::BadUnexpectedError,
            "server answered fewer reads than asked",
        ));
    }
    let limits = OperationLimitsModel {
        min_supported_sample_rate: v[0].value.as_ref().and_then(Variant::as_f64),
        max_browse_continuation_points: as_u16(&v[1]),
        max_query_continuation_points: as_u16(&v[2]),
        max_history_continuation_points: as_u16(&v[3]),
        max_array_length: as_u32(&v[4]),
        max_string_length: as_u32(&v[5]),
        max_byte_string_length: as_u32(&v[6]),
        max_nodes_per_read: as_u32(&v[7]),
        max_nodes_per_write: as_u32(&v[8]),
        max_nodes_per_method_call: as_u32(&v[9]),
        max_nodes_per_browse: as_u32(&v[10]),
        max_nodes_per_register_nodes: as_u32(&v[11]),
        max_nodes_per_translate_paths_to_node_ids: as_u32(&v[12]),
        max_nodes_per_node_management: as_u32(&v[13]),
        max_monitored_items_per_call: as_u32(&v[14]),
        max_nodes_per_history_read_data: as_u32(&v[15]),
        max_nodes_per_history_read_events: as_u32(&v[16]),
        max_nodes_per_history_update_data: as_u32(&v[17]),
        max_nodes_per_history_update_events: as_u32(&v[18]),
    };
    Ok(ServerCapabilitiesModel {
        operation_limits: limits,
        server_profiles: as_strings(&v[19]),
        supported_locales: as_strings(&v[20]),
        max_sessions: as_u32(&v[21]),
        max_subscriptions: as_u32(&v[22]),
        max_monitored_items: as_u32(&v[23]),
        max_subscriptions_per_session: as_u32(&v[24]),
        max_select_clause_parameters: as_u32(&v[25]),
        max_where_clause_parameters: as_u32(&v[26]),
        conformance_units: None,
        max_monitored_items_per_subscription: as_u32(&v[28]),
        max_monitored_items_queue_size: as_u32(&v[29]),
        modelling_rules: named_children(&ctx, 2996).await?,
        aggregate_functions: named_children(&ctx, 2997).await?,
    })
}

/// Browse name → node id of the children of a capability folder.
async fn named_children(ctx: &OpContext, folder: u32) -> Result<Option<BTreeMap<String, String>>> {
    let browse = BrowseDescription {
        node_id: NodeId::new(0, folder),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: 0,
        result_mask: BrowseResultMask::All as u32,
    };
    let results = ctx
        .live
        .session
        .browse(&[browse], 0, None)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Browse"))?;
    let refs = results
        .into_iter()
        .next()
        .and_then(|r| r.references)
        .unwrap_or_default();
    if refs.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        refs.iter()
            .map(|r| {
                (
                    r.browse_name.name.as_ref().to_string(),
                    ctx.ns.format_expanded(&r.node_id, ctx.format),
                )
            })
            .collect(),
    ))
}

/// The server certificate of the endpoint the session uses, as a chain model.
pub fn endpoint_certificate(ctx: &OpContext) -> Result<X509CertificateChainModel> {
    let der = ctx.live.endpoint.server_certificate.as_ref();
    if der.is_empty() {
        return Ok(X509CertificateChainModel::default());
    }
    let chain = split_chain(der)
        .into_iter()
        .map(|c| {
            let info = CertificateInfo::from_der(c)?;
            Ok(certificate_model(&info))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(X509CertificateChainModel {
        chain: Some(chain),
        status: None,
    })
}

pub fn certificate_model(info: &CertificateInfo) -> X509CertificateModel {
    X509CertificateModel {
        subject: Some(info.subject.clone()),
        thumbprint: Some(info.thumbprint.clone()),
        serial_number: Some(info.serial_number.clone()),
        not_before_utc: Some(info.not_before.clone()),
        not_after_utc: Some(info.not_after.clone()),
        self_signed: Some(info.self_signed),
        pfx: Some(crate::api::ByteString(info.der.clone())),
        has_private_key: Some(false),
    }
}

/// A server may send its certificate followed by its issuers, concatenated DER.
fn split_chain(mut der: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while der.len() > 4 && der[0] == 0x30 {
        let (len, header) = match der[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (der[2] as usize, 3),
            0x82 => (((der[2] as usize) << 8) | der[3] as usize, 4),
            0x83 if der.len() > 4 => (
                ((der[2] as usize) << 16) | ((der[3] as usize) << 8) | der[4] as usize,
                5,
            ),
            _ => break,
        };
        let end = header + len;
        if end > der.len() {
            break;
        }
        out.push(&der[..end]);
        der = &der[end..];
    }
    if out.is_empty() && !der.is_empty() {
        out.push(der);
    }
    out
}
