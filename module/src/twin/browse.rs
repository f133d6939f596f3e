//! Browse (first), BrowseNext and BrowsePath.

use base64::Engine;
use opcua::types::{
    BrowseDescription, BrowseDirection as UaDirection, BrowsePath, BrowseResult, BrowseResultMask,
    ByteString, NodeId, ReadValueId, ReferenceTypeId, RelativePath, RelativePathElement,
    StatusCode, TimestampsToReturn,
};

use super::node_model::{describe, node_class};
use super::{error_info, OpContext};
use crate::api::{
    BrowseDirection, BrowseFirstRequestModel, BrowseFirstResponseModel, BrowseNextRequestModel,
    BrowseNextResponseModel, BrowsePathRequestModel, BrowsePathResponseModel, NodeClass, NodeModel,
    NodePathTargetModel, NodeReferenceModel,
};
use crate::error::{Result, ServiceError};
use crate::opcua::json_value::to_json;
use crate::twin::session_ops::parse_browse_name;

pub(crate) fn class_mask(filter: Option<&[NodeClass]>) -> u32 {
    filter.unwrap_or_default().iter().fold(0, |m, c| {
        m | match c {
            NodeClass::Object => 1,
            NodeClass::Variable => 2,
            NodeClass::Method => 4,
            NodeClass::ObjectType => 8,
            NodeClass::VariableType => 16,
            NodeClass::ReferenceType => 32,
            NodeClass::DataType => 64,
            NodeClass::View => 128,
        }
    })
}

pub(crate) fn parse_node(ctx: &OpContext, text: Option<&str>, default: NodeId) -> Result<NodeId> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => ctx
            .ns
            .parse(t)
            .map_err(|e| ServiceError::bad_request(StatusCode::BadNodeIdInvalid, e.to_string())),
    }
}

fn encode_token(cp: &ByteString) -> Option<String> {
    (!cp.is_null_or_empty()).then(|| cp.as_base64())
}

fn decode_token(token: &str) -> Result<ByteString> {
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map(ByteString::from)
        .map_err(|_| {
            ServiceError::bad_request(
                StatusCode::BadContinuationPointInvalid,
                "continuationToken is not one this API returned",
            )
        })
}

/// Options that shape how references are turned into models.
pub(crate) struct Shape {
    pub read_values: bool,
    pub ids_only: bool,
}

/// Converts a browse result's references, reading variable values in one batch if asked.
pub(crate) async fn references(
    ctx: &OpContext,
    result: &BrowseResult,
    shape: &Shape,
) -> Result<Vec<NodeReferenceModel>> {
    let refs = result.references.as_deref().unwrap_or_default();
    let mut out: Vec<NodeReferenceModel> = refs
        .iter()
        .map(|r| {
            let target_id = ctx
                .ns
                .resolve_expanded(&r.node_id, "")
                .map(|id| ctx.ns.format(&id, ctx.format))
                .unwrap_or_else(|_| ctx.ns.format_expanded(&r.node_id, ctx.format));
            let target = if shape.ids_only {
                NodeModel {
                    node_id: target_id,
                    ..Default::default()
                }
            } else {
                NodeModel {
                    node_id: target_id,
                    node_class: node_class(r.node_class as i32),
                    browse_name: to_json(&r.browse_name.clone().into(), &ctx.ns, ctx.format)
                        .as_str()
                        .map(str::to_string),
                    display_name: Some(r.display_name.text.as_ref().to_string()),
                    type_definition_id: (!r.type_definition.is_null())
                        .then(|| ctx.ns.format_expanded(&r.type_definition, ctx.format)),
                    ..Default::default()
                }
            };
            NodeReferenceModel {
                reference_type_id: Some(ctx.ns.format(&r.reference_type_id, ctx.format)),
                direction: Some(if r.is_forward {
                    BrowseDirection::Forward
                } else {
                    BrowseDirection::Backward
                }),
                target,
                error_info: None,
            }
        })
        .collect();
    if shape.read_values {
        let variables: Vec<(usize, NodeId)> = refs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.node_class as i32 == 2 && r.node_id.server_index == 0)
            .filter_map(|(i, r)| {
                ctx.ns
                    .resolve_expanded(&r.node_id, "")
                    .ok()
                    .map(|id| (i, id))
            })
            .collect();
        if !variables.is_empty() {
            let reads: Vec<_> = variables
                .iter()
                .map(|(_, id)| ReadValueId {
                    node_id: id.clone(),
                    attribute_id: opcua::types::AttributeId::Value as u32,
                    ..Default::default()
                })
                .collect();
            let values = ctx
                .live
                .session
                .read(&reads, TimestampsToReturn::Both, 0.0)
                .await
                .map_err(|e| ServiceError::from_opcua(&e, "Read"))?;
            for ((i, _), dv) in variables.iter().zip(values.iter()) {
                let t = &mut out[*i].target;
                t.value = dv.value.as_ref().map(|v| to_json(v, &ctx.ns, ctx.format));
                t.source_timestamp = dv
                    .source_timestamp
                    .map(|t| crate::opcua::json_value::iso8601(&t));
                t.server_timestamp = dv
                    .server_timestamp
                    .map(|t| crate::opcua::json_value::iso8601(&t));
                t.error_info = error_info(dv.status(), None);
            }
        }
    }
    Ok(out)
}

pub async fn browse_first(
    ctx: OpContext,
    req: &BrowseFirstRequestModel,
) -> Result<BrowseFirstResponseModel> {
    let node = parse_node(&ctx, req.node_id.as_deref(), NodeId::root_folder_id())?;
    let reference_type = parse_node(
        &ctx,
        req.reference_type_id.as_deref(),
        ReferenceTypeId::HierarchicalReferences.into(),
    )?;
    let direction = match req.direction.unwrap_or(BrowseDirection::Forward) {
        BrowseDirection::Forward => UaDirection::Forward,
        BrowseDirection::Backward => UaDirection::Inverse,
        BrowseDirection::Both => UaDirection::Both,
    };
    let description = BrowseDescription {
        node_id: node.clone(),
        browse_direction: direction,
        reference_type_id: reference_type,
        include_subtypes: !req.no_subtypes.unwrap_or(false),
        node_class_mask: class_mask(req.node_class_filter.as_deref()),
        result_mask: BrowseResultMask::All as u32,
    };
    let results = ctx
        .live
        .session
        .browse(
            &[description],
            req.max_references_to_return.unwrap_or(0),
            None,
        )
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Browse"))?;
    let result = results.into_iter().next().ok_or_else(|| {
        ServiceError::service(StatusCode::BadUnexpectedError, "server returned no result")
    })?;
    let shape = Shape {
        read_values: req.read_variable_values.unwrap_or(false),
        ids_only: req.node_ids_only.unwrap_or(false),
    };
    let node_model = if req.target_nodes_only.unwrap_or(false) || shape.ids_only {
        NodeModel {
            node_id: ctx.ns.format(&node, ctx.format),
            ..Default::default()
        }
    } else {
        describe(&ctx, &node, shape.read_values).await?
    };
    let error = error_info(result.status_code, None).or_else(|| node_model.error_info.clone());
    Ok(BrowseFirstResponseModel {
        references: references(&ctx, &result, &shape).await?,
        continuation_token: encode_token(&result.continuation_point),
        node: node_model,
        error_info: error,
    })
}

pub async fn browse_next(
    ctx: OpContext,
    req: &BrowseNextRequestModel,
) -> Result<BrowseNextResponseModel> {
    let cp = decode_token(&req.continuation_token)?;
    let abort = req.abort.unwrap_or(false);
    let results = ctx
        .live
        .session
        .browse_next(abort, &[cp])
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "BrowseNext"))?;
    let result = results.into_iter().next().unwrap_or_default();
    let shape = Shape {
        read_values: req.read_variable_values.unwrap_or(false),
        ids_only: req.node_ids_only.unwrap_or(false),
    };
    Ok(BrowseNextResponseModel {
        references: if abort {
            Vec::new()
        } else {
            references(&ctx, &result, &shape).await?
        },
        continuation_token: encode_token(&result.continuation_point),
        error_info: error_info(result.status_code, None),
    })
}

pub async fn browse_path(
    ctx: OpContext,
    req: &BrowsePathRequestModel,
) -> Result<BrowsePathResponseModel> {
    if req.browse_paths.is_empty() {
        return Err(ServiceError::bad_request(
            StatusCode::BadNothingToDo,
            "browsePaths must hold at least one path",
        ));
    }
    let start = parse_node(&ctx, req.node_id.as_deref(), NodeId::root_folder_id())?;
    let paths = req
        .browse_paths
        .iter()
        .map(|path| {
            let elements = path
                .iter()
                .map(|p| {
                    Ok(RelativePathElement {
                        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                        is_inverse: false,
                        include_subtypes: true,
                        target_name: parse_browse_name(p, &ctx.ns)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(BrowsePath {
                starting_node: start.clone(),
                relative_path: RelativePath {
                    elements: Some(elements),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let results = ctx
        .live
        .session
        .translate_browse_paths_to_node_ids(&paths)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "TranslateBrowsePathsToNodeIds"))?;
    let ids_only = req.node_ids_only.unwrap_or(false);
    let read_values = req.read_variable_values.unwrap_or(false);
    let mut targets = Vec::new();
    let mut first_error = None;
    for (path, result) in req.browse_paths.iter().zip(results.iter()) {
        if result.status_code.is_bad() {
            first_error = first_error.or_else(|| error_info(result.status_code, None));
            continue;
        }
        for t in result.targets.as_deref().unwrap_or_default() {
            let Ok(id) = ctx.ns.resolve_expanded(&t.target_id, "") else {
                continue;
            };
            let target = if ids_only {
                NodeModel {
                    node_id: ctx.ns.format(&id, ctx.format),
                    ..Default::default()
                }
            } else {
                describe(&ctx, &id, read_values).await?
            };
            targets.push(NodePathTargetModel {
                browse_path: path.clone(),
                target,
                remaining_path_index: (t.remaining_path_index != u32::MAX)
                    .then_some(t.remaining_path_index as i32),
            });
        }
    }
    Ok(BrowsePathResponseModel {
        error_info: if targets.is_empty() {
            first_error
        } else {
            None
        },
        targets: Some(targets),
    })
}
