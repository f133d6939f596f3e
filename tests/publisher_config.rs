//! The publisher's configuration API (OPC Publisher 2.9 routes and method names) against the
//! real binary: HTTP and MQTT RPC, persistence across restarts, hand edits of the `--pf` file,
//! error answers and `/metrics`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn entry(writer: &str, nodes: &[&str]) -> Value {
    json!({
        "EndpointUrl": "opc.tcp://127.0.0.1:4999",
        "DataSetWriterGroup": "Asset0",
        "DataSetWriterId": writer,
        "DataSetPublishingInterval": 5000,
        "OpcNodes": nodes.iter().map(|n| json!({ "Id": n })).collect::<Vec<_>>()
    })
}

fn node_ids(body: &Value) -> Vec<String> {
    body["opcNodes"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|n| n["Id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls GetConfiguredEndpoints until `ok` holds or `within` passes.
async fn wait_for_endpoints(m: &Module, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = m.call(Method::GET, "/v2/configuration", None).await;
        assert_eq!(status, 200, "{body}");
        if ok(&body["endpoints"]) || Instant::now() > deadline {
            return body["endpoints"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_over_http_survives_a_restart() {
    let dir = temp_dir("pubcfg-http");
    let m = Module::start_in("pubcfg-http", None, &dir, &[]).await;

    // The OpenAPI document is anonymous, lists the routes served (configuration included)
    // and documents errors as problem+json.
    let doc: Value = reqwest::get(format!("{}/openapi.json", m.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, verb) in [
        ("/v2/read", "post"),
        ("/v2/configuration", "get"),
        ("/v2/configuration/nodes", "post"),
    ] {
        assert!(
            doc["paths"][path][verb].is_object(),
            "{path} {verb} in {doc}"
        );
    }
    assert!(
        doc["paths"]["/v2/read"]["post"]["responses"]["default"]["content"]
            ["application/problem+json"]
            .is_object()
    );
    assert!(doc["paths"].get("/v2/diagnostics/channels").is_none());

    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/nodes",
            Some(&entry("DataFlow0", &["i=2258", "ns=2;s=Fast/0"])),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({})));
    // camelCase members, as in OPC Publisher's own samples, name the same writer.
    let camel = json!({ "endpointUrl": "opc.tcp://127.0.0.1:4999", "dataSetWriterGroup": "Asset0",
        "dataSetWriterId": "DataFlow0", "dataSetPublishingInterval": 5000,
        "opcNodes": [{ "id": "ns=2;s=Fast/1" }] });
    let (status, body) = m
        .call(Method::POST, "/v2/configuration/nodes", Some(&camel))
        .await;
    assert_eq!(status, 200, "{body}");

    // GetConfiguredEndpoints: entries without nodes unless asked.
    let (status, body) = m.call(Method::GET, "/v2/configuration", None).await;
    assert_eq!(status, 200, "{body}");
    let endpoints = body["endpoints"].as_array().expect("endpoints").clone();
    assert_eq!(endpoints.len(), 1, "{body}");
    assert_eq!(endpoints[0]["DataSetWriterId"], "DataFlow0");
    assert!(endpoints[0].get("OpcNodes").is_none(), "{body}");
    let (_, body) = m
        .call(Method::GET, "/v2/configuration?IncludeNodes=true", None)
        .await;
    assert_eq!(
        body["endpoints"][0]["OpcNodes"].as_array().map(Vec::len),
        Some(3)
    );

    // GetConfiguredNodesOnEndpoint with the entry GetConfiguredEndpoints returned.
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/endpoints/list/nodes",
            Some(&endpoints[0]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        node_ids(&body),
        ["i=2258", "ns=2;s=Fast/0", "ns=2;s=Fast/1"]
    );

    // UnpublishNodes of a node that is not published: 404, nothing removed.
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/nodes/unpublish",
            Some(&entry("DataFlow0", &["i=2258", "ns=2;s=Nope"])),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["symbolicId"], "BadNodeIdUnknown", "{body}");
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/nodes/unpublish",
            Some(&entry("DataFlow0", &["i=2258"])),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // AddOrUpdateEndpoints (PATCH) adds a writer with credentials; they are sealed on disk.
    let mut secured = entry("DataFlow1", &["ns=2;s=Slow/0"]);
    secured["OpcAuthenticationMode"] = json!("UsernamePassword");
    secured["OpcAuthenticationUsername"] = json!("user1");
    secured["OpcAuthenticationPassword"] = json!("e2e-Secret-Passw0rd");
    let (status, body) = m
        .call(Method::PATCH, "/v2/configuration", Some(&json!([secured])))
        .await;
    assert_eq!(status, 200, "{body}");
    let on_disk = std::fs::read_to_string(dir.join("publishednodes.json")).expect("pf file");
    assert!(!on_disk.contains("e2e-Secret-Passw0rd"), "{on_disk}");
    assert!(on_disk.contains("EncryptedAuthPassword"), "{on_disk}");
    let (_, body) = m.call(Method::GET, "/v2/configuration", None).await;
    assert!(!body.to_string().contains("e2e-Secret-Passw0rd"), "{body}");
    assert_eq!(body["endpoints"].as_array().map(Vec::len), Some(2));

    // Restart on the same data directory: the configuration is still there, secrets included.
    drop(m);
    let m = Module::start_in("pubcfg-http", None, &dir, &[]).await;
    let (_, body) = m
        .call(Method::GET, "/v2/configuration?includeNodes=true", None)
        .await;
    let endpoints = body["endpoints"].as_array().expect("endpoints").clone();
    assert_eq!(endpoints.len(), 2, "{body}");
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/endpoints/list/nodes",
            Some(&secured),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(node_ids(&body), ["ns=2;s=Slow/0"]);

    // SetConfiguredEndpoints (PUT) replaces everything; UnpublishAllNodes with no body purges.
    let (status, body) = m
        .call(
            Method::PUT,
            "/v2/configuration",
            Some(&json!({ "endpoints": [entry("Only", &["i=2258"])] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let endpoints = wait_for_endpoints(&m, Duration::ZERO, |_| true).await;
    assert_eq!(endpoints.as_array().map(Vec::len), Some(1));
    assert_eq!(endpoints[0]["DataSetWriterId"], "Only");
    let (status, _, _) = m
        .request(
            Method::POST,
            "/v2/configuration/nodes/unpublish/all",
            Some(API_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let endpoints = wait_for_endpoints(&m, Duration::ZERO, |_| true).await;
    assert_eq!(endpoints, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_of_the_pf_file_are_picked_up_and_bad_ones_refused() {
    let dir = temp_dir("pubcfg-pf");
    let pf = dir.join("config").join("my-nodes.json");
    std::fs::create_dir_all(pf.parent().unwrap()).unwrap();
    std::fs::write(
        &pf,
        r#"[ // a 2.5 style file
            { "EndpointUrl": "opc.tcp://127.0.0.1:4999", "NodeId": { "Identifier": "i=2258" } } ]"#,
    )
    .unwrap();
    let pf_arg = pf.to_string_lossy().to_string();
    let m = Module::start_in("pubcfg-pf", None, &dir, &["--pf", &pf_arg]).await;
    let endpoints = wait_for_endpoints(&m, Duration::ZERO, |_| true).await;
    assert_eq!(endpoints[0]["EndpointUrl"], "opc.tcp://127.0.0.1:4999");

    // A hand edit is applied within about two seconds.
    std::fs::write(
        &pf,
        r#"[{ "EndpointUrl": "opc.tcp://127.0.0.1:4998", "DataSetWriterId": "edited",
              "OpcNodes": [{ "Id": "i=2259" }] }]"#,
    )
    .unwrap();
    let started = Instant::now();
    let endpoints = wait_for_endpoints(&m, Duration::from_secs(3), |e| {
        e[0]["DataSetWriterId"] == "edited"
    })
    .await;
    assert_eq!(endpoints[0]["DataSetWriterId"], "edited", "{endpoints}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // A malformed edit is refused: the running configuration stays, the file is untouched.
    let broken = r#"[{ "EndpointUrl": "opc.tcp://127.0.0.1:4998", "OpcNodes": [ }"#;
    std::fs::write(&pf, broken).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let endpoints = wait_for_endpoints(&m, Duration::ZERO, |_| true).await;
    assert_eq!(endpoints[0]["DataSetWriterId"], "edited", "{endpoints}");
    assert_eq!(std::fs::read_to_string(&pf).unwrap(), broken);

    // The API writes to the --pf file, not the default one.
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/nodes",
            Some(&entry("api", &["i=1"])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&pf).unwrap()).unwrap();
    assert_eq!(written.as_array().map(Vec::len), Some(2), "{written}");
    assert!(!dir.join("publishednodes.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_requests_are_problem_json() {
    let m = Module::start("pubcfg-errors", None).await;
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/v2/configuration/nodes",
            Some(json!({ "EndpointUrl": 5 })),
            "BadDecodingError",
        ),
        (
            Method::POST,
            "/v2/configuration/nodes",
            Some(json!("not an entry")),
            "BadDecodingError",
        ),
        (
            Method::POST,
            "/v2/configuration/nodes",
            Some(json!({ "EndpointUrl": "http://not-opc-ua", "OpcNodes": [{ "Id": "i=1" }] })),
            "BadInvalidArgument",
        ),
        (
            Method::POST,
            "/v2/configuration/nodes",
            Some(entry("w", &[])),
            "BadInvalidArgument",
        ),
        (
            Method::PATCH,
            "/v2/configuration",
            Some(json!({ "not": "an array" })),
            "BadDecodingError",
        ),
        (
            Method::GET,
            "/v2/configuration?IncludeNodes=maybe",
            None,
            "BadInvalidArgument",
        ),
    ];
    for (method, path, body, symbol) in cases {
        let (status, content_type, text) = m
            .request(method.clone(), path, Some(API_KEY), body.as_ref())
            .await;
        assert_eq!(status, 400, "{method} {path}: {text}");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{content_type}"
        );
        let problem: Value = serde_json::from_str(&text).expect("problem body");
        assert_eq!(problem["symbolicId"], symbol, "{method} {path}: {text}");
    }
    let (status, body) = m
        .call(
            Method::POST,
            "/v2/configuration/endpoints/list/nodes",
            Some(&entry("absent", &[])),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // Without the key, nothing.
    let (status, _, _) = m
        .request(Method::GET, "/v2/configuration", None, None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_api_key_and_list_the_series() {
    let m = Module::start("pubcfg-metrics", None).await;
    let (status, _, _) = m.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = m
        .request(Method::GET, "/metrics", Some("wrong-key"), None)
        .await;
    assert_eq!(status, 401);
    let (status, content_type, text) = m
        .request(Method::GET, "/metrics", Some(API_KEY), None)
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    for series in [
        "# TYPE iiot_publisher_notifications_in_total counter",
        "\niiot_publisher_notifications_in_total 0\n",
        "# TYPE iiot_publisher_outbox_messages gauge",
        "\niiot_publisher_messages_acked_total 0\n",
        "# TYPE iiot_publisher_writer_values_in_total counter",
        "\niiot_publisher_configured_entries 0\n",
    ] {
        assert!(text.contains(series), "missing {series:?} in\n{text}");
    }
    let (status, _, _) = m.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_over_mqtt_rpc_matches_http() {
    let broker = Mosquitto::start().await;
    let m = Module::start("pubcfg-mqtt", Some(&broker.url())).await;
    let mut rpc = RpcClient::connect(broker.port).await;
    let root = m.publisher_id.clone();

    // The module subscribes after connecting; retry the first call until it answers.
    let publish = entry("DataFlow0", &["i=2258", "i=2259"]);
    let mut first = None;
    for _ in 0..20 {
        let call = tokio::time::timeout(
            Duration::from_secs(2),
            rpc.call(&root, "PublishNodes_V1", &publish),
        );
        if let Ok(answer) = call.await {
            first = Some(answer);
            break;
        }
    }
    let (status, body) = first.expect("module answered over MQTT");
    assert_eq!((status, &body), (200, &json!({})));

    let (status, body) = rpc
        .call(&root, "GetConfiguredEndpoints_V1", &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["endpoints"][0]["DataSetWriterId"], "DataFlow0",
        "{body}"
    );
    assert!(body["endpoints"][0].get("OpcNodes").is_none(), "{body}");
    let (_, with_nodes) = rpc
        .call(
            &root,
            "GetConfiguredEndpoints",
            &json!({ "includeNodes": true }),
        )
        .await;
    assert_eq!(
        with_nodes["endpoints"][0]["OpcNodes"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let (status, body) = rpc
        .call(
            &root,
            "GetConfiguredNodesOnEndpoint_V1",
            &body["endpoints"][0],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(node_ids(&body), ["i=2258", "i=2259"]);
    // directmethods.md's example spells it with an 's'.
    let (status, alias) = rpc
        .call(&root, "GetConfiguredNodesOnEndpoints_V1", &publish)
        .await;
    assert_eq!((status, &alias), (200, &body));

    // The same configuration is seen over HTTP.
    let (_, http) = m
        .call(
            Method::POST,
            "/v2/configuration/endpoints/list/nodes",
            Some(&publish),
        )
        .await;
    assert_eq!(http, body);

    let (status, body) = rpc
        .call(&root, "UnpublishNodes_V2", &entry("DataFlow0", &["i=1"]))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["symbolicId"], "BadNodeIdUnknown", "{body}");
    let (status, body) = rpc
        .call(&root, "UnpublishNodes", &entry("DataFlow0", &["i=2258"]))
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = rpc.call(&root, "GetDiagnosticInfo_V1", &Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_array(), "{body}");

    let (status, body) = rpc
        .call(
            &root,
            "SetConfiguredEndpoints_V1",
            &json!({ "Endpoints": [entry("X", &["i=1"])] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = rpc.call(&root, "UnpublishAllNodes_V1", &Value::Null).await;
    assert_eq!(status, 200);
    let (_, body) = rpc
        .call(&root, "GetConfiguredEndpoints_V1", &json!({}))
        .await;
    assert_eq!(body["endpoints"], json!([]), "{body}");
}
