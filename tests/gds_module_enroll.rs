//! The module enrolls itself through the vault's GDS (issue 16, item 5), then reads plc-sim over
//! SignAndEncrypt where plc-sim trusts only the vault's CA, and module and plc-sim trust each
//! other through that CA, not through each other's certificates. Revoking the module's
//! certificate makes plc-sim refuse it once plc-sim has the new CRL.
//!
//! plc-sim gets its certificate and trust list by GDS push: the vault, registered with a
//! SecurityAdmin credential of plc-sim, pushes a certificate issued through the workflow, and
//! pushes the new CRL after the revocation without being asked.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{connection_secure, envelope, temp_dir, API_KEY};
use iiot_vault::{ApiKeys, CertType, KekSource, VaultConfig};
use serde_json::{json, Value};

const WRITER: &str = "gds-writer-key-0123456789";
const APPROVER: &str = "gds-approver-key-0123456789";
const ADMIN: &str = "gds-admin-key-0123456789";
const GROUP: &str = "DefaultApplicationGroup";

struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("vault request");
        let status = res.status();
        let v = res.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }
}

impl Rest {
    /// The requests waiting for approval.
    async fn pending(&self) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v2/requests/query",
                WRITER,
                Some(json!({ "state": "New" })),
            )
            .await;
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Approves as the approver, a principal other than the requester.
    async fn approve(&self, request: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/v2/requests/{request}/approve"),
            APPROVER,
            None,
        )
        .await;
    }
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().expect("base64 string"))
        .expect("base64")
}

/// The vault's CA certificates and CRLs in plc-sim's trust list: the one set-up step before the
/// first push (plc-sim must trust the vault's push client); the push then owns the list.
async fn give_plc_sim_the_trust_list(rest: &Rest, pki: &Path) {
    let tl = rest
        .call(
            reqwest::Method::GET,
            &format!("/v2/groups/{GROUP}/trustlist"),
            WRITER,
            None,
        )
        .await;
    std::fs::create_dir_all(pki.join("trusted/crl")).unwrap();
    for (i, c) in tl["trustedCertificates"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        std::fs::write(pki.join(format!("trusted/vault-ca-{i}.der")), b64(c)).unwrap();
    }
    for (i, c) in tl["trustedCrls"].as_array().unwrap().iter().enumerate() {
        std::fs::write(pki.join(format!("trusted/crl/vault-ca-{i}.crl")), b64(c)).unwrap();
    }
}

/// Waits for the push target's newest job (other than `previous`) to reach `state`.
async fn wait_for_push(rest: &Rest, path: &str, previous: Option<&str>, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = rest.call(reqwest::Method::GET, path, WRITER, None).await;
        let job = &t["lastJob"];
        if job["id"].as_str() != previous && job["state"] == state {
            return job.clone();
        }
        assert!(
            job["state"] != "failed" && Instant::now() < deadline,
            "push job not {state}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metrics(base: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default()
}

async fn wait_for_metric(base: &str, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = metrics(base).await;
        if m.contains(line) {
            return m;
        }
        assert!(Instant::now() < deadline, "no '{line}' in /metrics:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read(base: &str, url: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/v2/read"))
        .header("Authorization", format!("ApiKey {API_KEY}"))
        .json(&envelope(
            &connection_secure(url, None),
            json!({ "nodeId": "nsu=urn:iiot:plc-sim;s=Scalar/Int32" }),
        ))
        .send()
        .await
        .expect("module read");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_enrolls_by_pull_and_reads_plc_sim_through_the_vault_ca() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let dir = temp_dir("gds-module-enroll");
    // The vault with its OPC UA face.
    let keys = ApiKeys::parse(
        &json!([
            {"name": "ops", "key": WRITER, "roles": ["writer"]},
            {"name": "sec", "key": APPROVER, "roles": ["approver"]},
            {"name": "root", "key": ADMIN, "roles": ["admin"]}
        ])
        .to_string(),
    )
    .unwrap();
    let mut config = VaultConfig::new(keys);
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.join("vault");
    config.kek = Some(KekSource::File(dir.join("vault.kek")));
    config.cert_types = vec![CertType::RsaSha256];
    config.opcua = Some(iiot_vault::gds::GdsConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        hostname: "localhost".into(),
    });
    let vault = iiot_vault::start(config).await.expect("vault starts");
    let rest = Rest {
        base: format!("http://{}", vault.addr()),
        http: reqwest::Client::new(),
    };
    let gds_url = vault.opcua_url().unwrap().to_string();

    // plc-sim on a vault-issued certificate, trusting only the vault's CA.
    let plc_port = common::free_port();
    let plc_pki = dir.join("plc-pki");
    let plc_uri = iiot_plc_sim::application_uri("127.0.0.1");
    let app = rest
        .call(
            reqwest::Method::POST,
            "/v2/applications",
            WRITER,
            Some(json!({
                "applicationUri": plc_uri,
                "applicationType": "Server",
                "applicationNames": [{"text": "plc-sim"}],
                "discoveryUrls": [format!("opc.tcp://127.0.0.1:{plc_port}/")]
            })),
        )
        .await;
    give_plc_sim_the_trust_list(&rest, &plc_pki).await;
    let plc = iiot_plc_sim::PlcSim::start(iiot_plc_sim::PlcSimConfig {
        port: plc_port,
        pki_dir: plc_pki.clone(),
        security_admins: vec![("secadmin".into(), "plc-push-secret".into())],
        ..Default::default()
    })
    .await
    .expect("plc-sim start");
    let self_signed = plc.server_certificate_der();
    let push = format!(
        "/v2/push/targets/{}",
        app["applicationId"].as_str().unwrap()
    );
    rest.call(
        reqwest::Method::PUT,
        &push,
        ADMIN,
        Some(json!({
            "endpointUrl": format!("opc.tcp://127.0.0.1:{plc_port}/"),
            "userName": "secadmin",
            "password": "plc-push-secret",
            "serverThumbprint": iiot_gds::pki::thumbprint(&self_signed),
        })),
    )
    .await;
    let first = wait_for_push(&rest, &push, None, "waitingForApproval").await;
    rest.approve(first["requestId"].as_str().unwrap()).await;
    let pushed = wait_for_push(&rest, &push, None, "succeeded").await;
    assert_ne!(plc.server_certificate_der(), self_signed);
    assert_eq!(
        pushed["certificateThumbprint"],
        iiot_gds::pki::thumbprint(&plc.server_certificate_der()).to_ascii_uppercase(),
        "plc-sim presents the pushed certificate"
    );

    // The module, told only where the GDS is and what its certificate is.
    let module_dir = dir.join("module");
    let module_config = || iiot_module::ModuleConfig {
        http_bind: "127.0.0.1:0".parse().unwrap(),
        api_key: API_KEY.into(),
        data_dir: module_dir.clone(),
        application_uri: Some("urn:iiot:test:gds-module".into()),
        gds: Some(iiot_module::enrollment::GdsSettings {
            url: gds_url.clone(),
            user: "ops".into(),
            password: WRITER.into(),
            trust: vec![dir.join("vault/gds-pki/own/cert.der")],
            poll_interval: Duration::from_millis(300),
            refresh_interval: Duration::from_secs(3600),
        }),
        ..Default::default()
    };
    let module = iiot_module::start(module_config())
        .await
        .expect("module starts");
    let base = format!("http://{}", module.http_addr);
    wait_for_metric(
        &base,
        "iiot_gds_enrollment_phase{phase=\"waiting_for_approval\"} 1",
    )
    .await;
    // A restart while waiting asks about the same request instead of sending another.
    module.shutdown().await;
    let module = iiot_module::start(module_config())
        .await
        .expect("module restarts");
    let base = format!("http://{}", module.http_addr);
    let plc_url = format!("opc.tcp://127.0.0.1:{plc_port}/");

    // Before enrollment plc-sim refuses the module's self-signed certificate.
    wait_for_metric(
        &base,
        "iiot_gds_enrollment_phase{phase=\"waiting_for_approval\"} 1",
    )
    .await;
    let (status, body) = read(&base, &plc_url).await;
    assert_ne!(
        status, 200,
        "plc-sim accepted a certificate it does not trust: {body}"
    );

    // An approver other than the requester lets it through.
    let pending = rest.pending().await;
    assert_eq!(
        pending.len(),
        1,
        "one request across the restart: {pending:?}"
    );
    let request = pending[0]["requestId"].as_str().unwrap();
    assert_eq!(pending[0]["submitted"]["authorityId"], "ops");
    rest.approve(request).await;
    let m = wait_for_metric(&base, "iiot_gds_enrollment_phase{phase=\"enrolled\"} 1").await;
    assert!(m.contains("iiot_gds_certificates_installed_total 1"), "{m}");
    wait_for_metric(&base, "iiot_gds_trust_list_refreshed_seconds 1").await;
    let fetched = rest
        .call(
            reqwest::Method::GET,
            &format!("/v2/requests/{request}"),
            WRITER,
            None,
        )
        .await;
    assert_eq!(fetched["state"], "Accepted", "{fetched}");
    let own = std::fs::read(module_dir.join("pki/own/cert.der")).unwrap();
    let signed = rest
        .call(
            reqwest::Method::GET,
            &format!("/v2/requests/sign/{request}"),
            WRITER,
            None,
        )
        .await;
    assert_eq!(own, b64(&signed["certificate"]["certificate"]));
    let trusted: Vec<String> = std::fs::read_dir(module_dir.join("pki/trusted"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        trusted.iter().any(|n| n.starts_with("gds-")),
        "the vault CA from the trust list: {trusted:?}"
    );
    assert!(std::fs::read_dir(module_dir.join("pki/trusted/crl"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("gds-")));

    // Now each trusts the other through the vault's CA only.
    let (status, body) = read(&base, &plc_url).await;
    assert_eq!(status, 200, "{body}");

    // Revoked: plc-sim refuses the module once it has the new CRL (a new session: another
    // host name for the same server).
    rest.call(
        reqwest::Method::POST,
        &format!("/v2/requests/{request}/revoke"),
        APPROVER,
        None,
    )
    .await;
    wait_for_push(&rest, &push, pushed["id"].as_str(), "succeeded").await;
    let (status, body) = read(&base, &format!("opc.tcp://localhost:{plc_port}/")).await;
    assert_ne!(
        status, 200,
        "plc-sim accepted a revoked certificate: {body}"
    );
    assert!(
        body.to_string().contains("Bad"),
        "the refusal names an OPC UA status: {body}"
    );

    // Restarted with a revoked certificate, the module cannot open a GDS session with it: it
    // makes a new key, enrolls again and is back.
    module.shutdown().await;
    let module = iiot_module::start(module_config())
        .await
        .expect("module restarts");
    let base = format!("http://{}", module.http_addr);
    wait_for_metric(
        &base,
        "iiot_gds_enrollment_phase{phase=\"waiting_for_approval\"} 1",
    )
    .await;
    let pending = rest.pending().await;
    rest.approve(pending[0]["requestId"].as_str().unwrap())
        .await;
    wait_for_metric(&base, "iiot_gds_enrollment_phase{phase=\"enrolled\"} 1").await;
    let renewed = std::fs::read(module_dir.join("pki/own/cert.der")).unwrap();
    assert_ne!(renewed, own, "a new certificate");
    let (status, body) = read(&base, &format!("opc.tcp://localhost:{plc_port}/")).await;
    assert_eq!(status, 200, "the re-enrolled module reads again: {body}");

    module.shutdown().await;
    plc.shutdown().await;
    vault.shutdown().await.unwrap();
}
