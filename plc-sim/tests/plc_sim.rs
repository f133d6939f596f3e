//! End-to-end tests of the simulator through an in-process async-opcua client.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use iiot_plc_sim::{application_uri, PlcSim, PlcSimConfig, LOG_FILTER_DIRECTIVES, NAMESPACE_URI};
use opcua::{
    client::{Client, ClientBuilder, IdentityToken, Session},
    crypto::{SecurityPolicy, X509},
    types::{
        Argument, AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask,
        CallMethodRequest, DataValue, MessageSecurityMode, NodeId, ReadValueId, ReferenceTypeId,
        StatusCode, TimestampsToReturn, UserTokenType, VariableId, Variant, WriteValue,
    },
};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "info,{LOG_FILTER_DIRECTIVES}"
        )))
        .with_test_writer()
        .try_init();
}

/// Fresh directory per test under cargo's per-target scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("plc-sim-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `secure` gives the client its own certificate (needed for Sign/SignAndEncrypt); the
/// None-only clients skip the key generation.
fn client(pki_dir: PathBuf, secure: bool) -> Client {
    let builder = ClientBuilder::new()
        .pki_dir(pki_dir)
        .application_name("plc-sim test client")
        .application_uri("urn:iiot:plc-sim:test-client")
        .session_retry_limit(0)
        .session_retry_initial(Duration::from_millis(100))
        .max_message_size(64 * 1024 * 1024)
        .max_chunk_count(4096)
        .max_array_length(1_000_000);
    let builder = if secure {
        // Trusting the server blindly is acceptable here only: it is the server under test.
        builder.create_sample_keypair(true).trust_server_certs(true)
    } else {
        builder.create_sample_keypair(false)
    };
    builder.client().unwrap()
}

async fn connect(
    client: &mut Client,
    url: &str,
    policy: SecurityPolicy,
    mode: MessageSecurityMode,
    identity: IdentityToken,
) -> Result<Arc<Session>, StatusCode> {
    let (session, event_loop) = client
        .connect_to_matching_endpoint((url, policy.to_str(), mode), identity)
        .await
        .map_err(|e| e.status())?;
    let mut event_loop = event_loop.spawn();
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::select! {
            connected = session.wait_for_connection() => {
                if connected { Ok(()) } else { Err(StatusCode::BadConnectionClosed) }
            }
            ended = &mut event_loop => Err(ended.unwrap_or(StatusCode::BadInternalError)),
        }
    })
    .await
    .unwrap_or(Err(StatusCode::BadTimeout));
    outcome.map(|()| session)
}

async fn read(session: &Session, id: &NodeId, attribute: AttributeId) -> DataValue {
    let rv = ReadValueId {
        node_id: id.clone(),
        attribute_id: attribute as u32,
        ..Default::default()
    };
    session
        .read(&[rv], TimestampsToReturn::Both, 0.0)
        .await
        .unwrap()
        .remove(0)
}

async fn write(session: &Session, id: &NodeId, value: impl Into<Variant>) -> StatusCode {
    let wv = WriteValue {
        node_id: id.clone(),
        attribute_id: AttributeId::Value as u32,
        value: DataValue::value_only(value),
        ..Default::default()
    };
    session.write(&[wv]).await.unwrap()[0]
}

async fn children(session: &Session, id: &NodeId) -> Vec<String> {
    let bd = BrowseDescription {
        node_id: id.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: 0,
        result_mask: BrowseResultMask::All as u32,
    };
    let result = session.browse(&[bd], 0, None).await.unwrap().remove(0);
    assert!(result.status_code.is_good(), "{}", result.status_code);
    assert!(result.continuation_point.is_null_or_empty());
    // async-opcua returns references in hash order, not insertion order.
    let mut names: Vec<String> = result
        .references
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.browse_name.name.to_string())
        .collect();
    names.sort();
    names
}

fn base_config(pki_dir: PathBuf) -> PlcSimConfig {
    PlcSimConfig {
        port: 0,
        pki_dir,
        fast_nodes: 3,
        fast_rate_ms: 100,
        slow_nodes: 2,
        tree: Some((2, 3)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_none_endpoint_covers_address_space() {
    init_tracing();
    let dir = scratch("anonymous");
    let config = PlcSimConfig {
        max_nodes_per_read: 50,
        ..base_config(dir.join("server"))
    };
    let sim = PlcSim::start(config.clone()).await.unwrap();
    let url = sim.endpoint_url();
    assert_eq!(url, format!("opc.tcp://127.0.0.1:{}/", sim.port()));
    let mut client = client(dir.join("client"), false);

    // Discovery on the same URL: 7 endpoints, None is anonymous-only.
    let endpoints = client
        .get_server_endpoints_from_url(url.as_str())
        .await
        .unwrap();
    assert_eq!(endpoints.len(), 7);
    for ep in &endpoints {
        let tokens: Vec<UserTokenType> = ep
            .user_identity_tokens
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|t| t.token_type)
            .collect();
        if ep.security_mode == MessageSecurityMode::None {
            assert_eq!(tokens, vec![UserTokenType::Anonymous]);
        } else {
            assert!(tokens.contains(&UserTokenType::UserName));
            assert_eq!(
                ep.server_certificate.as_ref(),
                &sim.server_certificate_der()[..]
            );
        }
    }
    let servers = client.find_servers(url.as_str(), None, None).await.unwrap();
    assert!(servers
        .iter()
        .any(|s| s.application_uri.as_ref() == application_uri("127.0.0.1")));

    // A password on the None endpoint is refused.
    let refused = connect(
        &mut client,
        &url,
        SecurityPolicy::None,
        MessageSecurityMode::None,
        IdentityToken::new_user_name("user1", "password"),
    )
    .await;
    // Refused before ActivateSession: no endpoint offers None + UserName.
    assert_eq!(refused.err(), Some(StatusCode::BadSecurityPolicyRejected));

    let session = connect(
        &mut client,
        &url,
        SecurityPolicy::None,
        MessageSecurityMode::None,
        IdentityToken::Anonymous,
    )
    .await
    .unwrap();
    assert_eq!(
        session.get_namespace_index(NAMESPACE_URI).await.unwrap(),
        sim.namespace_index()
    );

    // Scalar read / write / read back, with strict type checking.
    let int32 = sim.node_id("Scalar/Int32");
    assert_eq!(
        read(&session, &int32, AttributeId::Value).await.value,
        Some(Variant::Int32(0))
    );
    assert_eq!(write(&session, &int32, 42i32).await, StatusCode::Good);
    assert_eq!(
        read(&session, &int32, AttributeId::Value).await.value,
        Some(Variant::Int32(42))
    );
    assert_eq!(
        write(&session, &int32, "42").await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        write(&session, &int32, 42i64).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        write(&session, &sim.node_id("Scalar/SByte"), -3i8).await,
        StatusCode::Good
    );
    let dt = read(&session, &sim.node_id("Scalar/Guid"), AttributeId::DataType).await;
    assert_eq!(
        dt.value,
        Some(Variant::from(NodeId::from(opcua::types::DataTypeId::Guid)))
    );
    assert_eq!(children(&session, &sim.node_id("Scalar")).await.len(), 21);

    // Arrays: whole-array writes of the right type only.
    let arr = sim.node_id("Array/Int32");
    assert_eq!(
        read(&session, &arr, AttributeId::Value).await.value,
        Some(Variant::from(vec![1i32, 2, 3]))
    );
    assert_eq!(
        write(&session, &arr, vec![4i32, 5, 6, 7]).await,
        StatusCode::Good
    );
    assert_eq!(
        read(&session, &arr, AttributeId::Value).await.value,
        Some(Variant::from(vec![4i32, 5, 6, 7]))
    );
    assert_eq!(
        write(&session, &arr, 4i32).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        write(&session, &arr, vec![1.0f64]).await,
        StatusCode::BadTypeMismatch
    );

    // Counters are read-only and advance every fast_rate_ms.
    let fast0 = sim.node_id("Fast/0");
    assert!(write(&session, &fast0, 7u64).await.is_bad());
    let first = read(&session, &fast0, AttributeId::Value).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = read(&session, &fast0, AttributeId::Value).await;
    let (Some(Variant::UInt64(a)), Some(Variant::UInt64(b))) = (&first.value, &second.value) else {
        panic!("Fast/0 is not UInt64: {first:?}");
    };
    assert!(b > a, "Fast/0 did not advance: {a} -> {b}");
    assert!(second.source_timestamp.is_some() && second.server_timestamp.is_some());
    assert!(second.source_timestamp > first.source_timestamp);

    // Methods.
    let methods = sim.node_id("Methods");
    let call = |method: &str, args: Option<Vec<Variant>>| CallMethodRequest {
        object_id: methods.clone(),
        method_id: sim.node_id(method),
        input_arguments: args,
    };
    let r = session
        .call_one(call("Methods/Add", Some(vec![2i32.into(), 3i32.into()])))
        .await
        .unwrap();
    assert_eq!(r.status_code, StatusCode::Good);
    assert_eq!(r.output_arguments, Some(vec![Variant::Int32(5)]));
    let r = session.call_one(call("Methods/Fail", None)).await.unwrap();
    assert!(r.status_code.is_bad());
    let r = session
        .call_one(call("Methods/Add", Some(vec![2i32.into()])))
        .await
        .unwrap();
    assert_eq!(r.status_code, StatusCode::BadArgumentsMissing);
    let r = session
        .call_one(call(
            "Methods/Add",
            Some(vec![2i32.into(), 3i32.into(), 4i32.into()]),
        ))
        .await
        .unwrap();
    assert_eq!(r.status_code, StatusCode::BadTooManyArguments);
    let r = session
        .call_one(call("Methods/Add", Some(vec![2i32.into(), "x".into()])))
        .await
        .unwrap();
    assert_eq!(r.status_code, StatusCode::BadInvalidArgument);
    assert_eq!(
        r.input_argument_results,
        Some(vec![StatusCode::Good, StatusCode::BadTypeMismatch])
    );
    let args = read(
        &session,
        &sim.node_id("Methods/Add/InputArguments"),
        AttributeId::Value,
    )
    .await;
    let Some(Variant::Array(args)) = args.value else {
        panic!("InputArguments missing: {args:?}");
    };
    let names: Vec<String> = args
        .values
        .iter()
        .map(|v| match v {
            Variant::ExtensionObject(o) => o.inner_as::<Argument>().unwrap().name.to_string(),
            other => panic!("not an Argument: {other:?}"),
        })
        .collect();
    assert_eq!(names, ["a", "b"]);

    // Objects organizes the top-level folders; the 2x3 tree has 3 folders of 3 leaves.
    let top = children(
        &session,
        &NodeId::from(opcua::types::ObjectId::ObjectsFolder),
    )
    .await;
    for name in ["Fast", "Slow", "Scalar", "Array", "Methods", "Tree"] {
        assert!(top.contains(&name.to_owned()), "{name} missing in {top:?}");
    }
    assert_eq!(
        children(&session, &sim.node_id("Tree")).await,
        ["0", "1", "2"]
    );
    for i in 0..3 {
        assert_eq!(
            children(&session, &sim.node_id(&format!("Tree/{i}")))
                .await
                .len(),
            3
        );
    }
    let leaf = read(&session, &sim.node_id("Tree/2/2"), AttributeId::Value).await;
    assert_eq!(leaf.value, Some(Variant::UInt32(8)));

    // Operation limits are advertised and enforced.
    let max_read = read(
        &session,
        &VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead.into(),
        AttributeId::Value,
    )
    .await;
    assert_eq!(max_read.value, Some(Variant::UInt32(50)));
    let too_many: Vec<ReadValueId> = (0..51)
        .map(|_| ReadValueId {
            node_id: int32.clone(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        })
        .collect();
    let err = session
        .read(&too_many, TimestampsToReturn::Both, 0.0)
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::BadTooManyOperations);

    // Shutdown with a client still connected is prompt and frees the port: a new
    // simulator can listen on it straight away.
    let port = sim.port();
    let t = std::time::Instant::now();
    sim.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
    drop(session);
    let again = PlcSim::start(PlcSimConfig { port, ..config })
        .await
        .unwrap();
    assert_eq!(again.port(), port);
    let endpoints = client
        .get_server_endpoints_from_url(again.endpoint_url().as_str())
        .await
        .unwrap();
    assert_eq!(endpoints.len(), 7);
    again.shutdown().await;
}

// Default current-thread runtime on purpose: callers' #[tokio::test]s use it too.
#[tokio::test]
async fn secure_endpoints_authenticate_users_and_certificates() {
    init_tracing();
    let dir = scratch("secure");
    let mut client = client(dir.join("client"), true);

    // Without auto_accept the client certificate is parked in rejected/.
    let strict_pki = dir.join("strict");
    let strict = PlcSim::start(base_config(strict_pki.clone()))
        .await
        .unwrap();
    let refused = connect(
        &mut client,
        &strict.endpoint_url(),
        SecurityPolicy::Basic256Sha256,
        MessageSecurityMode::SignAndEncrypt,
        IdentityToken::Anonymous,
    )
    .await;
    assert_eq!(refused.err(), Some(StatusCode::BadCertificateUntrusted));
    assert_eq!(
        std::fs::read_dir(strict_pki.join("rejected"))
            .unwrap()
            .count(),
        1
    );
    strict.shutdown().await;

    let sim = PlcSim::start(PlcSimConfig {
        auto_accept: true,
        ..base_config(dir.join("server"))
    })
    .await
    .unwrap();
    let url = sim.endpoint_url();

    // Self-signed certificate names the application URI and the host.
    let cert = X509::from_der(&sim.server_certificate_der()).unwrap();
    cert.is_application_uri_valid(&application_uri("127.0.0.1"))
        .unwrap();
    cert.is_hostname_valid("127.0.0.1").unwrap();

    let session = connect(
        &mut client,
        &url,
        SecurityPolicy::Basic256Sha256,
        MessageSecurityMode::SignAndEncrypt,
        IdentityToken::new_user_name("user1", "password"),
    )
    .await
    .unwrap();
    let v = read(&session, &sim.node_id("Scalar/Int32"), AttributeId::Value).await;
    assert_eq!(v.value, Some(Variant::Int32(0)));
    let _ = session.disconnect().await;

    for (policy, mode) in [
        (
            SecurityPolicy::Aes128Sha256RsaOaep,
            MessageSecurityMode::Sign,
        ),
        (
            SecurityPolicy::Aes256Sha256RsaPss,
            MessageSecurityMode::SignAndEncrypt,
        ),
    ] {
        let session = connect(&mut client, &url, policy, mode, IdentityToken::Anonymous)
            .await
            .unwrap();
        let _ = session.disconnect().await;
    }

    let wrong = connect(
        &mut client,
        &url,
        SecurityPolicy::Basic256Sha256,
        MessageSecurityMode::SignAndEncrypt,
        IdentityToken::new_user_name("user1", "wrong"),
    )
    .await;
    assert_eq!(wrong.err(), Some(StatusCode::BadIdentityTokenRejected));
    sim.shutdown().await;
}

/// Scale check for the gateway use case: a ~100k-leaf tree builds in seconds, the tree is
/// browsable, and 50k counters can be monitored. Slow in debug builds, so opt-in:
/// `cargo test -p iiot-plc-sim --release -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn large_tree_and_fifty_thousand_monitored_items() {
    use opcua::{client::DataChangeCallback, types::MonitoredItemCreateRequest};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    init_tracing();
    let dir = scratch("large");
    let started = Instant::now();
    let sim = PlcSim::start(PlcSimConfig {
        fast_nodes: 50_000,
        fast_rate_ms: 1000,
        tree: Some((2, 316)),
        ..base_config(dir.join("server"))
    })
    .await
    .unwrap();
    eprintln!(
        "start with 2x316 tree + 50k fast nodes: {:?}",
        started.elapsed()
    );

    let mut client = client(dir.join("client"), false);
    let session = connect(
        &mut client,
        &sim.endpoint_url(),
        SecurityPolicy::None,
        MessageSecurityMode::None,
        IdentityToken::Anonymous,
    )
    .await
    .unwrap();

    let t = Instant::now();
    let folders = children(&session, &sim.node_id("Tree")).await;
    assert_eq!(folders.len(), 316);
    let mut leaves = 0;
    for chunk in folders.chunks(100) {
        let bds: Vec<BrowseDescription> = chunk
            .iter()
            .map(|f| BrowseDescription {
                node_id: sim.node_id(&format!("Tree/{f}")),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: 0,
                result_mask: BrowseResultMask::All as u32,
            })
            .collect();
        for r in session.browse(&bds, 0, None).await.unwrap() {
            assert!(r.continuation_point.is_null_or_empty());
            leaves += r.references.map_or(0, |r| r.len());
        }
    }
    assert_eq!(leaves, 316 * 316);
    eprintln!("browsed {leaves} leaves in {:?}", t.elapsed());

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let sub = session
        .create_subscription(
            Duration::from_millis(500),
            60,
            20,
            0,
            0,
            true,
            DataChangeCallback::new(move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .await
        .unwrap();
    let t = Instant::now();
    let ids: Vec<NodeId> = (0..50_000)
        .map(|i| sim.node_id(&format!("Fast/{i}")))
        .collect();
    for chunk in ids.chunks(10_000) {
        let items: Vec<MonitoredItemCreateRequest> =
            chunk.iter().cloned().map(Into::into).collect();
        let created = session
            .create_monitored_items(sub, TimestampsToReturn::Both, items)
            .await
            .unwrap();
        assert!(created.iter().all(|c| c.result.status_code.is_good()));
    }
    eprintln!("created 50k monitored items in {:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let n = received.load(Ordering::Relaxed);
    eprintln!("{n} data changes in 3.5 s");
    assert!(n >= 100_000, "only {n} notifications");
    let _ = session.disconnect().await;
    sim.shutdown().await;
}

/// A fast rate below what clients may sample would change values no client can see: refused,
/// with a message that names the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_rate_below_ten_ms_is_refused() {
    init_tracing();
    let dir = scratch("fast-rate-floor");
    let err = PlcSim::start(PlcSimConfig {
        fast_rate_ms: 5,
        ..base_config(dir.join("server"))
    })
    .await
    .expect_err("a 5 ms fast rate must be refused");
    assert!(matches!(err, iiot_plc_sim::PlcSimError::Config(_)), "{err}");
    assert!(err.to_string().contains("10 ms"), "{err}");
}

/// With a 20 ms fast rate the server lets a client sample every 20 ms, so a monitored item
/// with a queue sees every counter value, none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_counters_can_be_sampled_as_fast_as_they_change() {
    use opcua::{
        client::DataChangeCallback,
        types::{MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters},
    };
    use std::sync::Mutex;

    init_tracing();
    let dir = scratch("fast-rate-sampling");
    let sim = PlcSim::start(PlcSimConfig {
        fast_rate_ms: 20,
        ..base_config(dir.join("server"))
    })
    .await
    .unwrap();
    let mut client = client(dir.join("client"), false);
    let session = connect(
        &mut client,
        &sim.endpoint_url(),
        SecurityPolicy::None,
        MessageSecurityMode::None,
        IdentityToken::Anonymous,
    )
    .await
    .unwrap();

    let min_rate = read(
        &session,
        &VariableId::Server_ServerCapabilities_MinSupportedSampleRate.into(),
        AttributeId::Value,
    )
    .await;
    assert_eq!(
        min_rate.value.and_then(|v| v.as_f64()),
        Some(20.0),
        "MinSupportedSampleRate"
    );

    let values = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sink = values.clone();
    let sub = session
        .create_subscription(
            Duration::from_millis(100),
            60,
            20,
            0,
            0,
            true,
            DataChangeCallback::new(move |dv, _| {
                if let Some(Variant::UInt64(v)) = dv.value {
                    sink.lock().unwrap().push(v);
                }
            }),
        )
        .await
        .unwrap();
    let item = MonitoredItemCreateRequest {
        item_to_monitor: ReadValueId {
            node_id: sim.node_id("Fast/0"),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        },
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            client_handle: 1,
            sampling_interval: 20.0,
            queue_size: 50,
            discard_oldest: true,
            ..Default::default()
        },
    };
    let created = session
        .create_monitored_items(sub, TimestampsToReturn::Both, vec![item])
        .await
        .unwrap();
    let result = &created[0].result;
    assert!(result.status_code.is_good(), "{}", result.status_code);
    assert_eq!(result.revised_sampling_interval, 20.0);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = values.lock().unwrap().clone();
    let _ = session.disconnect().await;
    sim.shutdown().await;
    assert!(got.len() >= 50, "only {} values in 2 s: {got:?}", got.len());
    let skipped: Vec<_> = got.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(skipped.is_empty(), "values skipped: {skipped:?}");
}
