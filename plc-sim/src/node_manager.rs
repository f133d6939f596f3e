//! async-opcua node manager for the plc-sim namespace: strict writes and method dispatch.
//!
//! Built on `InMemoryNodeManager` rather than `SimpleNodeManager` because the latter's
//! method callbacks cannot report per-argument results, and its write path inherits
//! async-opcua's lenient type check (see [`check_write_type`]).

use async_trait::async_trait;
use opcua::{
    server::{
        address_space::{
            write_node_value, AddressSpace, DefaultTypeTree, HasNodeId, NodeType, Variable,
        },
        diagnostics::NamespaceMetadata,
        node_manager::{
            memory::{InMemoryNodeManager, InMemoryNodeManagerImpl},
            MethodCall, RequestContext, ServerContext, WriteNode,
        },
    },
    sync::RwLock,
    types::{
        AttributeId, DataEncoding, Identifier, NodeClass, NodeId, NumericRange, StatusCode,
        TimestampsToReturn, Variant, VariantScalarTypeId,
    },
};

use crate::{
    methods::{self, CallError},
    nodes::Layout,
};

/// The node manager type as registered in the server, for `get_of_type` lookups.
pub(crate) type PlcNodeManager = InMemoryNodeManager<PlcNodeManagerImpl>;

/// State the node manager needs at request time; the nodes themselves live in the
/// `InMemoryNodeManager`'s address space.
pub(crate) struct PlcNodeManagerImpl {
    namespace: NamespaceMetadata,
    layout: Layout,
}

impl PlcNodeManagerImpl {
    pub(crate) fn new(namespace_uri: &str, namespace_index: u16, layout: Layout) -> Self {
        Self {
            namespace: NamespaceMetadata {
                namespace_uri: namespace_uri.to_owned(),
                namespace_index,
                is_namespace_subset: Some(false),
                ..Default::default()
            },
            layout,
        }
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    fn write_one(
        &self,
        context: &RequestContext,
        space: &mut AddressSpace,
        type_tree: &DefaultTypeTree,
        write: &mut WriteNode,
    ) {
        // Access level, user access level and attribute checks come from async-opcua.
        let node = match space.validate_node_write(context, write.value(), type_tree) {
            Ok(n) => n,
            Err(e) => {
                write.set_status(e);
                return;
            }
        };
        let NodeType::Variable(variable) = &*node else {
            write.set_status(StatusCode::BadNotWritable);
            return;
        };
        if node.node_class() != NodeClass::Variable
            || write.value().attribute_id != AttributeId::Value
        {
            write.set_status(StatusCode::BadNotWritable);
            return;
        }
        let Some(value) = write.value().value.value.as_ref() else {
            write.set_status(StatusCode::BadTypeMismatch);
            return;
        };
        if let Err(e) = check_write_type(variable, value) {
            write.set_status(e);
            return;
        }
        if let Err(e) = write_node_value(node, write.value()) {
            write.set_status(e);
            return;
        }
        write.set_status(StatusCode::Good);
        if let Some(dv) = node.as_node().get_attribute(
            TimestampsToReturn::Both,
            AttributeId::Value,
            &NumericRange::None,
            &DataEncoding::Binary,
        ) {
            context
                .subscriptions
                .notify_data_change([(dv, node.node_id(), AttributeId::Value)].into_iter());
        }
    }
}

#[async_trait]
impl InMemoryNodeManagerImpl for PlcNodeManagerImpl {
    async fn init(&self, _address_space: &mut AddressSpace, _context: ServerContext) {}

    fn name(&self) -> &str {
        "iiot-plc-sim"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        vec![self.namespace.clone()]
    }

    async fn write(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        let mut space = address_space.write();
        let type_tree = context.type_tree.read();
        for write in nodes_to_write {
            self.write_one(context, &mut space, &type_tree, write);
        }
        Ok(())
    }

    async fn call(
        &self,
        _context: &RequestContext,
        _address_space: &RwLock<AddressSpace>,
        methods_to_call: &mut [&mut &mut MethodCall],
    ) -> Result<(), StatusCode> {
        for call in methods_to_call {
            let result = if call.method_id() == &self.layout.add {
                methods::add(call.arguments())
            } else if call.method_id() == &self.layout.fail {
                methods::fail(call.arguments())
            } else {
                // Leaves async-opcua's initial Bad_MethodInvalid in place.
                continue;
            };
            match result {
                Ok(outputs) => {
                    call.set_outputs(outputs);
                    call.set_status(StatusCode::Good);
                }
                Err(CallError::Status(s)) => call.set_status(s),
                Err(CallError::Arguments(results)) => call.set_argument_error(results),
            }
        }
        Ok(())
    }
}

/// Built-in scalar type a DataType node id stands for (ids 1..=21 in namespace 0).
///
/// Not `VariantScalarTypeId::try_from(&NodeId)`: in async-opcua-types 0.19.0 that
/// conversion has no arm for SByte (src/variant/type_id.rs, `impl TryFrom<&NodeId>`).
fn builtin_type(data_type: &NodeId) -> Option<VariantScalarTypeId> {
    match (data_type.namespace, &data_type.identifier) {
        (0, Identifier::Numeric(n @ 1..=21)) => VariantScalarTypeId::try_from(*n).ok(),
        _ => None,
    }
}

/// Exact type and rank check for a Value write.
///
/// async-opcua's own `validate_value_to_write` (server/src/address_space/utils.rs:115-160)
/// accepts any *scalar* whose type differs from the node's DataType (its fallback arm is
/// `_ => Ok(())`), and never compares the ValueRank, so a String could be written into
/// `Scalar/Int32` or a scalar into `Array/Int32`. OPC UA requires Bad_TypeMismatch there.
pub(crate) fn check_write_type(variable: &Variable, value: &Variant) -> Result<(), StatusCode> {
    let Some(expected) = builtin_type(&variable.data_type()) else {
        // Non built-in DataTypes (Argument properties...) are not writable here anyway.
        return Ok(());
    };
    let rank = variable.value_rank();
    match value {
        Variant::Empty => Err(StatusCode::BadTypeMismatch),
        Variant::Array(array) => {
            let dims = array.dimensions.as_ref().map_or(1, Vec::len);
            let rank_ok = match rank {
                -2 | 0 => true,
                -3 => dims == 1,
                r if r >= 1 => usize::try_from(r).is_ok_and(|r| r == dims),
                _ => false,
            };
            let type_ok = array.value_type == expected
                && array
                    .values
                    .iter()
                    .all(|v| v.scalar_type_id() == Some(expected));
            if rank_ok && type_ok {
                Ok(())
            } else {
                Err(StatusCode::BadTypeMismatch)
            }
        }
        scalar => {
            if matches!(rank, -3..=-1) && scalar.scalar_type_id() == Some(expected) {
                Ok(())
            } else {
                Err(StatusCode::BadTypeMismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::DataTypeId;

    fn var(data_type: DataTypeId, rank: i32) -> Variable {
        let mut v = Variable::default();
        v.set_data_type(data_type);
        v.set_value_rank(rank);
        v
    }

    #[test]
    fn scalar_write_needs_exact_type() {
        let v = var(DataTypeId::Int32, -1);
        assert_eq!(check_write_type(&v, &Variant::Int32(1)), Ok(()));
        assert_eq!(
            check_write_type(&v, &Variant::String("1".into())),
            Err(StatusCode::BadTypeMismatch)
        );
        assert_eq!(
            check_write_type(&v, &Variant::Int64(1)),
            Err(StatusCode::BadTypeMismatch)
        );
        assert_eq!(
            check_write_type(&v, &Variant::from(vec![1i32])),
            Err(StatusCode::BadTypeMismatch)
        );
        assert_eq!(
            check_write_type(&v, &Variant::Empty),
            Err(StatusCode::BadTypeMismatch)
        );
        let v = var(DataTypeId::SByte, -1);
        assert_eq!(check_write_type(&v, &Variant::SByte(-1)), Ok(()));
    }

    #[test]
    fn array_write_needs_array_of_type() {
        let v = var(DataTypeId::Int32, 1);
        assert_eq!(check_write_type(&v, &Variant::from(vec![4i32, 5])), Ok(()));
        assert_eq!(
            check_write_type(&v, &Variant::Int32(4)),
            Err(StatusCode::BadTypeMismatch)
        );
        assert_eq!(
            check_write_type(&v, &Variant::from(vec![4.0f64])),
            Err(StatusCode::BadTypeMismatch)
        );
    }
}
