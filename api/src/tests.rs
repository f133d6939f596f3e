//! Samples written from the OPC Publisher 2.9 field lists; each is parsed,
//! written back and compared, so any renamed or mistyped member shows up.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// Parses `sample`, checks it is written back unchanged, returns the model.
fn canonical<T>(sample: Value) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let model: T = serde_json::from_value(sample.clone()).expect("parse sample");
    let written = serde_json::to_value(&model).expect("serialize");
    assert_eq!(written, sample, "not written back unchanged");
    let again: T = serde_json::from_value(written).expect("reparse");
    assert_eq!(again, model);
    model
}

fn parse<T: DeserializeOwned>(sample: Value) -> T {
    serde_json::from_value(sample).expect("parse sample")
}

fn connection() -> Value {
    json!({
        "endpoint": {
            "url": "opc.tcp://opcplc:50000",
            "alternativeUrls": ["opc.tcp://10.0.0.5:50000"],
            "securityMode": "SignAndEncrypt",
            "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
            "certificate": "0123ABCD"
        },
        "user": { "type": "UserName", "value": { "user": "op", "password": "pw" } },
        "diagnostics": { "level": "Verbose", "auditId": "a1", "timeStamp": "2024-01-02T03:04:05Z" },
        "group": "line1",
        "locales": ["en-US"],
        "options": "UseReverseConnect, NoSubscriptionTransfer"
    })
}

fn header() -> Value {
    json!({
        "elevation": { "type": "X509Certificate", "value": { "thumbprint": "AB12" } },
        "locales": ["de-DE"],
        "diagnostics": { "level": "Status" },
        "namespaceFormat": "Expanded",
        "operationTimeout": 5000,
        "serviceCallTimeout": 10000,
        "connectTimeout": 3000
    })
}

#[test]
fn value_read_envelope_round_trips() {
    let env: RequestEnvelope<ValueReadRequestModel> = canonical(json!({
        "connection": connection(),
        "request": {
            "nodeId": "i=2258",
            "browsePath": [".ServerStatus"],
            "indexRange": "0:1",
            "header": header(),
            "maxAge": "00:00:01.5000000",
            "timestampsToReturn": "Both"
        }
    }));
    let ep = &env.connection.endpoint;
    assert_eq!(ep.security_mode, Some(SecurityMode::SignAndEncrypt));
    assert_eq!(
        env.connection.options,
        Some(ConnectionOptions::USE_REVERSE_CONNECT | ConnectionOptions::NO_SUBSCRIPTION_TRANSFER)
    );
    assert_eq!(
        env.connection.user.unwrap().type_,
        Some(CredentialType::UserName)
    );
    let header = env.request.header.unwrap();
    assert_eq!(header.namespace_format, Some(NamespaceFormat::Expanded));
    assert_eq!(
        env.request.timestamps_to_return,
        Some(TimestampsToReturn::Both)
    );
}

#[test]
fn unknown_members_are_ignored_and_enums_read_in_any_case() {
    let env: RequestEnvelope<ValueReadRequestModel> = parse(json!({
        "connection": {
            "endpoint": { "url": "opc.tcp://a:4840", "securityMode": "signandencrypt", "extra": 1 },
            "user": { "type": 1 },
            "somethingNew": true
        },
        "request": { "nodeId": "ns=2;s=Temp", "header": { "namespaceFormat": 1 } }
    }));
    assert_eq!(
        env.connection.endpoint.security_mode,
        Some(SecurityMode::SignAndEncrypt)
    );
    assert_eq!(
        env.connection.user.unwrap().type_,
        Some(CredentialType::UserName)
    );
    assert_eq!(
        env.request.header.unwrap().namespace_format,
        Some(NamespaceFormat::Index)
    );
    assert!(serde_json::from_value::<SecurityMode>(json!("Bogus")).is_err());
}

#[test]
fn null_or_missing_request_reads_as_default() {
    let a: RequestEnvelope<Option<RequestHeaderModel>> =
        parse(json!({ "connection": { "endpoint": { "url": "opc.tcp://a" } }, "request": null }));
    assert_eq!(a.request, None);
    let b: RequestEnvelope<TestConnectionRequestModel> =
        parse(json!({ "connection": { "endpoint": { "url": "opc.tcp://a" } } }));
    assert_eq!(b.request, TestConnectionRequestModel::default());
    assert!(
        serde_json::from_value::<RequestEnvelope<TestConnectionRequestModel>>(
            json!({ "request": {} })
        )
        .is_err()
    );
}

#[test]
fn value_read_response_round_trips() {
    let r: ValueReadResponseModel = canonical(json!({
        "value": "2024-05-01T10:00:00Z",
        "dataType": "DateTime",
        "sourcePicoseconds": 10,
        "sourceTimestamp": "2024-05-01T10:00:00Z",
        "serverPicoseconds": 20,
        "serverTimestamp": "2024-05-01T10:00:00.1Z",
        "errorInfo": {
            "statusCode": 2150891520u32,
            "errorMessage": "Bad",
            "symbolicId": "BadNodeIdUnknown",
            "locale": "en",
            "additionalInfo": "more",
            "namespaceUri": "http://opcfoundation.org/UA/",
            "inner": { "statusCode": 2147483648u32 }
        }
    }));
    assert!(r.error_info.unwrap().is_bad());
}

#[test]
fn good_status_code_is_left_out() {
    let written = serde_json::to_value(ServiceResultModel::default()).unwrap();
    assert_eq!(written, json!({}));
}

#[test]
fn attribute_read_and_write_round_trip() {
    let read: ReadRequestModel = canonical(json!({
        "attributes": [
            { "nodeId": "i=2258", "attribute": "Value" },
            { "nodeId": "i=2258", "attribute": "UserAccessLevel" }
        ],
        "header": header()
    }));
    assert_eq!(read.attributes[1].attribute, NodeAttribute::UserAccessLevel);
    assert_eq!(NodeAttribute::Value.value(), 13);

    canonical::<ReadResponseModel>(json!({
        "results": [ { "value": 42 }, { "value": null, "errorInfo": { "statusCode": 2150891520u32 } } ]
    }));

    canonical::<WriteRequestModel>(json!({
        "attributes": [ { "nodeId": "ns=2;s=X", "attribute": "DisplayName", "value": "name" } ]
    }));
    canonical::<WriteResponseModel>(json!({ "results": [ {} ], "errorInfo": { "statusCode": 1 } }));
}

#[test]
fn value_write_round_trips() {
    let w: ValueWriteRequestModel = canonical(json!({
        "nodeId": "nsu=http://microsoft.com/Opc/OpcPlc/;s=SlowUInt1",
        "browsePath": ["/Child"],
        "value": 12,
        "dataType": "UInt32",
        "indexRange": "1",
        "header": { "operationTimeout": 1000 }
    }));
    assert_eq!(w.value, json!(12));
    canonical::<ValueWriteResponseModel>(json!({}));
}

#[test]
fn browse_first_round_trips() {
    let req: BrowseFirstRequestModel = canonical(json!({
        "nodeId": "i=85",
        "direction": "Both",
        "view": { "viewId": "i=100", "version": 1, "timestamp": "2024-01-01T00:00:00Z" },
        "referenceTypeId": "i=33",
        "noSubtypes": false,
        "maxReferencesToReturn": 100,
        "targetNodesOnly": false,
        "readVariableValues": true,
        "nodeClassFilter": ["Object", "Variable"],
        "header": header(),
        "nodeIdsOnly": false
    }));
    assert_eq!(req.node_class_filter.unwrap()[1], NodeClass::Variable);

    let resp: BrowseFirstResponseModel = canonical(json!({
        "node": {
            "nodeClass": "Object",
            "displayName": "Objects",
            "nodeId": "i=85",
            "browseName": "Objects",
            "eventNotifier": 0,
            "children": true
        },
        "references": [{
            "referenceTypeId": "i=35",
            "direction": "Forward",
            "target": {
                "nodeClass": "Variable",
                "displayName": "CurrentTime",
                "nodeId": "i=2258",
                "description": "now",
                "browseName": "CurrentTime",
                "value": "2024-05-01T10:00:00Z",
                "sourceTimestamp": "2024-05-01T10:00:00Z",
                "accessRestrictions": "SigningRequired",
                "writeMask": 0,
                "userWriteMask": 0,
                "accessLevel": "CurrentRead, CurrentWrite",
                "userAccessLevel": "CurrentRead",
                "dataType": "DateTime",
                "valueRank": "Scalar",
                "arrayDimensions": [],
                "historizing": false,
                "minimumSamplingInterval": 1000.0,
                "rolePermissions": [{ "roleId": "i=15656", "permissions": "Browse, Read" }],
                "typeDefinitionId": "i=63",
                "children": false
            }
        }],
        "continuationToken": "AAEC"
    }));
    let target = &resp.references[0].target;
    assert!(target
        .access_level
        .unwrap()
        .contains(NodeAccessLevel::CURRENT_WRITE));
    assert_eq!(target.value_rank.unwrap().value(), -1);
    assert_eq!(resp.node.event_notifier, Some(NodeEventNotifier(0)));

    canonical::<BrowseNextRequestModel>(json!({
        "continuationToken": "AAEC", "abort": false, "targetNodesOnly": true,
        "readVariableValues": false, "nodeIdsOnly": true
    }));
    canonical::<BrowseNextResponseModel>(json!({
        "references": [ { "target": { "nodeId": "i=2253" } } ]
    }));
}

#[test]
fn flags_accept_numbers_and_names() {
    let level: NodeAccessLevel = parse(json!(3));
    assert_eq!(
        serde_json::to_value(level).unwrap(),
        json!("CurrentRead, CurrentWrite")
    );
    let level: NodeAccessLevel = parse(json!("currentread,historyread"));
    assert_eq!(level, NodeAccessLevel(0x5));
    assert_eq!(
        serde_json::to_value(NodeAccessLevel::NONE).unwrap(),
        json!("None")
    );
    // Bits without a name fall back to the number, like .NET.
    assert_eq!(
        serde_json::to_value(NodeAccessLevel(0x1000)).unwrap(),
        json!(4096)
    );
}

#[test]
fn browse_path_round_trips() {
    let req: BrowsePathRequestModel = canonical(json!({
        "nodeId": "i=84",
        "browsePaths": [["Objects", "Server", ".ServerStatus"], ["<HasComponent>Objects"]],
        "readVariableValues": true,
        "nodeIdsOnly": false
    }));
    assert_eq!(req.browse_paths.len(), 2);

    let resp: BrowsePathResponseModel = canonical(json!({
        "targets": [{
            "browsePath": ["Objects", "Server", ".ServerStatus"],
            "target": { "nodeClass": "Variable", "nodeId": "i=2256" },
            "remainingPathIndex": 2
        }]
    }));
    assert_eq!(resp.targets.unwrap()[0].target.node_id, "i=2256");
}

#[test]
fn method_metadata_and_call_round_trip() {
    canonical::<MethodMetadataRequestModel>(json!({
        "methodId": "i=11492", "methodBrowsePath": [".GetMonitoredItems"]
    }));
    let meta: MethodMetadataResponseModel = canonical(json!({
        "objectId": "i=2253",
        "inputArguments": [{
            "name": "SubscriptionId",
            "description": "id",
            "type": { "nodeClass": "DataType", "nodeId": "i=7", "displayName": "UInt32" },
            "defaultValue": 0,
            "valueRank": "Scalar",
            "arrayDimensions": []
        }],
        "outputArguments": [{
            "name": "ServerHandles",
            "type": { "nodeId": "i=7" },
            "valueRank": "OneDimension"
        }]
    }));
    assert_eq!(meta.input_arguments.unwrap()[0].type_.node_id, "i=7");

    let call: MethodCallRequestModel = canonical(json!({
        "methodId": "i=11492",
        "objectId": "i=2253",
        "arguments": [ { "value": 1, "dataType": "UInt32" }, null ],
        "methodBrowsePath": ["GetMonitoredItems"],
        "objectBrowsePath": ["Server"],
        "header": { "operationTimeout": 2000 }
    }));
    assert_eq!(call.arguments.unwrap()[1], None);

    let resp: MethodCallResponseModel = parse(json!({ "results": [ { "value": [1, 2] } ] }));
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({ "results": [ { "value": [1, 2], "dataType": null } ] })
    );
}

#[test]
fn capabilities_keep_pascal_case_members() {
    let caps: ServerCapabilitiesModel = canonical(json!({
        "operationLimits": {
            "minSupportedSampleRate": 100.0,
            "maxBrowseContinuationPoints": 10,
            "maxQueryContinuationPoints": 10,
            "maxHistoryContinuationPoints": 100,
            "maxArrayLength": 65535,
            "maxStringLength": 65535,
            "maxByteStringLength": 65535,
            "maxNodesPerBrowse": 1000,
            "maxNodesPerRead": 1000,
            "maxNodesPerWrite": 1000,
            "maxNodesPerMethodCall": 100,
            "maxNodesPerHistoryReadData": 100,
            "maxNodesPerHistoryReadEvents": 100,
            "maxNodesPerHistoryUpdateData": 100,
            "maxNodesPerHistoryUpdateEvents": 100,
            "maxNodesPerRegisterNodes": 1000,
            "maxNodesPerTranslatePathsToNodeIds": 1000,
            "maxNodesPerNodeManagement": 100,
            "maxMonitoredItemsPerCall": 1000
        },
        "supportedLocales": ["en-US"],
        "serverProfileArray": ["http://opcfoundation.org/UA-Profile/Server/StandardUA2017"],
        "modellingRules": { "Mandatory": "i=78" },
        "aggregateFunctions": { "Average": "i=2342" },
        "MaxSessions": 100,
        "MaxSubscriptions": 1000,
        "MaxMonitoredItems": 100000,
        "MaxSubscriptionsPerSession": 10,
        "MaxMonitoredItemsPerSubscription": 1000,
        "MaxSelectClauseParameters": 10,
        "MaxWhereClauseParameters": 10,
        "MaxMonitoredItemsQueueSize": 100,
        "conformanceUnits": ["Base Info Core Structure"]
    }));
    assert_eq!(caps.max_sessions, Some(100));
    let lower: ServerCapabilitiesModel = parse(json!({ "operationLimits": {}, "maxSessions": 5 }));
    assert_eq!(lower.max_sessions, Some(5));

    canonical::<RequestEnvelope<TestConnectionRequestModel>>(json!({
        "connection": { "endpoint": { "url": "opc.tcp://a" } },
        "request": { "header": { "connectTimeout": 100 } }
    }));
    canonical::<TestConnectionResponseModel>(
        json!({ "errorInfo": { "statusCode": 2148139008u32 } }),
    );
}

#[test]
fn certificate_models_round_trip() {
    let chain: X509CertificateChainModel = canonical(json!({
        "chain": [{
            "subject": "CN=OpcPlc",
            "thumbprint": "A1B2C3",
            "serialNumber": "01",
            "notBeforeUtc": "2024-01-01T00:00:00Z",
            "notAfterUtc": "2025-01-01T00:00:00Z",
            "selfSigned": true,
            "pfx": "AQID",
            "hasPrivateKey": false
        }],
        "status": ["UntrustedRoot", "PartialChain"]
    }));
    let first = &chain.chain.as_ref().unwrap()[0];
    assert_eq!(first.pfx.as_ref().unwrap().as_bytes(), &[1, 2, 3]);
    assert_eq!(chain.status.unwrap()[0], X509ChainStatus::UNTRUSTED_ROOT);

    // A byte collection written as numbers is read too.
    let cert: X509CertificateModel = parse(json!({ "pfx": [1, 2, 3] }));
    assert_eq!(cert.pfx, Some(ByteString(vec![1, 2, 3])));

    canonical::<AddCertificateArgs>(
        json!({ "store": "Trusted", "pfxBlob": "AQID", "password": "x" }),
    );
    canonical::<RemoveCertificateArgs>(json!({ "store": "Rejected", "thumbprint": "A1" }));
    canonical::<CertificateRevocationListArgs>(json!({ "store": "Issuer", "crl": "AQID" }));
    assert_eq!(
        CertificateStoreName::from_route("Trusted"),
        Some(CertificateStoreName::Trusted)
    );
    assert_eq!(CertificateStoreName::from_route("trusted"), None);
}

#[test]
fn discovery_requests_round_trip() {
    let req: DiscoveryRequestModel = canonical(json!({
        "id": "run-1",
        "discovery": "Fast",
        "configuration": {
            "addressRangesToScan": "192.168.1.0/24",
            "networkProbeTimeout": "00:00:00.5000000",
            "maxNetworkProbes": 100,
            "portRangesToScan": "4840-4850",
            "portProbeTimeout": "00:00:01",
            "maxPortProbes": 1000,
            "minPortProbesPercent": 10,
            "idleTimeBetweenScans": "01:00:00",
            "discoveryUrls": ["opc.tcp://lds:4840"],
            "locales": ["en"]
        },
        "context": { "AuthorityId": "user1", "Time": "2024-01-01T00:00:00Z" }
    }));
    assert_eq!(req.discovery, Some(DiscoveryMode::Fast));
    assert_eq!(req.context.unwrap().authority_id.as_deref(), Some("user1"));

    canonical::<DiscoveryCancelRequestModel>(json!({ "id": "run-1" }));
    canonical::<ServerRegistrationRequestModel>(json!({
        "discoveryUrl": "opc.tcp://opcplc:50000", "id": "reg-1"
    }));
    canonical::<ServerEndpointQueryModel>(json!({
        "discoveryUrl": "opc.tcp://opcplc:50000",
        "url": "opc.tcp://opcplc:50000",
        "securityMode": "None",
        "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#None",
        "certificate": "A1"
    }));
}

fn application() -> Value {
    json!({
        "applicationId": "uas1",
        "applicationType": "Server",
        "applicationUri": "urn:OpcPlc:opcplc",
        "productUri": "https://github.com/azure-samples/iot-edge-opc-plc",
        "applicationName": "OpcPlc",
        "locale": "en",
        "localizedNames": { "de": "OpcPlc DE" },
        "capabilities": ["DA"],
        "discoveryUrls": ["opc.tcp://opcplc:50000"],
        "discoveryProfileUri": "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary",
        "gatewayServerUri": "urn:gw",
        "hostAddresses": ["10.0.0.5"],
        "siteId": "site1",
        "discovererId": "pub1",
        "notSeenSince": "2024-01-01T00:00:00Z",
        "created": { "AuthorityId": "a", "Time": "2024-01-01T00:00:00Z" },
        "updated": { "Time": "2024-01-02T00:00:00Z" }
    })
}

fn endpoint_registration() -> Value {
    json!({
        "id": "ep1",
        "endpointUrl": "opc.tcp://opcplc:50000",
        "siteId": "site1",
        "discovererId": "pub1",
        "endpoint": { "url": "opc.tcp://opcplc:50000", "securityMode": "None",
                      "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#None" },
        "securityLevel": 0,
        "authenticationMethods": [
            { "id": "anon", "credentialType": "None" },
            { "id": "user", "credentialType": "UserName",
              "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
              "configuration": { "k": "v" } }
        ]
    })
}

#[test]
fn application_registration_round_trips() {
    let reg: ApplicationRegistrationModel = canonical(json!({
        "application": application(),
        "endpoints": [endpoint_registration()]
    }));
    assert_eq!(reg.application.application_type, ApplicationType::Server);
    let methods = reg.endpoints.unwrap()[0]
        .authentication_methods
        .clone()
        .unwrap();
    assert_eq!(methods[1].credential_type, CredentialType::UserName);
}

#[test]
fn discovery_events_round_trip() {
    let progress: DiscoveryProgressModel = canonical(json!({
        "requestId": "run-1",
        "eventType": "NetworkScanProgress",
        "discovererId": "pub1",
        "requestDetails": { "addresses": "1" },
        "timeStamp": "2024-01-01T00:00:00Z",
        "workers": 4,
        "progress": 10,
        "total": 254,
        "discovered": 1,
        "result": "10.0.0.5",
        "resultDetails": { "port": "4840" },
        "request": { "id": "run-1", "discovery": "Network" }
    }));
    assert_eq!(
        progress.event_type,
        DiscoveryProgressType::NetworkScanProgress
    );

    let found: DiscoveryEventModel = canonical(json!({
        "TimeStamp": "2024-01-01T00:00:00Z",
        "Index": 0,
        "Registration": endpoint_registration(),
        "Application": application()
    }));
    assert_eq!(found.index, 0);
    let last: DiscoveryEventModel = canonical(json!({
        "TimeStamp": "2024-01-01T00:00:00Z",
        "Index": 1,
        "Result": {
            "id": "run-1",
            "discoveryConfig": { "discoveryUrls": ["opc.tcp://lds:4840"] },
            "registerOnly": false,
            "context": { "AuthorityId": "a" }
        }
    }));
    assert!(last.result.is_some() && last.registration.is_none());
    let camel: DiscoveryEventModel = parse(json!({ "timeStamp": "t", "index": 3 }));
    assert_eq!(camel.index, 3);
}

#[test]
fn problem_details_keep_extensions() {
    let p: Problem = canonical(json!({
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "detail": "Node id missing",
        "instance": "/v2/read",
        "traceId": "00-abc"
    }));
    assert_eq!(p.extensions["traceId"], json!("00-abc"));
}

#[test]
fn method_names_resolve_with_and_without_version() {
    for name in ["ValueRead", "ValueRead_V1", "ValueRead_V2"] {
        let op = find_rpc_operation(name).expect(name);
        assert_eq!(op.http, Some((HttpVerb::Post, "/v2/read")));
    }
    assert_eq!(find_rpc_operation("Browse_V2").unwrap().name(), "Browse");
    assert_eq!(
        find_rpc_operation("valueread_v2").unwrap().name(),
        "ValueRead"
    );
    assert!(find_rpc_operation("BrowseStream").is_none());
    assert_eq!(
        find_http_operation(HttpVerb::Get, "/v2/pki/{store}/certs")
            .unwrap()
            .name(),
        "ListCertificates"
    );
    assert!(find_rpc_operation("GetApiKey_V2").unwrap().http.is_none());
    let mut names: Vec<_> = OPERATIONS.iter().map(|o| o.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), OPERATIONS.len(), "duplicate operation name");
    assert_eq!(
        Operation::from_rpc_name("getconfigurednodesonendpoints_v1"),
        Some(Operation::GetConfiguredNodesOnEndpoint)
    );
    assert_eq!(
        Operation::from_rpc_name("BrowseFirst"),
        Some(Operation::Browse)
    );
    assert_eq!(Operation::from_rpc_name("NoSuchMethod"), None);
}

#[test]
fn every_operation_has_one_row() {
    assert_eq!(OPERATIONS.len(), Operation::ALL.len());
    for op in Operation::ALL {
        assert_eq!(OPERATIONS.iter().filter(|o| o.op == *op).count(), 1, "{op}");
        assert_eq!(op.spec().op, *op);
    }
}

#[test]
fn enum_tables_match_publisher() {
    let names = |all: &[DiscoveryProgressType]| all.iter().map(|v| v.as_str()).collect::<Vec<_>>();
    assert_eq!(names(DiscoveryProgressType::ALL).len(), 17);
    assert_eq!(NodeAttribute::ALL.len(), 26);
    assert_eq!(NodeAttribute::AccessRestrictions.value(), 26);
    assert_eq!(
        "ExpandedWithNamespace0".parse::<NamespaceFormat>(),
        Ok(NamespaceFormat::ExpandedWithNamespace0)
    );
    assert_eq!(
        DiagnosticsLevel::from_value(50),
        Some(DiagnosticsLevel::Debug)
    );
    assert_eq!(
        NodeValueRank::from_value(-3),
        Some(NodeValueRank::ScalarOrOneDimension)
    );
}
