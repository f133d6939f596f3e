//! MethodMetadata and MethodCall.

use opcua::types::{
    Argument, BrowseDescription, BrowseDirection, BrowseResultMask, CallMethodRequest, NodeId,
    ReferenceTypeId, StatusCode, Variant, VariantScalarTypeId,
};

use super::{error_info, OpContext};
use crate::api::{
    MethodCallArgumentModel, MethodCallRequestModel, MethodCallResponseModel,
    MethodMetadataArgumentModel, MethodMetadataRequestModel, MethodMetadataResponseModel,
    NodeModel, NodeValueRank,
};
use crate::error::{Result, ServiceError};
use crate::opcua::json_value::{builtin_from_name, builtin_of, from_json, to_json, type_name};
use crate::twin::session_ops::{builtin_type, resolve_node, translate};

/// The object that owns a method: the source of its inverse HasComponent reference.
async fn parent_object(ctx: &OpContext, method: &NodeId) -> Result<NodeId> {
    let browse = BrowseDescription {
        node_id: method.clone(),
        browse_direction: BrowseDirection::Inverse,
        reference_type_id: ReferenceTypeId::HasComponent.into(),
        include_subtypes: true,
        node_class_mask: 0,
        result_mask: BrowseResultMask::All as u32,
    };
    let results = ctx
        .live
        .session
        .browse(&[browse], 1, None)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Browse"))?;
    let result = results.into_iter().next().unwrap_or_default();
    if result.status_code.is_bad() {
        return Err(ServiceError::service(
            result.status_code,
            format!("cannot find the object of method {method}"),
        ));
    }
    result
        .references
        .unwrap_or_default()
        .into_iter()
        .find_map(|r| ctx.ns.resolve_expanded(&r.node_id, "").ok())
        .ok_or_else(|| {
            ServiceError::service(
                StatusCode::BadMethodInvalid,
                format!("{method} is not a method of any object; give objectId"),
            )
        })
}

/// Reads a method's InputArguments or OutputArguments property; none is an empty list.
async fn arguments(ctx: &OpContext, method: &NodeId, which: &str) -> Result<Vec<Argument>> {
    let found = match translate(&ctx.live.session, &ctx.ns, method, &[which.to_string()]).await {
        Ok(found) => found,
        Err(e) if e.status.sub_code() == StatusCode::BadNoMatch.sub_code() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let Some(property) = found.into_iter().next() else {
        return Ok(Vec::new());
    };
    let values = crate::twin::session_ops::read_attributes(
        &ctx.live,
        &property,
        &[opcua::types::AttributeId::Value],
    )
    .await?;
    let mut out = Vec::new();
    if let Some(Variant::Array(a)) = &values[0].value {
        for v in &a.values {
            if let Variant::ExtensionObject(eo) = v {
                if let Some(arg) = eo.inner_as::<Argument>() {
                    out.push(arg.clone());
                }
            }
        }
    }
    Ok(out)
}

fn argument_model(ctx: &OpContext, a: &Argument) -> MethodMetadataArgumentModel {
    let data_type = ctx.ns.format(&a.data_type, ctx.format);
    MethodMetadataArgumentModel {
        name: a.name.as_ref().to_string(),
        description: (!a.description.text.is_null())
            .then(|| a.description.text.as_ref().to_string()),
        type_: NodeModel {
            node_id: data_type.clone(),
            data_type: Some(data_type),
            display_name: builtin_of(&a.data_type).map(|t| t.to_string()),
            ..Default::default()
        },
        default_value: None,
        value_rank: NodeValueRank::from_value(i64::from(a.value_rank)),
        array_dimensions: a.array_dimensions.clone(),
        error_info: None,
    }
}

pub async fn method_metadata(
    ctx: OpContext,
    req: &MethodMetadataRequestModel,
) -> Result<MethodMetadataResponseModel> {
    let method = resolve_node(
        &ctx.live.session,
        &ctx.ns,
        req.method_id.as_deref(),
        req.method_browse_path.as_deref(),
    )
    .await?;
    let object = parent_object(&ctx, &method).await?;
    let inputs = arguments(&ctx, &method, "InputArguments").await?;
    let outputs = arguments(&ctx, &method, "OutputArguments").await?;
    Ok(MethodMetadataResponseModel {
        object_id: Some(ctx.ns.format(&object, ctx.format)),
        input_arguments: Some(inputs.iter().map(|a| argument_model(&ctx, a)).collect()),
        output_arguments: Some(outputs.iter().map(|a| argument_model(&ctx, a)).collect()),
        error_info: None,
    })
}

pub async fn method_call(
    ctx: OpContext,
    req: &MethodCallRequestModel,
) -> Result<MethodCallResponseModel> {
    let method = resolve_node(
        &ctx.live.session,
        &ctx.ns,
        req.method_id.as_deref(),
        req.method_browse_path.as_deref(),
    )
    .await?;
    let object = match (req.object_id.as_deref(), req.object_browse_path.as_deref()) {
        (None, None) => parent_object(&ctx, &method).await?,
        (id, path) => resolve_node(&ctx.live.session, &ctx.ns, id, path).await?,
    };
    let given = req.arguments.clone().unwrap_or_default();
    let declared = if given.is_empty() {
        Vec::new()
    } else {
        arguments(&ctx, &method, "InputArguments").await?
    };
    let mut inputs = Vec::with_capacity(given.len());
    for (i, arg) in given.iter().enumerate() {
        let arg = arg.clone().unwrap_or_default();
        let value = arg.value.unwrap_or_default();
        let (target, array) = match (arg.data_type.as_deref(), declared.get(i)) {
            (Some(name), _) if builtin_from_name(name).is_some() => (
                builtin_from_name(name).unwrap_or(VariantScalarTypeId::Variant),
                true,
            ),
            (_, Some(d)) => (
                builtin_type(&ctx.live, &d.data_type).await?,
                d.value_rank != -1,
            ),
            // More arguments than declared: send them as they are and let the server judge.
            (_, None) => (VariantScalarTypeId::Variant, true),
        };
        let v = from_json(&value, target, array, &ctx.ns).map_err(|e| {
            ServiceError::bad_request(StatusCode::BadTypeMismatch, format!("argument {i}: {e}"))
        })?;
        inputs.push(v);
    }
    let request = CallMethodRequest {
        object_id: object,
        method_id: method,
        input_arguments: Some(inputs),
    };
    let results = ctx
        .live
        .session
        .call(vec![request])
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Call"))?;
    let result = results.into_iter().next().ok_or_else(|| {
        ServiceError::service(StatusCode::BadUnexpectedError, "server returned no result")
    })?;
    let mut message = None;
    if let Some(bad) = result
        .input_argument_results
        .as_deref()
        .unwrap_or_default()
        .iter()
        .position(|s| s.is_bad())
    {
        message = Some(format!("input argument {bad} was rejected"));
    }
    let outputs = result
        .output_arguments
        .unwrap_or_default()
        .iter()
        .map(|v| MethodCallArgumentModel {
            value: Some(to_json(v, &ctx.ns, ctx.format)),
            data_type: type_name(v),
        })
        .collect();
    Ok(MethodCallResponseModel {
        results: outputs,
        error_info: error_info(result.status_code, message),
    })
}
