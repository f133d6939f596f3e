//! Numeric identifiers of the GDS namespace nodes we serve, exactly as in the OPC Foundation's
//! `Opc.Ua.Gds.NodeSet2.xml` (namespace `http://opcfoundation.org/UA/GDS/`, whose index the
//! server resolves at start). Clients call the Directory by these ids without browsing, so
//! they are the contract; `tests` checks them against the NodeSet file.

/// `ApplicationRecordDataType`.
pub const APPLICATION_RECORD_DATA_TYPE: u32 = 1;
/// Its `Default Binary` encoding object.
pub const APPLICATION_RECORD_BINARY: u32 = 134;
/// `CertificateDirectoryType`, the Directory object's type.
pub const CERTIFICATE_DIRECTORY_TYPE: u32 = 63;
/// The `Directory` object under Objects.
pub const DIRECTORY: u32 = 141;
/// `Directory/Applications` folder.
pub const APPLICATIONS: u32 = 142;
/// `Directory/CertificateGroups` folder.
pub const CERTIFICATE_GROUPS: u32 = 614;

/// A method: its node id, browse name and its InputArguments / OutputArguments property ids
/// (0 when the method has none).
#[derive(Debug, Clone, Copy)]
pub struct MethodIds {
    pub id: u32,
    pub name: &'static str,
    pub inputs: u32,
    pub outputs: u32,
}

const fn m(id: u32, name: &'static str, inputs: u32, outputs: u32) -> MethodIds {
    MethodIds {
        id,
        name,
        inputs,
        outputs,
    }
}

pub const FIND_APPLICATIONS: MethodIds = m(143, "FindApplications", 144, 145);
pub const REGISTER_APPLICATION: MethodIds = m(146, "RegisterApplication", 147, 148);
pub const UPDATE_APPLICATION: MethodIds = m(200, "UpdateApplication", 201, 0);
pub const UNREGISTER_APPLICATION: MethodIds = m(149, "UnregisterApplication", 150, 0);
pub const GET_APPLICATION: MethodIds = m(216, "GetApplication", 217, 218);
pub const QUERY_APPLICATIONS: MethodIds = m(992, "QueryApplications", 993, 994);
pub const QUERY_SERVERS: MethodIds = m(151, "QueryServers", 152, 153);
pub const START_SIGNING_REQUEST: MethodIds = m(157, "StartSigningRequest", 158, 159);
pub const START_NEW_KEY_PAIR_REQUEST: MethodIds = m(154, "StartNewKeyPairRequest", 155, 156);
pub const FINISH_REQUEST: MethodIds = m(163, "FinishRequest", 164, 165);
pub const GET_CERTIFICATE_GROUPS: MethodIds = m(508, "GetCertificateGroups", 509, 510);
pub const GET_TRUST_LIST: MethodIds = m(204, "GetTrustList", 205, 206);
pub const GET_CERTIFICATE_STATUS: MethodIds = m(225, "GetCertificateStatus", 226, 227);
/// The three 1.05 methods the NodeSet declares on `CertificateDirectoryType` only (they are
/// optional, so the shipped Directory instance lacks them). Part 4 §5.11.2 lets a Call name the
/// type's method, so the Directory references these very nodes.
pub const REVOKE_CERTIFICATE: MethodIds = m(15003, "RevokeCertificate", 15004, 0);
pub const GET_CERTIFICATES: MethodIds = m(89, "GetCertificates", 90, 108);
pub const CHECK_REVOCATION_STATUS: MethodIds = m(126, "CheckRevocationStatus", 160, 161);

/// Every Directory method, in the order the NodeSet lists them.
pub const DIRECTORY_METHODS: [MethodIds; 16] = [
    FIND_APPLICATIONS,
    REGISTER_APPLICATION,
    UPDATE_APPLICATION,
    UNREGISTER_APPLICATION,
    GET_APPLICATION,
    QUERY_APPLICATIONS,
    QUERY_SERVERS,
    START_SIGNING_REQUEST,
    START_NEW_KEY_PAIR_REQUEST,
    FINISH_REQUEST,
    GET_CERTIFICATE_GROUPS,
    GET_TRUST_LIST,
    GET_CERTIFICATE_STATUS,
    REVOKE_CERTIFICATE,
    GET_CERTIFICATES,
    CHECK_REVOCATION_STATUS,
];

/// A certificate group object and the nodes below it. A TrustList (a `TrustListType` file)
/// has its members at fixed offsets from its own id in all three groups of the NodeSet.
#[derive(Debug, Clone, Copy)]
pub struct GroupIds {
    /// The vault's group id (REST) and the object's browse name.
    pub name: &'static str,
    pub id: u32,
    pub trust_list: u32,
    pub certificate_types: u32,
}

pub const GROUPS: [GroupIds; 3] = [
    GroupIds {
        name: "DefaultApplicationGroup",
        id: 615,
        trust_list: 616,
        certificate_types: 648,
    },
    GroupIds {
        name: "DefaultHttpsGroup",
        id: 649,
        trust_list: 650,
        certificate_types: 682,
    },
    GroupIds {
        name: "DefaultUserTokenGroup",
        id: 683,
        trust_list: 684,
        certificate_types: 716,
    },
];

/// Members of a TrustList object, as offsets from its node id (616 → Size 617, Open 622, ...).
pub mod trust_list {
    pub const SIZE: u32 = 1;
    pub const WRITABLE: u32 = 2;
    pub const USER_WRITABLE: u32 = 3;
    pub const OPEN_COUNT: u32 = 4;
    pub const LAST_UPDATE_TIME: u32 = 21;

    /// (name, method offset, InputArguments offset, OutputArguments offset or 0).
    pub const METHODS: [(&str, u32, u32, u32); 10] = [
        ("Open", 6, 7, 8),
        ("Close", 9, 10, 0),
        ("Read", 11, 12, 13),
        ("Write", 14, 15, 0),
        ("GetPosition", 16, 17, 18),
        ("SetPosition", 19, 20, 0),
        ("OpenWithMasks", 22, 23, 24),
        ("CloseAndUpdate", 25, 26, 27),
        ("AddCertificate", 28, 29, 0),
        ("RemoveCertificate", 30, 31, 0),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference NodeSet on our machines (never copied into the repository);
    /// `IIOT_GDS_NODESET` names it elsewhere.
    fn nodeset() -> String {
        let candidates = [
            std::env::var_os("IIOT_GDS_NODESET").map(std::path::PathBuf::from),
            Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/reference/Opc.Ua.Gds.NodeSet2.xml"),
            ),
            Some("/work/shared/reference/Opc.Ua.Gds.NodeSet2.xml".into()),
        ];
        let path = candidates
            .into_iter()
            .flatten()
            .find(|p| p.exists())
            .expect("Opc.Ua.Gds.NodeSet2.xml (set IIOT_GDS_NODESET to its path)");
        std::fs::read_to_string(path).expect("read the NodeSet")
    }

    fn node(xml: &str, id: u32) -> &str {
        let key = format!("NodeId=\"ns=1;i={id}\"");
        let start = xml.find(&key).unwrap_or_else(|| panic!("no node i={id}"));
        let end = xml[start..].find("</UA").map_or(xml.len(), |e| start + e);
        &xml[start..end]
    }

    #[test]
    fn ids_match_the_gds_nodeset() {
        let xml = nodeset();
        for method in DIRECTORY_METHODS {
            let n = node(&xml, method.id);
            assert!(
                n.contains(&format!("BrowseName=\"1:{}\"", method.name)),
                "{n}"
            );
            let i = node(&xml, method.inputs);
            assert!(i.contains("BrowseName=\"InputArguments\""), "{i}");
            if method.outputs != 0 {
                let o = node(&xml, method.outputs);
                assert!(o.contains("BrowseName=\"OutputArguments\""), "{o}");
            }
        }
        for g in GROUPS {
            assert!(node(&xml, g.id).contains(&format!("BrowseName=\"1:{}\"", g.name)));
            assert!(node(&xml, g.trust_list).contains("BrowseName=\"TrustList\""));
            assert!(node(&xml, g.certificate_types).contains("BrowseName=\"CertificateTypes\""));
            for (name, method, inputs, outputs) in trust_list::METHODS {
                assert!(
                    node(&xml, g.trust_list + method).contains(&format!("BrowseName=\"{name}\""))
                );
                assert!(node(&xml, g.trust_list + inputs).contains("InputArguments"));
                if outputs != 0 {
                    assert!(node(&xml, g.trust_list + outputs).contains("OutputArguments"));
                }
            }
            for (name, offset) in [
                ("Size", trust_list::SIZE),
                ("Writable", trust_list::WRITABLE),
                ("UserWritable", trust_list::USER_WRITABLE),
                ("OpenCount", trust_list::OPEN_COUNT),
                ("LastUpdateTime", trust_list::LAST_UPDATE_TIME),
            ] {
                assert!(
                    node(&xml, g.trust_list + offset).contains(&format!("BrowseName=\"{name}\""))
                );
            }
        }
        assert!(node(&xml, APPLICATION_RECORD_BINARY).contains("Default Binary"));
        assert!(node(&xml, DIRECTORY).contains("BrowseName=\"1:Directory\""));
        assert!(node(&xml, CERTIFICATE_GROUPS).contains("1:CertificateGroups"));
        assert!(node(&xml, CERTIFICATE_DIRECTORY_TYPE).contains("1:CertificateDirectoryType"));
    }
}
