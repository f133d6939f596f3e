//! The GDS address space, built by hand because async-opcua 0.19 cannot load a NodeSet2 file:
//! the Directory with its methods and argument descriptions, ApplicationRecordDataType with its
//! binary encoding and DataTypeDefinition (so generic clients can build the structure), the
//! three certificate groups with read-only TrustList files, and the vault's own `Vault` object
//! with the approval methods Part 12 leaves to the implementation.

use opcua::{
    server::address_space::{
        AddressSpace, DataTypeBuilder, MethodBuilder, ObjectBuilder, ObjectTypeBuilder,
        VariableBuilder,
    },
    types::{
        Argument, DataTypeDefinition, DataTypeId, DateTime, LocalizedText, NodeId, ObjectId,
        ObjectTypeId, QualifiedName, ReferenceTypeId, StructureDefinition, StructureField,
        StructureType, UAString, VariableTypeId, Variant,
    },
};

use iiot_gds::ids::{self, trust_list, GroupIds, MethodIds};

/// Where the vault's own methods live, beside the GDS namespace.
pub const VAULT_NAMESPACE_URI: &str = "urn:iiot:vault";
/// `Vault/ApproveRequest(RequestId)` and `Vault/RejectRequest(RequestId)` in that namespace.
pub const APPROVE_REQUEST: &str = "Vault/ApproveRequest";
pub const REJECT_REQUEST: &str = "Vault/RejectRequest";
const VAULT_OBJECT: &str = "Vault";

fn arg(name: &str, data_type: impl Into<NodeId>, array: bool) -> Argument {
    Argument {
        name: UAString::from(name),
        data_type: data_type.into(),
        value_rank: if array { 1 } else { -1 },
        array_dimensions: array.then(|| vec![0]),
        description: LocalizedText::null(),
    }
}

/// Inputs and outputs of each Directory method, as the NodeSet declares them.
fn directory_arguments(ns: u16, method: &MethodIds) -> (Vec<Argument>, Vec<Argument>) {
    use DataTypeId as T;
    let record = NodeId::new(ns, ids::APPLICATION_RECORD_DATA_TYPE);
    let app_id = || arg("ApplicationId", T::NodeId, false);
    let group_id = || arg("CertificateGroupId", T::NodeId, false);
    let type_id = || arg("CertificateTypeId", T::NodeId, false);
    let request_id = || arg("RequestId", T::NodeId, false);
    match method.id {
        143 => (
            vec![arg("ApplicationUri", T::String, false)],
            vec![arg("Applications", record, true)],
        ),
        146 => (vec![arg("Application", record, false)], vec![app_id()]),
        200 => (vec![arg("Application", record, false)], vec![]),
        149 => (vec![app_id()], vec![]),
        216 => (vec![app_id()], vec![arg("Application", record, false)]),
        992 => (
            vec![
                arg("StartingRecordId", T::UInt32, false),
                arg("MaxRecordsToReturn", T::UInt32, false),
                arg("ApplicationName", T::String, false),
                arg("ApplicationUri", T::String, false),
                arg("ApplicationType", T::UInt32, false),
                arg("ProductUri", T::String, false),
                arg("Capabilities", T::String, true),
            ],
            vec![
                arg("LastCounterResetTime", T::UtcTime, false),
                arg("NextRecordId", T::UInt32, false),
                arg("Applications", T::ApplicationDescription, true),
            ],
        ),
        151 => (
            vec![
                arg("StartingRecordId", T::UInt32, false),
                arg("MaxRecordsToReturn", T::UInt32, false),
                arg("ApplicationName", T::String, false),
                arg("ApplicationUri", T::String, false),
                arg("ProductUri", T::String, false),
                arg("ServerCapabilities", T::String, true),
            ],
            vec![
                arg("LastCounterResetTime", T::UtcTime, false),
                arg("Servers", T::ServerOnNetwork, true),
            ],
        ),
        157 => (
            vec![
                app_id(),
                group_id(),
                type_id(),
                arg("CertificateRequest", T::ByteString, false),
            ],
            vec![request_id()],
        ),
        154 => (
            vec![
                app_id(),
                group_id(),
                type_id(),
                arg("SubjectName", T::String, false),
                arg("DomainNames", T::String, true),
                arg("PrivateKeyFormat", T::String, false),
                arg("PrivateKeyPassword", T::String, false),
            ],
            vec![request_id()],
        ),
        163 => (
            vec![app_id(), request_id()],
            vec![
                arg("Certificate", T::ByteString, false),
                arg("PrivateKey", T::ByteString, false),
                arg("IssuerCertificates", T::ByteString, true),
            ],
        ),
        508 => (
            vec![app_id()],
            vec![arg("CertificateGroupIds", T::NodeId, true)],
        ),
        204 => (
            vec![app_id(), group_id()],
            vec![arg("TrustListId", T::NodeId, false)],
        ),
        225 => (
            vec![app_id(), group_id(), type_id()],
            vec![arg("UpdateRequired", T::Boolean, false)],
        ),
        15003 => (
            vec![app_id(), arg("Certificate", T::ByteString, false)],
            vec![],
        ),
        89 => (
            vec![app_id(), group_id()],
            vec![
                arg("CertificateTypeIds", T::NodeId, true),
                arg("Certificates", T::ByteString, true),
            ],
        ),
        126 => (
            vec![arg("Certificate", T::ByteString, false)],
            vec![
                arg("CertificateStatus", T::StatusCode, false),
                arg("ValidityTime", T::UtcTime, false),
            ],
        ),
        _ => (vec![], vec![]),
    }
}

/// Inputs and outputs of the TrustListType (FileType) methods.
fn file_arguments(name: &str) -> (Vec<Argument>, Vec<Argument>) {
    use DataTypeId as T;
    let handle = || arg("FileHandle", T::UInt32, false);
    match name {
        "Open" => (vec![arg("Mode", T::Byte, false)], vec![handle()]),
        "Close" => (vec![handle()], vec![]),
        "Read" => (
            vec![handle(), arg("Length", T::Int32, false)],
            vec![arg("Data", T::ByteString, false)],
        ),
        "Write" => (vec![handle(), arg("Data", T::ByteString, false)], vec![]),
        "GetPosition" => (vec![handle()], vec![arg("Position", T::UInt64, false)]),
        "SetPosition" => (vec![handle(), arg("Position", T::UInt64, false)], vec![]),
        "OpenWithMasks" => (vec![arg("Masks", T::UInt32, false)], vec![handle()]),
        "CloseAndUpdate" => (
            vec![handle()],
            vec![arg("ApplyChangesRequired", T::Boolean, false)],
        ),
        "AddCertificate" => (
            vec![
                arg("Certificate", T::ByteString, false),
                arg("IsTrustedCertificate", T::Boolean, false),
            ],
            vec![],
        ),
        "RemoveCertificate" => (
            vec![
                arg("Thumbprint", T::String, false),
                arg("IsTrustedCertificate", T::Boolean, false),
            ],
            vec![],
        ),
        _ => (vec![], vec![]),
    }
}

fn method(
    space: &mut AddressSpace,
    id: &NodeId,
    browse_name: QualifiedName,
    parent: &NodeId,
    inputs: (&NodeId, Vec<Argument>),
    outputs: (&NodeId, Vec<Argument>),
) {
    let display = browse_name.name.as_ref().to_string();
    let mut builder = MethodBuilder::new(id, browse_name, display).component_of(parent.clone());
    if !inputs.1.is_empty() {
        builder = builder.input_args(space, inputs.0, &inputs.1);
    }
    if !outputs.1.is_empty() {
        builder = builder.output_args(space, outputs.0, &outputs.1);
    }
    builder.insert(space);
}

fn property(
    space: &mut AddressSpace,
    id: &NodeId,
    name: &str,
    parent: &NodeId,
    data_type: DataTypeId,
    value: Variant,
    array: bool,
) {
    let mut b = VariableBuilder::new(id, QualifiedName::new(0, name), name)
        .property_of(parent.clone())
        .has_type_definition(VariableTypeId::PropertyType)
        .data_type(data_type)
        .value(value);
    if array {
        b = b.value_rank(1).array_dimensions(&[0]);
    }
    b.insert(space);
}

/// Adds every node; `group_types` lists the certificate type ids of each group in [`ids::GROUPS`]
/// order.
pub fn populate(space: &mut AddressSpace, ns: u16, vault_ns: u16, group_types: &[Vec<NodeId>]) {
    let n = |i: u32| NodeId::new(ns, i);

    // ApplicationRecordDataType, its encoding and definition.
    let record = n(ids::APPLICATION_RECORD_DATA_TYPE);
    let encoding = n(ids::APPLICATION_RECORD_BINARY);
    let field = |name: &str, data_type: NodeId, array: bool| StructureField {
        name: name.into(),
        description: LocalizedText::null(),
        data_type,
        value_rank: if array { 1 } else { -1 },
        array_dimensions: None,
        max_string_length: 0,
        is_optional: false,
    };
    let definition = StructureDefinition {
        default_encoding_id: encoding.clone(),
        base_data_type: DataTypeId::Structure.into(),
        structure_type: StructureType::Structure,
        fields: Some(vec![
            field("ApplicationId", DataTypeId::NodeId.into(), false),
            field("ApplicationUri", DataTypeId::String.into(), false),
            field("ApplicationType", DataTypeId::ApplicationType.into(), false),
            field("ApplicationNames", DataTypeId::LocalizedText.into(), true),
            field("ProductUri", DataTypeId::String.into(), false),
            field("DiscoveryUrls", DataTypeId::String.into(), true),
            field("ServerCapabilities", DataTypeId::String.into(), true),
        ]),
    };
    DataTypeBuilder::new(
        &record,
        QualifiedName::new(ns, "ApplicationRecordDataType"),
        "ApplicationRecordDataType",
    )
    .subtype_of(DataTypeId::Structure)
    .data_type_definition(DataTypeDefinition::Structure(definition))
    .insert(space);
    ObjectBuilder::new(
        &encoding,
        QualifiedName::new(0, "Default Binary"),
        "Default Binary",
    )
    .has_type_definition(ObjectTypeId::DataTypeEncodingType)
    .insert(space);
    space.insert_reference(&record, &encoding, ReferenceTypeId::HasEncoding);

    // CertificateDirectoryType, carrying the optional methods the Directory instance shares.
    let directory_type = n(ids::CERTIFICATE_DIRECTORY_TYPE);
    ObjectTypeBuilder::new(
        &directory_type,
        QualifiedName::new(ns, "CertificateDirectoryType"),
        "CertificateDirectoryType",
    )
    .subtype_of(ObjectTypeId::BaseObjectType)
    .insert(space);

    let directory = n(ids::DIRECTORY);
    ObjectBuilder::new(&directory, QualifiedName::new(ns, "Directory"), "Directory")
        .organized_by(ObjectId::ObjectsFolder)
        .has_type_definition(directory_type.clone())
        .insert(space);
    ObjectBuilder::new(
        &n(ids::APPLICATIONS),
        QualifiedName::new(ns, "Applications"),
        "Applications",
    )
    .component_of(directory.clone())
    .has_type_definition(ObjectTypeId::FolderType)
    .insert(space);

    for m in ids::DIRECTORY_METHODS {
        let (inputs, outputs) = directory_arguments(ns, &m);
        method(
            space,
            &n(m.id),
            QualifiedName::new(ns, m.name),
            &directory,
            (&n(m.inputs), inputs),
            (&n(m.outputs), outputs),
        );
    }
    for m in [
        ids::REVOKE_CERTIFICATE,
        ids::GET_CERTIFICATES,
        ids::CHECK_REVOCATION_STATUS,
    ] {
        space.insert_reference(&directory_type, &n(m.id), ReferenceTypeId::HasComponent);
    }

    let folder = n(ids::CERTIFICATE_GROUPS);
    ObjectBuilder::new(
        &folder,
        QualifiedName::new(ns, "CertificateGroups"),
        "CertificateGroups",
    )
    .component_of(directory.clone())
    .has_type_definition(ObjectTypeId::CertificateGroupFolderType)
    .insert(space);
    for (g, types) in ids::GROUPS.iter().zip(group_types) {
        group(space, ns, &folder, g, types);
    }

    vault_object(space, vault_ns);
}

fn group(space: &mut AddressSpace, ns: u16, folder: &NodeId, g: &GroupIds, types: &[NodeId]) {
    let n = |i: u32| NodeId::new(ns, i);
    let id = n(g.id);
    ObjectBuilder::new(&id, QualifiedName::new(ns, g.name), g.name)
        .component_of(folder.clone())
        .has_type_definition(ObjectTypeId::CertificateGroupType)
        .insert(space);
    property(
        space,
        &n(g.certificate_types),
        "CertificateTypes",
        &id,
        DataTypeId::NodeId,
        Variant::from(types.to_vec()),
        true,
    );
    let tl = n(g.trust_list);
    ObjectBuilder::new(&tl, QualifiedName::new(0, "TrustList"), "TrustList")
        .component_of(id.clone())
        .has_type_definition(ObjectTypeId::TrustListType)
        .insert(space);
    let members: [(&str, u32, DataTypeId, Variant); 5] = [
        (
            "Size",
            trust_list::SIZE,
            DataTypeId::UInt64,
            Variant::UInt64(0),
        ),
        (
            "Writable",
            trust_list::WRITABLE,
            DataTypeId::Boolean,
            false.into(),
        ),
        (
            "UserWritable",
            trust_list::USER_WRITABLE,
            DataTypeId::Boolean,
            false.into(),
        ),
        (
            "OpenCount",
            trust_list::OPEN_COUNT,
            DataTypeId::UInt16,
            Variant::UInt16(0),
        ),
        (
            "LastUpdateTime",
            trust_list::LAST_UPDATE_TIME,
            DataTypeId::UtcTime,
            Variant::from(DateTime::now()),
        ),
    ];
    for (name, offset, data_type, value) in members {
        property(
            space,
            &n(g.trust_list + offset),
            name,
            &tl,
            data_type,
            value,
            false,
        );
    }
    for (name, offset, inputs, outputs) in trust_list::METHODS {
        let (i, o) = file_arguments(name);
        method(
            space,
            &n(g.trust_list + offset),
            QualifiedName::new(0, name),
            &tl,
            (&n(g.trust_list + inputs), i),
            (&n(g.trust_list + outputs), o),
        );
    }
}

fn vault_object(space: &mut AddressSpace, ns: u16) {
    let object = NodeId::new(ns, VAULT_OBJECT);
    ObjectBuilder::new(&object, QualifiedName::new(ns, VAULT_OBJECT), VAULT_OBJECT)
        .organized_by(ObjectId::ObjectsFolder)
        .has_type_definition(ObjectTypeId::BaseObjectType)
        .insert(space);
    for (path, name) in [
        (APPROVE_REQUEST, "ApproveRequest"),
        (REJECT_REQUEST, "RejectRequest"),
    ] {
        method(
            space,
            &NodeId::new(ns, path),
            QualifiedName::new(ns, name),
            &object,
            (
                &NodeId::new(ns, format!("{path}/InputArguments")),
                vec![arg("RequestId", DataTypeId::NodeId, false)],
            ),
            (&NodeId::null(), vec![]),
        );
    }
}

/// The node of a group's TrustList member at `offset`.
pub fn trust_list_member(ns: u16, g: &GroupIds, offset: u32) -> NodeId {
    NodeId::new(ns, g.trust_list + offset)
}
