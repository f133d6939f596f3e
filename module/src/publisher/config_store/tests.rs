use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::api::publisher_config::entry_from_value;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("iiot-config-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entry(v: Value) -> PublishedNodesEntryModel {
    entry_from_value(v).unwrap()
}

fn writer(nodes: &[&str]) -> PublishedNodesEntryModel {
    entry(json!({
        "EndpointUrl": "opc.tcp://plc:50000", "DataSetWriterGroup": "Asset0",
        "DataSetWriterId": "DataFlow0", "DataSetPublishingInterval": 5000,
        "OpcNodes": nodes.iter().map(|n| json!({ "Id": n })).collect::<Vec<_>>()
    }))
}

fn ids(store: &ConfigStore) -> Vec<Vec<String>> {
    store
        .entries()
        .unwrap()
        .iter()
        .map(|e| {
            e.opc_nodes
                .iter()
                .flatten()
                .map(|n| identity::node_id(n).to_string())
                .collect()
        })
        .collect()
}

fn file_json(store: &ConfigStore) -> Value {
    serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap()
}

#[test]
fn publish_nodes_merges_into_the_same_writer_and_adds_new_writers() {
    let dir = temp_dir("publish");
    let store = ConfigStore::open(None, &dir).unwrap();
    assert!(!store.path().exists(), "created only at the first change");
    store.publish_nodes(writer(&["i=1", "i=2"])).unwrap();
    // Same writer (TimeSpan spelling of the same interval): merged, i=2 updated not doubled.
    let mut again = writer(&["i=2", "i=3"]);
    again.data_set_publishing_interval = None;
    again.data_set_publishing_interval_timespan = Some("00:00:05".into());
    again.opc_nodes.as_mut().unwrap()[0].display_name = Some("two".into());
    store.publish_nodes(again).unwrap();
    assert_eq!(ids(&store), vec![vec!["i=1", "i=2", "i=3"]]);
    assert_eq!(
        store.entries().unwrap()[0].opc_nodes.as_ref().unwrap()[1]
            .display_name
            .as_deref(),
        Some("two")
    );
    // Another writer id is another writer.
    let mut other = writer(&["i=9"]);
    other.data_set_writer_id = Some("DataFlow1".into());
    store.publish_nodes(other).unwrap();
    assert_eq!(ids(&store).len(), 2);
    // No nodes: refused, nothing changed.
    let err = store.publish_nodes(writer(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::BadRequest(_)), "{err}");
    assert_eq!(ids(&store).len(), 2);
}

#[test]
fn unpublish_nodes_removes_listed_nodes_and_fails_whole_if_one_is_missing() {
    let store = ConfigStore::open(None, &temp_dir("unpublish")).unwrap();
    store.publish_nodes(writer(&["i=1", "i=2", "i=3"])).unwrap();
    let err = store
        .unpublish_nodes(writer(&["i=1", "i=404"]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::NodesNotFound(_)), "{err}");
    assert!(err.to_string().contains("i=404"), "{err}");
    assert_eq!(ids(&store), vec![vec!["i=1", "i=2", "i=3"]]);
    let se: ServiceError = err.into();
    assert_eq!(se.symbol(), "BadNodeIdUnknown");
    assert_eq!(se.kind, ErrorKind::NotFound);

    store.unpublish_nodes(writer(&["i=1", "i=3"])).unwrap();
    assert_eq!(ids(&store), vec![vec!["i=2"]]);
    // The last node takes the writer with it.
    store.unpublish_nodes(writer(&["i=2"])).unwrap();
    assert!(store.entries().unwrap().is_empty());
    assert_eq!(file_json(&store), json!([]));
    // An unknown writer is a 404.
    let err = store.unpublish_nodes(writer(&["i=1"])).unwrap_err();
    assert!(matches!(err, ConfigError::EndpointNotFound(_)), "{err}");
    // Without nodes the whole writer goes (2.5 behaviour).
    store.publish_nodes(writer(&["i=1", "i=2"])).unwrap();
    store.unpublish_nodes(writer(&[])).unwrap();
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn unpublish_all_nodes_removes_one_writer_or_everything() {
    let store = ConfigStore::open(None, &temp_dir("unpublish-all")).unwrap();
    store.publish_nodes(writer(&["i=1"])).unwrap();
    let mut other = writer(&["i=2"]);
    other.data_set_writer_group = Some("Asset1".into());
    store.publish_nodes(other).unwrap();
    assert!(matches!(
        store.unpublish_all_nodes(Some(writer(&["i=1"]))),
        Err(ConfigError::BadRequest(_))
    ));
    store.unpublish_all_nodes(Some(writer(&[]))).unwrap();
    assert_eq!(ids(&store), vec![vec!["i=2"]]);
    assert!(matches!(
        store.unpublish_all_nodes(Some(writer(&[]))),
        Err(ConfigError::EndpointNotFound(_))
    ));
    store.unpublish_all_nodes(None).unwrap();
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn add_or_update_replaces_removes_and_is_all_or_nothing() {
    let store = ConfigStore::open(None, &temp_dir("add-or-update")).unwrap();
    store.publish_nodes(writer(&["i=1", "i=2"])).unwrap();
    let mut second = writer(&["i=7"]);
    second.data_set_writer_id = Some("DataFlow1".into());
    // Replace the nodes of writer 0 and add writer 1.
    store
        .add_or_update_endpoints(vec![writer(&["i=5"]), second.clone()])
        .unwrap();
    assert_eq!(ids(&store), vec![vec!["i=5"], vec!["i=7"]]);
    // Duplicates in one request: 400.
    assert!(matches!(
        store.add_or_update_endpoints(vec![writer(&["i=1"]), writer(&["i=2"])]),
        Err(ConfigError::BadRequest(_))
    ));
    // Removing an unknown writer fails everything, including the valid update beside it.
    let mut unknown = writer(&[]);
    unknown.data_set_writer_id = Some("nope".into());
    assert!(matches!(
        store.add_or_update_endpoints(vec![writer(&["i=6"]), unknown]),
        Err(ConfigError::EndpointNotFound(_))
    ));
    assert_eq!(ids(&store), vec![vec!["i=5"], vec!["i=7"]]);
    // Empty nodes remove.
    store.add_or_update_endpoints(vec![writer(&[])]).unwrap();
    assert_eq!(ids(&store), vec![vec!["i=7"]]);
}

#[test]
fn get_and_set_configured_endpoints() {
    let store = ConfigStore::open(None, &temp_dir("get-set")).unwrap();
    store.publish_nodes(writer(&["i=1", "i=2"])).unwrap();
    let listed = store.get_configured_endpoints(false).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].opc_nodes, None);
    assert_eq!(listed[0].data_set_writer_id.as_deref(), Some("DataFlow0"));
    assert_eq!(
        store.get_configured_endpoints(true).unwrap()[0]
            .opc_nodes
            .as_ref()
            .map(Vec::len),
        Some(2)
    );
    // The listed entry names its writer in GetConfiguredNodesOnEndpoint.
    let nodes = store
        .get_configured_nodes_on_endpoint(listed[0].clone())
        .unwrap();
    assert_eq!(nodes.len(), 2);
    let mut unknown = listed[0].clone();
    unknown.data_set_writer_group = Some("other".into());
    assert!(matches!(
        store.get_configured_nodes_on_endpoint(unknown),
        Err(ConfigError::EndpointNotFound(_))
    ));
    store
        .set_configured_endpoints(vec![writer(&["i=3"]), {
            let mut e = writer(&["i=4"]);
            e.data_set_writer_id = Some("x".into());
            e
        }])
        .unwrap();
    assert_eq!(ids(&store), vec![vec!["i=3"], vec!["i=4"]]);
    store.set_configured_endpoints(vec![]).unwrap();
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn a_configuration_that_does_not_plan_is_refused_and_the_running_one_stays() {
    let store = ConfigStore::open(None, &temp_dir("refused")).unwrap();
    store.publish_nodes(writer(&["i=1"])).unwrap();
    let before = std::fs::read(store.path()).unwrap();
    let bad = entry(json!({ "EndpointUrl": "http://not-opc", "OpcNodes": [{ "Id": "i=1" }] }));
    let err = store.publish_nodes(bad).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("EndpointUrl 'http://not-opc'"), "{text}");
    assert!(text.contains("entry 0"), "{text}");
    let bad_node = entry(json!({ "EndpointUrl": "opc.tcp://a:1",
        "OpcNodes": [{ "Id": "i=1" }, { "Id": "i=2", "DeadbandType": "Sideways" }] }));
    let err = store
        .set_configured_endpoints(vec![writer(&["i=9"]), bad_node])
        .unwrap_err();
    assert!(err.to_string().contains("entry 1"), "{err}");
    assert!(err.to_string().contains("OpcNodes[1]"), "{err}");
    assert!(err.to_string().contains("DeadbandType"), "{err}");
    let se: ServiceError = err.into();
    assert_eq!(se.kind, ErrorKind::BadRequest);
    assert_eq!(ids(&store), vec![vec!["i=1"]]);
    assert_eq!(std::fs::read(store.path()).unwrap(), before);
}

#[test]
fn persisted_changes_survive_a_restart_in_the_2_9_form() {
    let dir = temp_dir("persist");
    let pf = dir.join("sub").join("pn.json");
    let store = ConfigStore::open(Some(pf.clone()), &dir).unwrap();
    store.publish_nodes(writer(&["i=1", "i=2"])).unwrap();
    let on_disk = file_json(&store);
    assert_eq!(on_disk[0]["EndpointUrl"], "opc.tcp://plc:50000");
    assert_eq!(on_disk[0]["DataSetWriterGroup"], "Asset0");
    assert_eq!(on_disk[0]["OpcNodes"][1]["Id"], "i=2");
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(pf.parent().unwrap()).unwrap().count(), 1);
    drop(store);
    let reopened = ConfigStore::open(Some(pf), &dir).unwrap();
    assert_eq!(ids(&reopened), vec![vec!["i=1", "i=2"]]);
    assert_eq!(reopened.subscribe().borrow().len(), 1);
}

#[test]
fn credentials_are_sealed_on_disk_and_clear_in_memory() {
    let dir = temp_dir("credentials");
    let store = ConfigStore::open(None, &dir).unwrap();
    let mut rx = store.subscribe();
    let mut e = writer(&["i=1"]);
    e.opc_authentication_mode = Some("UsernamePassword".into());
    e.opc_authentication_username = Some("operator7".into());
    e.opc_authentication_password = Some("Tr0ub4dor&3-secret".into());
    store.publish_nodes(e.clone()).unwrap();
    let bytes = std::fs::read(store.path()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("Tr0ub4dor&3-secret"), "{text}");
    assert!(!text.contains("operator7"), "{text}");
    assert!(!text.contains("OpcAuthenticationPassword"), "{text}");
    assert!(text.contains("EncryptedAuthPassword"), "{text}");
    assert!(dir.join(KEY_FILE_NAME).exists());
    assert!(rx.has_changed().unwrap());
    let seen = rx.borrow_and_update().unpack().unwrap();
    assert_eq!(
        seen[0].opc_authentication_password.as_deref(),
        Some("Tr0ub4dor&3-secret")
    );
    assert_eq!(seen[0].encrypted_auth_password, None);
    // The API lists sealed values, and they name the writer when sent back.
    let listed = store.get_configured_endpoints(false).unwrap();
    assert_eq!(listed[0].opc_authentication_password, None);
    assert!(listed[0].encrypted_auth_password.is_some());
    assert!(store
        .get_configured_nodes_on_endpoint(listed[0].clone())
        .is_ok());
    // Same clear credentials also name it; a different password does not.
    assert!(store.get_configured_nodes_on_endpoint(e.clone()).is_ok());
    let mut wrong = e.clone();
    wrong.opc_authentication_password = Some("nope".into());
    assert!(store.get_configured_nodes_on_endpoint(wrong).is_err());
    // Reopened: decrypted again.
    drop(store);
    let reopened = ConfigStore::open(None, &dir).unwrap();
    assert_eq!(
        reopened.entries().unwrap()[0]
            .opc_authentication_password
            .as_deref(),
        Some("Tr0ub4dor&3-secret")
    );
    // Rewriting an unchanged configuration writes the same bytes (stable ciphertext).
    reopened
        .set_configured_endpoints(reopened.entries().unwrap().as_ref().clone())
        .unwrap();
    assert_eq!(std::fs::read(reopened.path()).unwrap(), bytes);
}

#[test]
fn clear_credentials_written_by_hand_are_accepted_then_sealed() {
    let dir = temp_dir("hand-credentials");
    std::fs::write(
        dir.join(DEFAULT_FILE_NAME),
        r#"[{ "EndpointUrl": "opc.tcp://a:1", "OpcAuthenticationMode": "UsernamePassword",
              "OpcAuthenticationUsername": "u", "OpcAuthenticationPassword": "hunter2-clear",
              "OpcNodes": [{ "Id": "i=1" }] }]"#,
    )
    .unwrap();
    let store = ConfigStore::open(None, &dir).unwrap();
    assert_eq!(
        store.entries().unwrap()[0]
            .opc_authentication_password
            .as_deref(),
        Some("hunter2-clear")
    );
    let mut add = store.entries().unwrap()[0].clone();
    add.opc_nodes = Some(vec![OpcNodeModel {
        id: Some("i=2".into()),
        ..Default::default()
    }]);
    store.publish_nodes(add).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains("hunter2-clear"), "{text}");
    assert_eq!(ids(&store), vec![vec!["i=1", "i=2"]]);
}

#[test]
fn a_foreign_key_is_a_clear_error_naming_the_entry() {
    let dir = temp_dir("foreign-key");
    let store = ConfigStore::open(None, &dir).unwrap();
    let mut e = writer(&["i=1"]);
    e.opc_authentication_mode = Some("UsernamePassword".into());
    e.opc_authentication_username = Some("u".into());
    e.opc_authentication_password = Some("p".into());
    store.publish_nodes(e).unwrap();
    drop(store);
    // Another data directory's key.
    let other = temp_dir("foreign-key-other");
    std::fs::write(other.join(KEY_FILE_NAME), [7u8; 32]).unwrap();
    let err = ConfigStore::open(Some(dir.join(DEFAULT_FILE_NAME)), &other).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ConfigError::Credentials { index: 0, .. }),
        "{text}"
    );
    assert!(text.contains("opc.tcp://plc:50000"), "{text}");
    assert!(text.contains("EncryptedAuth"), "{text}");
}

#[test]
fn hand_edits_apply_and_malformed_files_keep_the_running_configuration() {
    let dir = temp_dir("reload");
    let store = ConfigStore::open(None, &dir).unwrap();
    store.publish_nodes(writer(&["i=1"])).unwrap();
    let mut rx = store.subscribe();
    rx.mark_unchanged();
    // Our own write is not a hand edit.
    assert!(!store.reload().unwrap());
    assert!(!rx.has_changed().unwrap());

    std::fs::write(
        store.path(),
        r#"[{ "EndpointUrl": "opc.tcp://b:2", "OpcNodes": [{ "Id": "i=42" }] }]"#,
    )
    .unwrap();
    assert!(store.reload().unwrap());
    assert!(rx.has_changed().unwrap());
    assert_eq!(
        rx.borrow_and_update().unpack().unwrap()[0].endpoint_url,
        "opc.tcp://b:2"
    );

    let broken = "[{ \"EndpointUrl\": \"opc.tcp://b:2\", \"OpcNodes\": [ }]";
    std::fs::write(store.path(), broken).unwrap();
    let err = store.reload().unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");
    // Reported once, not on every poll.
    assert!(!store.reload().unwrap());
    assert_eq!(ids(&store), vec![vec!["i=42"]]);
    assert!(!rx.has_changed().unwrap());
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), broken);

    // Parses but does not plan: also refused.
    std::fs::write(
        store.path(),
        r#"[{ "EndpointUrl": "opc.tcp://b:2", "OpcNodes": [{ "DisplayName": "no id" }] }]"#,
    )
    .unwrap();
    assert!(matches!(store.reload(), Err(ConfigError::Invalid { .. })));
    assert_eq!(ids(&store), vec![vec!["i=42"]]);

    // An API change then saves the refused edit aside before writing.
    store.publish_nodes(writer(&["i=1"])).unwrap();
    assert!(store.path().with_extension("json.invalid").exists());
    assert_eq!(ids(&store), vec![vec!["i=42"], vec!["i=1"]]);
}

#[tokio::test]
async fn the_watcher_applies_a_hand_edit_within_two_seconds() {
    let dir = temp_dir("watcher");
    let store = ConfigStore::open(None, &dir).unwrap();
    store.publish_nodes(writer(&["i=1"])).unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = store.spawn_watcher(Duration::from_millis(100), stop_rx);
    let mut rx = store.subscribe();
    rx.mark_unchanged();
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(
        store.path(),
        r#"[{ "EndpointUrl": "opc.tcp://c:3", "OpcNodes": [{ "Id": "i=5" }] }]"#,
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(2), rx.changed())
        .await
        .expect("hand edit not picked up within 2 s")
        .unwrap();
    assert_eq!(
        rx.borrow().unpack().unwrap()[0].endpoint_url,
        "opc.tcp://c:3"
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn diagnostic_info_reports_each_writer_with_its_entries_and_no_password() {
    let store = ConfigStore::open(None, &temp_dir("diagnostics")).unwrap();
    let mut e = writer(&["i=1"]);
    e.opc_authentication_mode = Some("UsernamePassword".into());
    e.opc_authentication_username = Some("u".into());
    e.opc_authentication_password = Some("diag-secret".into());
    store.publish_nodes(e).unwrap();
    let diag = crate::publisher::metrics::PublisherDiagnostics::default();
    let w = diag.writer("Asset0", "DataFlow0", "opc.tcp://plc:50000", 5000);
    w.values_in.add(12);
    w.items_good.set(1);
    w.connected.set(1);
    diag.writer("gone", "w", "opc.tcp://x:1", 1000);
    let info = store.diagnostic_info(&diag).unwrap();
    assert_eq!(info.len(), 2);
    let text = serde_json::to_string(&info).unwrap();
    assert!(!text.contains("diag-secret"));
    assert!(!text.contains("EncryptedAuthPassword"));
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v[0]["endpoints"][0]["DataSetWriterId"], "DataFlow0");
    assert_eq!(v[0]["ingressValueChanges"], 12);
    assert_eq!(v[0]["monitoredOpcNodesSucceededCount"], 1);
    assert_eq!(v[0]["opcEndpointConnected"], true);
    assert_eq!(v[1]["endpoints"][0]["DataSetWriterGroup"], "gone");
    assert!(
        v[0].get("certificateEnrollment").is_none(),
        "no GDS, no member"
    );

    // With a GDS the module-wide enrollment state rides along, as the outbox's does.
    diag.enrollment
        .set(crate::enrollment::status::Phase::WaitingForApproval);
    let v = serde_json::to_value(store.diagnostic_info(&diag).unwrap()).unwrap();
    assert_eq!(v[0]["certificateEnrollment"], "waiting_for_approval");
    assert!(v[0].get("certificateNotAfter").is_none());
    diag.enrollment.enrolled(4_102_444_800);
    diag.enrollment.trust_list_refreshed();
    let v = serde_json::to_value(store.diagnostic_info(&diag).unwrap()).unwrap();
    assert_eq!(v[1]["certificateEnrollment"], "enrolled");
    assert_eq!(v[1]["certificateNotAfter"], "2100-01-01T00:00:00Z");
    assert!(v[1]["trustListRefreshed"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));
    let _ = Arc::clone(&store);
}
