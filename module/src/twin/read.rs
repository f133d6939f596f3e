//! ValueRead and NodeRead (attribute read).

use std::str::FromStr;

use opcua::types::{
    AttributeId, NumericRange, ReadValueId, StatusCode, TimestampsToReturn as UaTimestamps,
};

use super::{error_info, OpContext};
use crate::api::{
    AttributeReadResponseModel, ReadRequestModel, ReadResponseModel, TimestampsToReturn,
    ValueReadRequestModel, ValueReadResponseModel,
};
use crate::error::{Result, ServiceError};
use crate::opcua::json_value::{to_json, type_name};
use crate::twin::session_ops::resolve_node;

pub fn timestamps(t: Option<TimestampsToReturn>) -> UaTimestamps {
    match t.unwrap_or(TimestampsToReturn::Both) {
        TimestampsToReturn::Both => UaTimestamps::Both,
        TimestampsToReturn::Source => UaTimestamps::Source,
        TimestampsToReturn::Server => UaTimestamps::Server,
        TimestampsToReturn::None => UaTimestamps::Neither,
    }
}

/// Validates an index range before it reaches the server, so a typo is a 400, not a Bad
/// status from somewhere deep in the server.
pub fn index_range(range: Option<&str>) -> Result<NumericRange> {
    match range.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(NumericRange::None),
        Some(r) => NumericRange::from_str(r).map_err(|_| {
            ServiceError::bad_request(
                StatusCode::BadIndexRangeInvalid,
                format!("index range '{r}' is invalid"),
            )
        }),
    }
}

pub async fn value_read(
    ctx: OpContext,
    req: &ValueReadRequestModel,
) -> Result<ValueReadResponseModel> {
    let node = resolve_node(
        &ctx.live.session,
        &ctx.ns,
        req.node_id.as_deref(),
        req.browse_path.as_deref(),
    )
    .await?;
    let max_age = req
        .max_age
        .as_deref()
        .and_then(parse_duration_ms)
        .unwrap_or(0.0);
    let read = ReadValueId {
        node_id: node,
        attribute_id: AttributeId::Value as u32,
        index_range: index_range(req.index_range.as_deref())?,
        ..Default::default()
    };
    let values = ctx
        .live
        .session
        .read(&[read], timestamps(req.timestamps_to_return), max_age)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Read"))?;
    let dv = values.into_iter().next().ok_or_else(|| {
        ServiceError::service(StatusCode::BadUnexpectedError, "server returned no value")
    })?;
    let status = dv.status();
    let mut res = ValueReadResponseModel {
        source_timestamp: dv
            .source_timestamp
            .map(|t| crate::opcua::json_value::iso8601(&t)),
        source_picoseconds: dv.source_picoseconds.filter(|p| *p != 0),
        server_timestamp: dv
            .server_timestamp
            .map(|t| crate::opcua::json_value::iso8601(&t)),
        server_picoseconds: dv.server_picoseconds.filter(|p| *p != 0),
        error_info: error_info(status, None),
        ..Default::default()
    };
    if let Some(v) = dv.value.as_ref() {
        res.data_type = type_name(v);
        res.value = Some(to_json(v, &ctx.ns, ctx.format));
    }
    Ok(res)
}

pub async fn node_read(ctx: OpContext, req: &ReadRequestModel) -> Result<ReadResponseModel> {
    if req.attributes.is_empty() {
        return Err(ServiceError::bad_request(
            StatusCode::BadNothingToDo,
            "attributes must name at least one node attribute",
        ));
    }
    let reads = req
        .attributes
        .iter()
        .map(|a| {
            let node_id = ctx.ns.parse(&a.node_id).map_err(|e| {
                ServiceError::bad_request(StatusCode::BadNodeIdInvalid, e.to_string())
            })?;
            Ok(ReadValueId {
                node_id,
                attribute_id: a.attribute.value() as u32,
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let values = ctx
        .live
        .session
        .read(&reads, UaTimestamps::Both, 0.0)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Read"))?;
    if values.len() != reads.len() {
        return Err(ServiceError::service(
            StatusCode::BadUnexpectedError,
            format!("server answered {} of {} reads", values.len(), reads.len()),
        ));
    }
    let results = values
        .iter()
        .map(|dv| AttributeReadResponseModel {
            value: dv
                .value
                .as_ref()
                .map(|v| to_json(v, &ctx.ns, ctx.format))
                .unwrap_or_default(),
            error_info: error_info(dv.status(), None),
        })
        .collect();
    Ok(ReadResponseModel {
        results,
        error_info: None,
    })
}

/// OPC Publisher sends durations as .NET TimeSpan text (`00:00:01.5`) or milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<f64>() {
        return Some(ms);
    }
    let (days, rest) = match t.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<f64>().ok()?, r),
        _ => (0.0, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let h: f64 = parts[0].parse().ok()?;
    let m: f64 = parts[1].parse().ok()?;
    let s: f64 = parts[2].parse().ok()?;
    Some((((days * 24.0 + h) * 60.0 + m) * 60.0 + s) * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timespans() {
        assert_eq!(parse_duration_ms("1500"), Some(1500.0));
        assert_eq!(parse_duration_ms("00:00:01.5"), Some(1500.0));
        assert_eq!(parse_duration_ms("1.00:00:00"), Some(86_400_000.0));
        assert_eq!(parse_duration_ms("abc"), None);
        assert!(index_range(Some("1:2")).is_ok());
        assert!(index_range(Some("x")).is_err());
    }
}
