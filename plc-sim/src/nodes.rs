//! The simulated PLC's address space: node id conventions and the code that populates them.
//!
//! Conventions (a contract for other crates' tests):
//! * every node lives in [`crate::NAMESPACE_URI`] and has a **String** node id that is the
//!   path from the Objects folder, segments joined by `/` (`Fast/0`, `Scalar/Int32`,
//!   `Tree/3/7`, `Methods/Add`);
//! * the BrowseName of a node is the **last segment** of that path, in the same namespace
//!   (`Fast/0` → `0`, `Scalar/Int32` → `Int32`), so a TranslateBrowsePaths from Objects
//!   along the segments lands on the same node as the id;
//! * the DisplayName is the **full id** (`Fast/0`), which is unique and readable in UIs.

use opcua::{
    server::address_space::{
        AccessLevel, AddressSpace, MethodBuilder, ObjectBuilder, VariableBuilder,
    },
    types::{
        ByteString, DataTypeId, DateTime, ExpandedNodeId, Guid, LocalizedText, NodeId, ObjectId,
        ObjectTypeId, QualifiedName, StatusCode, UAString, VariableTypeId, Variant,
        VariantScalarTypeId, XmlElement,
    },
};

/// Top-level folder holding the fast counters.
pub const FAST: &str = "Fast";
/// Top-level folder holding the slow counters.
pub const SLOW: &str = "Slow";
/// Top-level folder holding one writable variable per built-in scalar type.
pub const SCALAR: &str = "Scalar";
/// Top-level folder holding writable one-dimensional arrays.
pub const ARRAY: &str = "Array";
/// Top-level object owning the methods.
pub const METHODS: &str = "Methods";
/// Top-level folder of the optional large tree.
pub const TREE: &str = "Tree";
/// `Methods/Add(a: Int32, b: Int32) -> sum: Int32`.
pub const METHOD_ADD: &str = "Methods/Add";
/// `Methods/Fail()`, which always answers with a Bad status.
pub const METHOD_FAIL: &str = "Methods/Fail";

/// Names (and DataTypes) of the `Scalar/*` variables, in built-in type id order.
pub const SCALAR_TYPES: [&str; 21] = [
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "DateTime",
    "Guid",
    "ByteString",
    "XmlElement",
    "NodeId",
    "ExpandedNodeId",
    "StatusCode",
    "QualifiedName",
    "LocalizedText",
];

/// Ids of the nodes the running server needs to touch after the address space is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) fast: Vec<NodeId>,
    pub(crate) slow: Vec<NodeId>,
    pub(crate) add: NodeId,
    pub(crate) fail: NodeId,
    pub(crate) tree_leaves: u64,
    pub(crate) node_count: u64,
}

/// Sizes of the generated parts of the address space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) fast_nodes: u32,
    pub(crate) slow_nodes: u32,
    pub(crate) tree: Option<(u32, u32)>,
}

/// Inserts everything below Objects; returns what the value-update tasks and the method
/// dispatcher need.
pub(crate) fn populate(space: &mut AddressSpace, ns: u16, shape: Shape) -> Layout {
    let mut b = Builder {
        space,
        ns,
        count: 0,
    };
    let objects: NodeId = ObjectId::ObjectsFolder.into();

    let fast = b.counters(FAST, shape.fast_nodes, &objects);
    let slow = b.counters(SLOW, shape.slow_nodes, &objects);
    b.scalars(&objects);
    b.arrays(&objects);
    let (add, fail) = b.methods(&objects);
    let tree_leaves = match shape.tree {
        Some((depth, breadth)) => b.tree(depth, breadth, &objects),
        None => 0,
    };
    Layout {
        fast,
        slow,
        add,
        fail,
        tree_leaves,
        node_count: b.count,
    }
}

struct Builder<'a> {
    space: &'a mut AddressSpace,
    ns: u16,
    count: u64,
}

/// Last `/`-separated segment of a node id path: the BrowseName convention.
fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Builder<'_> {
    fn id(&self, path: &str) -> NodeId {
        NodeId::new(self.ns, path)
    }

    fn browse_name(&self, path: &str) -> QualifiedName {
        QualifiedName::new(self.ns, last_segment(path))
    }

    fn folder(&mut self, path: &str, parent: &NodeId) -> NodeId {
        let id = self.id(path);
        ObjectBuilder::new(&id, self.browse_name(path), path)
            .is_folder()
            .organized_by(parent.clone())
            .insert(self.space);
        self.count += 1;
        id
    }

    /// Adds a variable; `writable` grants CurrentWrite in both AccessLevel and
    /// UserAccessLevel because async-opcua checks the latter for every session.
    #[allow(clippy::too_many_arguments)]
    fn variable(
        &mut self,
        path: &str,
        parent: &NodeId,
        data_type: DataTypeId,
        value_rank: i32,
        value: Variant,
        writable: bool,
    ) -> NodeId {
        let id = self.id(path);
        let access = if writable {
            AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE
        } else {
            AccessLevel::CURRENT_READ
        };
        let mut builder = VariableBuilder::new(&id, self.browse_name(path), path)
            .data_type(data_type)
            .value_rank(value_rank)
            .access_level(access)
            .user_access_level(access)
            .value(value)
            .has_type_definition(VariableTypeId::BaseDataVariableType)
            .organized_by(parent.clone());
        if value_rank == 1 {
            // 0 = length not fixed, so clients may write arrays of any size.
            builder = builder.array_dimensions(&[0]);
        }
        builder.insert(self.space);
        self.count += 1;
        id
    }

    fn counters(&mut self, folder: &str, count: u32, objects: &NodeId) -> Vec<NodeId> {
        let parent = self.folder(folder, objects);
        (0..count)
            .map(|i| {
                self.variable(
                    &format!("{folder}/{i}"),
                    &parent,
                    DataTypeId::UInt64,
                    -1,
                    Variant::UInt64(0),
                    false,
                )
            })
            .collect()
    }

    fn scalars(&mut self, objects: &NodeId) {
        let parent = self.folder(SCALAR, objects);
        for name in SCALAR_TYPES {
            let (data_type, value) = scalar_initial(name, self.ns);
            self.variable(
                &format!("{SCALAR}/{name}"),
                &parent,
                data_type,
                -1,
                value,
                true,
            );
        }
    }

    fn arrays(&mut self, objects: &NodeId) {
        let parent = self.folder(ARRAY, objects);
        let arrays = [
            ("Int32", DataTypeId::Int32, Variant::from(vec![1i32, 2, 3])),
            (
                "Double",
                DataTypeId::Double,
                Variant::from(vec![1.0f64, 2.0, 3.0]),
            ),
            (
                "String",
                DataTypeId::String,
                Variant::from((VariantScalarTypeId::String, &["a", "b", "c"][..])),
            ),
        ];
        for (name, data_type, value) in arrays {
            self.variable(
                &format!("{ARRAY}/{name}"),
                &parent,
                data_type,
                1,
                value,
                true,
            );
        }
    }

    fn methods(&mut self, objects: &NodeId) -> (NodeId, NodeId) {
        let parent = self.id(METHODS);
        ObjectBuilder::new(&parent, self.browse_name(METHODS), METHODS)
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .organized_by(objects.clone())
            .insert(self.space);

        let add = self.id(METHOD_ADD);
        let add_in = self.id(&format!("{METHOD_ADD}/InputArguments"));
        let add_out = self.id(&format!("{METHOD_ADD}/OutputArguments"));
        // InputArguments must exist: async-opcua only rejects surplus arguments when it can
        // count the declared ones, and clients read it to build the call.
        MethodBuilder::new(&add, self.browse_name(METHOD_ADD), METHOD_ADD)
            .component_of(parent.clone())
            .input_args(
                self.space,
                &add_in,
                &[
                    ("a", DataTypeId::Int32).into(),
                    ("b", DataTypeId::Int32).into(),
                ],
            )
            .output_args(self.space, &add_out, &[("sum", DataTypeId::Int32).into()])
            .insert(self.space);

        let fail = self.id(METHOD_FAIL);
        // No InputArguments property: async-opcua then answers BadTooManyArguments to any
        // argument without reaching our code.
        MethodBuilder::new(&fail, self.browse_name(METHOD_FAIL), METHOD_FAIL)
            .component_of(parent)
            .insert(self.space);
        self.count += 6;
        (add, fail)
    }

    /// Builds `depth` levels below `Tree`, `breadth` children each; the last level are
    /// read-only UInt32 variables whose value is their ordinal among all leaves.
    fn tree(&mut self, depth: u32, breadth: u32, objects: &NodeId) -> u64 {
        let root = self.folder(TREE, objects);
        let mut leaves = 0u64;
        if depth > 0 {
            self.tree_level(TREE, &root, depth, breadth, &mut leaves);
        }
        leaves
    }

    fn tree_level(
        &mut self,
        path: &str,
        parent: &NodeId,
        depth: u32,
        breadth: u32,
        leaves: &mut u64,
    ) {
        for i in 0..breadth {
            let child = format!("{path}/{i}");
            if depth == 1 {
                let ordinal = u32::try_from(*leaves).unwrap_or(u32::MAX);
                self.variable(
                    &child,
                    parent,
                    DataTypeId::UInt32,
                    -1,
                    Variant::UInt32(ordinal),
                    false,
                );
                *leaves += 1;
            } else {
                let id = self.folder(&child, parent);
                self.tree_level(&child, &id, depth - 1, breadth, leaves);
            }
        }
    }
}

/// DataType and initial value of `Scalar/{name}`; values are fixed (not "now" or random) so
/// tests can assert on a fresh server.
fn scalar_initial(name: &str, ns: u16) -> (DataTypeId, Variant) {
    match name {
        "Boolean" => (DataTypeId::Boolean, Variant::Boolean(false)),
        "SByte" => (DataTypeId::SByte, Variant::SByte(0)),
        "Byte" => (DataTypeId::Byte, Variant::Byte(0)),
        "Int16" => (DataTypeId::Int16, Variant::Int16(0)),
        "UInt16" => (DataTypeId::UInt16, Variant::UInt16(0)),
        "Int32" => (DataTypeId::Int32, Variant::Int32(0)),
        "UInt32" => (DataTypeId::UInt32, Variant::UInt32(0)),
        "Int64" => (DataTypeId::Int64, Variant::Int64(0)),
        "UInt64" => (DataTypeId::UInt64, Variant::UInt64(0)),
        "Float" => (DataTypeId::Float, Variant::Float(0.0)),
        "Double" => (DataTypeId::Double, Variant::Double(0.0)),
        "String" => (
            DataTypeId::String,
            Variant::String(UAString::from("plc-sim")),
        ),
        "DateTime" => (
            DataTypeId::DateTime,
            Variant::DateTime(Box::new(DateTime::ymd(2024, 1, 1))),
        ),
        "Guid" => (
            DataTypeId::Guid,
            Variant::Guid(Box::new(Guid::from_bytes([
                0x72, 0x96, 0x2b, 0x91, 0xfa, 0x75, 0x4a, 0xe6, 0x8d, 0x28, 0xb4, 0x04, 0xdc, 0x7d,
                0xaf, 0x63,
            ]))),
        ),
        "ByteString" => (
            DataTypeId::ByteString,
            Variant::ByteString(ByteString::from(vec![1u8, 2, 3])),
        ),
        "XmlElement" => (
            DataTypeId::XmlElement,
            Variant::XmlElement(XmlElement::from("<plc-sim/>")),
        ),
        "NodeId" => (
            DataTypeId::NodeId,
            Variant::NodeId(Box::new(ObjectId::ObjectsFolder.into())),
        ),
        "ExpandedNodeId" => (
            DataTypeId::ExpandedNodeId,
            Variant::ExpandedNodeId(Box::new(ExpandedNodeId::new(NodeId::from(
                ObjectId::ObjectsFolder,
            )))),
        ),
        "StatusCode" => (
            DataTypeId::StatusCode,
            Variant::StatusCode(StatusCode::Good),
        ),
        "QualifiedName" => (
            DataTypeId::QualifiedName,
            Variant::QualifiedName(Box::new(QualifiedName::new(ns, "plc-sim"))),
        ),
        // Only the names listed in SCALAR_TYPES reach here; LocalizedText is the last.
        _ => (
            DataTypeId::LocalizedText,
            Variant::LocalizedText(Box::new(LocalizedText::new("en", "plc-sim"))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browse_name_is_last_segment() {
        assert_eq!(last_segment("Fast/0"), "0");
        assert_eq!(last_segment("Tree/3/7"), "7");
        assert_eq!(last_segment("Scalar"), "Scalar");
    }

    #[test]
    fn scalar_initial_types_match_names() {
        for name in SCALAR_TYPES {
            let (dt, v) = scalar_initial(name, 2);
            assert_eq!(format!("{dt:?}"), name);
            let id = v.scalar_type_id().unwrap();
            assert_eq!(format!("{id}"), name);
        }
    }
}
