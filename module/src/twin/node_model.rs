//! Filling OPC Publisher's `NodeModel` from attribute reads.

use opcua::types::{AttributeId, DataValue, NodeId, Variant};

use super::OpContext;
use crate::api::{NodeAccessLevel, NodeClass, NodeEventNotifier, NodeModel, NodeValueRank};
use crate::error::Result;
use crate::opcua::json_value::to_json;
use crate::twin::error_info;
use crate::twin::session_ops::read_attributes;

/// Attributes read to describe a node (value excluded; it is read on request).
pub const DESCRIBE: &[AttributeId] = &[
    AttributeId::NodeClass,
    AttributeId::BrowseName,
    AttributeId::DisplayName,
    AttributeId::Description,
    AttributeId::DataType,
    AttributeId::ValueRank,
    AttributeId::ArrayDimensions,
    AttributeId::AccessLevel,
    AttributeId::UserAccessLevel,
    AttributeId::Executable,
    AttributeId::UserExecutable,
    AttributeId::EventNotifier,
    AttributeId::IsAbstract,
    AttributeId::MinimumSamplingInterval,
    AttributeId::Historizing,
    AttributeId::WriteMask,
];

pub fn node_class(mask: i32) -> Option<NodeClass> {
    Some(match mask {
        1 => NodeClass::Object,
        2 => NodeClass::Variable,
        4 => NodeClass::Method,
        8 => NodeClass::ObjectType,
        16 => NodeClass::VariableType,
        32 => NodeClass::ReferenceType,
        64 => NodeClass::DataType,
        128 => NodeClass::View,
        _ => return None,
    })
}

/// Reads and describes one node; `with_value` adds its current value for variables.
pub async fn describe(ctx: &OpContext, node: &NodeId, with_value: bool) -> Result<NodeModel> {
    let mut attrs = DESCRIBE.to_vec();
    if with_value {
        attrs.push(AttributeId::Value);
    }
    let values = read_attributes(&ctx.live, node, &attrs).await?;
    let mut model = NodeModel {
        node_id: ctx.ns.format(node, ctx.format),
        ..Default::default()
    };
    for (attr, dv) in attrs.iter().zip(values.iter()) {
        apply(ctx, &mut model, *attr, dv);
    }
    Ok(model)
}

fn apply(ctx: &OpContext, m: &mut NodeModel, attr: AttributeId, dv: &DataValue) {
    if attr == AttributeId::NodeClass {
        if let Some(status) = dv.status.filter(|s| s.is_bad()) {
            m.error_info = error_info(status, Some("the node cannot be read".into()));
            return;
        }
    }
    let Some(v) = dv.value.as_ref().filter(|_| !dv.status().is_bad()) else {
        if attr == AttributeId::Value {
            m.error_info = error_info(dv.status(), None);
        }
        return;
    };
    match (attr, v) {
        (AttributeId::NodeClass, Variant::Int32(c)) => m.node_class = node_class(*c),
        (AttributeId::BrowseName, Variant::QualifiedName(q)) => {
            m.browse_name = to_json(v, &ctx.ns, ctx.format)
                .as_str()
                .map(str::to_string)
                .or_else(|| Some(q.name.as_ref().to_string()))
        }
        (AttributeId::DisplayName, Variant::LocalizedText(t)) => {
            m.display_name = Some(t.text.as_ref().to_string())
        }
        (AttributeId::Description, Variant::LocalizedText(t)) if !t.text.is_null() => {
            m.description = Some(t.text.as_ref().to_string())
        }
        (AttributeId::DataType, Variant::NodeId(id)) => {
            m.data_type = Some(ctx.ns.format(id, ctx.format))
        }
        (AttributeId::ValueRank, Variant::Int32(r)) => {
            m.value_rank = NodeValueRank::from_value(i64::from(*r))
        }
        (AttributeId::ArrayDimensions, Variant::Array(a)) => {
            m.array_dimensions = Some(
                a.values
                    .iter()
                    .filter_map(|v| match v {
                        Variant::UInt32(d) => Some(*d),
                        _ => None,
                    })
                    .collect(),
            )
        }
        (AttributeId::AccessLevel, Variant::Byte(b)) => {
            m.access_level = Some(NodeAccessLevel(u32::from(*b)))
        }
        (AttributeId::UserAccessLevel, Variant::Byte(b)) => {
            m.user_access_level = Some(NodeAccessLevel(u32::from(*b)))
        }
        (AttributeId::Executable, Variant::Boolean(b)) => m.executable = Some(*b),
        (AttributeId::UserExecutable, Variant::Boolean(b)) => m.user_executable = Some(*b),
        (AttributeId::EventNotifier, Variant::Byte(b)) => {
            m.event_notifier = Some(NodeEventNotifier(u32::from(*b)))
        }
        (AttributeId::IsAbstract, Variant::Boolean(b)) => m.is_abstract = Some(*b),
        (AttributeId::MinimumSamplingInterval, Variant::Double(d)) => {
            m.minimum_sampling_interval = Some(*d)
        }
        (AttributeId::Historizing, Variant::Boolean(b)) => m.historizing = Some(*b),
        (AttributeId::WriteMask, Variant::UInt32(w)) => m.write_mask = Some(*w),
        (AttributeId::Value, value) => {
            m.value = Some(to_json(value, &ctx.ns, ctx.format));
            m.source_timestamp = dv
                .source_timestamp
                .map(|t| crate::opcua::json_value::iso8601(&t));
            m.server_timestamp = dv
                .server_timestamp
                .map(|t| crate::opcua::json_value::iso8601(&t));
        }
        _ => {}
    }
}
