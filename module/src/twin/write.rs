//! ValueWrite and NodeWrite (attribute write), with JSON coerced to the node's data type.

use opcua::types::{
    AttributeId, DataValue, NodeId, NumericRange, StatusCode, Variant, VariantScalarTypeId,
    WriteValue,
};

use super::read::index_range;
use super::{error_info, OpContext};
use crate::api::{
    AttributeWriteResponseModel, NodeAttribute, ValueWriteRequestModel, ValueWriteResponseModel,
    WriteRequestModel, WriteResponseModel,
};
use crate::error::{ErrorKind, Result, ServiceError};
use crate::opcua::json_value::{builtin_from_name, from_json};
use crate::twin::session_ops::{builtin_type, read_attributes, resolve_node};

/// The built-in type and array-ness a value written to `node` must have.
pub async fn value_type_of(
    ctx: &OpContext,
    node: &NodeId,
    requested: Option<&str>,
) -> Result<(VariantScalarTypeId, bool)> {
    if let Some(name) = requested.map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(t) = builtin_from_name(name) {
            return Ok((t, true));
        }
        let id = ctx.ns.parse(name).map_err(|_| {
            ServiceError::bad_request(
                StatusCode::BadTypeMismatch,
                format!("dataType '{name}' is neither a built-in type name nor a node id"),
            )
        })?;
        return Ok((builtin_type(&ctx.live, &id).await?, true));
    }
    let values = read_attributes(
        &ctx.live,
        node,
        &[AttributeId::DataType, AttributeId::ValueRank],
    )
    .await?;
    let data_type = match (&values[0].value, values[0].status()) {
        (Some(Variant::NodeId(id)), s) if !s.is_bad() => (**id).clone(),
        (_, s) => {
            let status = if s.is_bad() {
                s
            } else {
                StatusCode::BadAttributeIdInvalid
            };
            return Err(ServiceError::service(
                status,
                format!("cannot read the data type of {node}"),
            ));
        }
    };
    let rank = match values[1].value {
        Some(Variant::Int32(r)) => r,
        _ => -1,
    };
    Ok((builtin_type(&ctx.live, &data_type).await?, rank != -1))
}

pub async fn value_write(
    ctx: OpContext,
    req: &ValueWriteRequestModel,
) -> Result<ValueWriteResponseModel> {
    let node = resolve_node(
        &ctx.live.session,
        &ctx.ns,
        req.node_id.as_deref(),
        req.browse_path.as_deref(),
    )
    .await?;
    let range = index_range(req.index_range.as_deref())?;
    let (target, may_be_array) = value_type_of(&ctx, &node, req.data_type.as_deref()).await?;
    let value = from_json(
        &req.value,
        target,
        may_be_array || range != NumericRange::None,
        &ctx.ns,
    )
    .map_err(|e| ServiceError::bad_request(StatusCode::BadTypeMismatch, e.to_string()))?;
    let write = WriteValue {
        node_id: node,
        attribute_id: AttributeId::Value as u32,
        index_range: range,
        value: DataValue::value_only(value),
    };
    let status = write_one(&ctx, write).await?;
    Ok(ValueWriteResponseModel {
        error_info: error_info(status, None),
    })
}

async fn write_one(ctx: &OpContext, write: WriteValue) -> Result<StatusCode> {
    let results = ctx
        .live
        .session
        .write(&[write])
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Write"))?;
    results.into_iter().next().ok_or_else(|| {
        ServiceError::service(StatusCode::BadUnexpectedError, "server returned no result")
    })
}

/// The built-in type of each writable attribute other than Value.
fn attribute_type(attr: NodeAttribute) -> Option<(VariantScalarTypeId, bool)> {
    use VariantScalarTypeId as T;
    Some(match attr {
        NodeAttribute::NodeId | NodeAttribute::DataType => (T::NodeId, false),
        NodeAttribute::NodeClass | NodeAttribute::ValueRank => (T::Int32, false),
        NodeAttribute::BrowseName => (T::QualifiedName, false),
        NodeAttribute::DisplayName | NodeAttribute::Description | NodeAttribute::InverseName => {
            (T::LocalizedText, false)
        }
        NodeAttribute::WriteMask | NodeAttribute::UserWriteMask => (T::UInt32, false),
        NodeAttribute::IsAbstract
        | NodeAttribute::Symmetric
        | NodeAttribute::ContainsNoLoops
        | NodeAttribute::Historizing
        | NodeAttribute::Executable
        | NodeAttribute::UserExecutable => (T::Boolean, false),
        NodeAttribute::EventNotifier
        | NodeAttribute::AccessLevel
        | NodeAttribute::UserAccessLevel => (T::Byte, false),
        NodeAttribute::ArrayDimensions => (T::UInt32, true),
        NodeAttribute::MinimumSamplingInterval => (T::Double, false),
        NodeAttribute::AccessRestrictions => (T::UInt16, false),
        _ => return None,
    })
}

pub async fn node_write(ctx: OpContext, req: &WriteRequestModel) -> Result<WriteResponseModel> {
    if req.attributes.is_empty() {
        return Err(ServiceError::bad_request(
            StatusCode::BadNothingToDo,
            "attributes must name at least one node attribute",
        ));
    }
    // Items that fail before reaching the server keep their own error; the rest are written
    // in one request.
    let mut results: Vec<Option<AttributeWriteResponseModel>> = Vec::new();
    let mut writes = Vec::new();
    for a in &req.attributes {
        let prepared = async {
            let node = ctx.ns.parse(&a.node_id).map_err(|e| {
                ServiceError::bad_request(StatusCode::BadNodeIdInvalid, e.to_string())
            })?;
            let (t, array) = match a.attribute {
                NodeAttribute::Value => value_type_of(&ctx, &node, None).await?,
                other => attribute_type(other).ok_or_else(|| {
                    ServiceError::bad_request(
                        StatusCode::BadNotWritable,
                        format!("attribute {other} cannot be written from JSON"),
                    )
                })?,
            };
            let value = from_json(&a.value, t, array, &ctx.ns).map_err(|e| {
                ServiceError::bad_request(StatusCode::BadTypeMismatch, e.to_string())
            })?;
            Ok::<_, ServiceError>(WriteValue {
                node_id: node,
                attribute_id: a.attribute.value() as u32,
                index_range: Default::default(),
                value: DataValue::value_only(value),
            })
        }
        .await;
        match prepared {
            Ok(w) => {
                writes.push(w);
                results.push(None);
            }
            Err(e) if e.kind == ErrorKind::BadRequest || e.kind == ErrorKind::Service => results
                .push(Some(AttributeWriteResponseModel {
                    error_info: Some(super::error_info_of(&e)),
                })),
            Err(e) => return Err(e),
        }
    }
    let statuses = if writes.is_empty() {
        Vec::new()
    } else {
        ctx.live
            .session
            .write(&writes)
            .await
            .map_err(|e| ServiceError::from_opcua(&e, "Write"))?
    };
    if statuses.len() != writes.len() {
        return Err(ServiceError::service(
            StatusCode::BadUnexpectedError,
            format!(
                "server answered {} of {} writes",
                statuses.len(),
                writes.len()
            ),
        ));
    }
    let mut statuses = statuses.into_iter();
    let results = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| AttributeWriteResponseModel {
                error_info: error_info(
                    statuses.next().unwrap_or(StatusCode::BadUnexpectedError),
                    None,
                ),
            })
        })
        .collect();
    Ok(WriteResponseModel {
        results,
        error_info: None,
    })
}
