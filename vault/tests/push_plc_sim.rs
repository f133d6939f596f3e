//! The vault's push engine (OPC UA Part 12 push model, issue 16) against plc-sim's
//! ServerConfiguration: first contact only with a pinned server certificate, a SecurityAdmin
//! credential, the certificate through the approval workflow, the trust list with CAs and
//! CRLs, ApplyChanges and a verified new certificate; a revocation's CRL reaches the server at
//! once; refusals land as failed jobs with their step and status.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::{tools, Vault, ADMIN, APPROVER, READER, WRITER};
use iiot_plc_sim::{application_uri, PlcSim, PlcSimConfig};
use iiot_testkit::{free_port, temp_dir};
use iiot_vault::gds::GdsConfig;
use reqwest::Method;
use serde_json::{json, Value};

async fn start_vault(dir: &Path) -> Vault {
    let port = free_port();
    Vault::start(dir, |c| {
        c.cert_types = vec![iiot_vault::CertType::RsaSha256];
        c.opcua = Some(GdsConfig {
            bind: format!("127.0.0.1:{port}").parse().unwrap(),
            hostname: "localhost".into(),
        });
    })
    .await
}

/// The vault's CAs and CRLs into a server's `trusted/` folders: how an operator bootstraps a
/// server to accept the vault (whose push client presents a vault-issued certificate).
async fn trust_vault(v: &Vault, pki: &Path) {
    let tl = v
        .ok(
            Method::GET,
            "/v2/groups/DefaultApplicationGroup/trustlist",
            READER,
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
        std::fs::write(
            pki.join(format!("trusted/vault-{i}.der")),
            tools::unb64(c.as_str().unwrap()),
        )
        .unwrap();
    }
    for (i, c) in tl["trustedCrls"].as_array().unwrap().iter().enumerate() {
        std::fs::write(
            pki.join(format!("trusted/crl/vault-{i}.crl")),
            tools::unb64(c.as_str().unwrap()),
        )
        .unwrap();
    }
}

async fn register_server(v: &Vault, uri: &str, url: &str) -> String {
    let body = json!({
        "applicationUri": uri,
        "applicationType": "Server",
        "applicationNames": [{"locale": "en", "text": "plc-sim"}],
        "productUri": "urn:iiot:plc-sim",
        "discoveryUrls": [url]
    });
    v.ok(Method::POST, "/v2/applications", WRITER, Some(&body))
        .await["applicationId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the newest job is not `previous` and is in one of `states`.
async fn wait_job(v: &Vault, app: &str, previous: Option<&str>, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = v
            .ok(
                Method::GET,
                &format!("/v2/push/targets/{app}"),
                READER,
                None,
            )
            .await;
        let job = &t["lastJob"];
        let fresh = job["id"].as_str().is_some_and(|id| Some(id) != previous);
        if fresh && states.contains(&job["state"].as_str().unwrap_or_default()) {
            return job.clone();
        }
        assert!(Instant::now() < deadline, "no job in {states:?}: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn target(url: &str, user: &str, password: &str, thumbprint: Option<&str>) -> Value {
    json!({
        "endpointUrl": url,
        "userName": user,
        "password": password,
        "serverThumbprint": thumbprint,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_pushes_certificate_and_crls_to_plc_sim() {
    let dir = temp_dir("vault-push-plc-sim");
    let v = start_vault(&dir).await;
    let pki = dir.join("plc-pki");
    trust_vault(&v, &pki).await;
    let sim = PlcSim::start(PlcSimConfig {
        port: 0,
        pki_dir: pki.clone(),
        fast_nodes: 1,
        slow_nodes: 1,
        security_admins: vec![("secadmin".into(), "push-secret".into())],
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sim.endpoint_url();
    let self_signed = sim.server_certificate_der();
    let pin = iiot_gds::pki::thumbprint(&self_signed);
    let app = register_server(&v, &application_uri("127.0.0.1"), &url).await;
    let path = format!("/v2/push/targets/{app}");

    // Bad input is refused and stores nothing.
    v.refused(
        Method::PUT,
        &path,
        Some(WRITER),
        Some(&target(&url, "secadmin", "x", None)),
        403,
        "BadUserAccessDenied",
    )
    .await;
    for bad in [
        target("http://127.0.0.1:4840", "secadmin", "x", None),
        target(&url, "", "x", None),
        target(&url, "secadmin", "", None),
        target(&url, "secadmin", "x", Some("abc")),
    ] {
        v.refused(
            Method::PUT,
            &path,
            Some(ADMIN),
            Some(&bad),
            400,
            "BadInvalidArgument",
        )
        .await;
    }
    v.refused(Method::GET, &path, Some(READER), None, 404, "BadNotFound")
        .await;

    // Without the pin, the vault does not talk to a server it cannot authenticate.
    let t = v
        .ok(
            Method::PUT,
            &path,
            ADMIN,
            Some(&target(&url, "secadmin", "push-secret", None)),
        )
        .await;
    assert!(t.get("password").is_none(), "{t}");
    let all = v.ok(Method::GET, "/v2/push/targets", READER, None).await;
    assert_eq!(all["targets"][0]["applicationId"], app.as_str(), "{all}");
    let job = wait_job(&v, &app, None, &["failed"]).await;
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("BadCertificateUntrusted"),
        "{job}"
    );
    assert_eq!(job["step"], "connect");

    // A user without SecurityAdmin gets no CSR out of the server.
    let t = v
        .ok(
            Method::PUT,
            &path,
            ADMIN,
            Some(&target(&url, "user1", "password", Some(&pin))),
        )
        .await;
    assert_eq!(t["serverThumbprint"], pin);
    let job = wait_job(&v, &app, job["id"].as_str(), &["failed"]).await;
    assert_eq!(job["step"], "createSigningRequest", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("BadUserAccessDenied"),
        "{job}"
    );
    assert_eq!(sim.server_certificate_der(), self_signed);

    // The SecurityAdmin: the request waits for an approver other than the registrant.
    v.ok(
        Method::PUT,
        &path,
        ADMIN,
        Some(&target(&url, "secadmin", "push-secret", Some(&pin))),
    )
    .await;
    let waiting = wait_job(&v, &app, job["id"].as_str(), &["waitingForApproval"]).await;
    let request = waiting["requestId"].as_str().unwrap().to_string();
    v.refused(
        Method::POST,
        &format!("/v2/requests/{request}/approve"),
        Some(ADMIN),
        None,
        403,
        "BadRequestNotAllowed",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{request}/approve"),
        APPROVER,
        None,
    )
    .await;
    let done = wait_job(&v, &app, None, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["id"], waiting["id"]);
    assert_eq!(done["trustListMode"], "replaced");
    assert_eq!(done["crlsPushed"], true);
    let presented = sim.server_certificate_der();
    assert_eq!(
        done["certificateThumbprint"],
        iiot_gds::pki::thumbprint(&presented).to_ascii_uppercase()
    );
    let cert = openssl::x509::X509::from_der(&presented).unwrap();
    let tl = v
        .ok(
            Method::GET,
            "/v2/groups/DefaultApplicationGroup/trustlist",
            READER,
            None,
        )
        .await;
    let ca = openssl::x509::X509::from_der(&tools::unb64(
        tl["trustedCertificates"][0].as_str().unwrap(),
    ))
    .unwrap();
    assert!(
        cert.verify(&ca.public_key().unwrap()).unwrap(),
        "not issued by the vault"
    );
    let target_now = v.ok(Method::GET, &path, READER, None).await;
    assert_eq!(
        target_now["pushedCertificateSerial"],
        done["certificateSerial"]
    );

    // A revocation: the new CRL reaches plc-sim without anyone asking.
    let client_app = v.register("urn:iiot:test:push-revoked-client").await;
    let (revoked, _) = harness::issue_rsa(
        &v,
        &dir,
        &client_app,
        "urn:iiot:test:push-revoked-client",
        "revoked",
    )
    .await;
    let serial = v
        .ok(
            Method::GET,
            &format!("/v2/requests/{revoked}"),
            READER,
            None,
        )
        .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{revoked}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let crl_job = wait_job(&v, &app, done["id"].as_str(), &["succeeded", "failed"]).await;
    assert_eq!(crl_job["state"], "succeeded", "{crl_job}");
    assert_eq!(crl_job["reason"], "trustList");
    assert!(crl_job.get("certificateSerial").is_none(), "{crl_job}");
    let crls = iiot_gds::pki::read_folder(&pki.join("trusted/crl"), true).unwrap();
    let listed = crls.iter().any(|(_, der)| {
        let crl = openssl::x509::X509Crl::from_der(der).unwrap();
        crl.get_revoked().is_some_and(|r| !r.is_empty())
    });
    assert!(
        listed,
        "plc-sim has no CRL listing the revocation ({serial})"
    );
    assert_eq!(
        sim.server_certificate_der(),
        presented,
        "a CRL push changes no certificate"
    );

    // A manual push renews the certificate (the registrant cannot approve it; the approver can).
    let manual = v
        .ok(Method::POST, &format!("{path}/jobs"), WRITER, None)
        .await;
    assert_eq!(manual["reason"], "manual");
    v.refused(
        Method::POST,
        &format!("{path}/jobs"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    let waiting = wait_job(&v, &app, crl_job["id"].as_str(), &["waitingForApproval"]).await;
    v.ok(
        Method::POST,
        &format!(
            "/v2/requests/{}/approve",
            waiting["requestId"].as_str().unwrap()
        ),
        APPROVER,
        None,
    )
    .await;
    let renewed = wait_job(&v, &app, None, &["succeeded", "failed"]).await;
    assert_eq!(renewed["state"], "succeeded", "{renewed}");
    assert_ne!(sim.server_certificate_der(), presented);
    let jobs = v
        .ok(Method::GET, &format!("{path}/jobs"), READER, None)
        .await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 5, "{jobs}");

    // While a certificate request waits for a decision, a revocation's CRL still goes out at
    // once; a rejected request disables the target instead of asking again and again.
    v.ok(Method::POST, &format!("{path}/jobs"), WRITER, None)
        .await;
    let waiting = wait_job(&v, &app, renewed["id"].as_str(), &["waitingForApproval"]).await;
    let (second, _) = harness::issue_rsa(
        &v,
        &dir,
        &client_app,
        "urn:iiot:test:push-revoked-client",
        "revoked2",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{second}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = v
            .ok(Method::GET, &format!("{path}/jobs?limit=2"), READER, None)
            .await;
        let newest = &jobs["jobs"][0];
        if newest["reason"] == "trustList" && newest["state"] == "succeeded" {
            assert_eq!(jobs["jobs"][1]["id"], waiting["id"]);
            assert_eq!(jobs["jobs"][1]["state"], "waitingForApproval");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CRL push while waiting: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    v.ok(
        Method::POST,
        &format!(
            "/v2/requests/{}/reject",
            waiting["requestId"].as_str().unwrap()
        ),
        APPROVER,
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = v.ok(Method::GET, &path, READER, None).await;
        let job = v
            .ok(
                Method::GET,
                &format!("/v2/push/jobs/{}", waiting["id"].as_str().unwrap()),
                READER,
                None,
            )
            .await;
        if job["state"] == "failed" {
            assert_eq!(t["enabled"], false, "{t}");
            assert!(job["error"].as_str().unwrap().contains("rejected"), "{job}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rejection did not end the job: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    v.refused(
        Method::POST,
        &format!("{path}/jobs"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    let one = v
        .ok(
            Method::GET,
            &format!("/v2/push/jobs/{}", renewed["id"].as_str().unwrap()),
            READER,
            None,
        )
        .await;
    assert_eq!(one["state"], "succeeded");

    // Saved again with vault-made keys (re-enabled): the vault makes the key pair and sends
    // the private key with the certificate; plc-sim presents a certificate for that key.
    let mut body = target(&url, "secadmin", "push-secret", Some(&pin));
    body["newKeyPair"] = json!(true);
    let t = v.ok(Method::PUT, &path, ADMIN, Some(&body)).await;
    assert_eq!(t["enabled"], true);
    assert_eq!(t["newKeyPair"], true);
    let before = sim.server_certificate_der();
    let last = v
        .ok(Method::GET, &format!("{path}/jobs?limit=1"), READER, None)
        .await;
    v.ok(Method::POST, &format!("{path}/jobs"), WRITER, None)
        .await;
    let waiting = wait_job(
        &v,
        &app,
        last["jobs"][0]["id"].as_str(),
        &["waitingForApproval"],
    )
    .await;
    let request = waiting["requestId"].as_str().unwrap().to_string();
    let record = v
        .ok(
            Method::GET,
            &format!("/v2/requests/{request}"),
            READER,
            None,
        )
        .await;
    assert_eq!(record["type"], "KeyPairRequest", "{record}");
    v.ok(
        Method::POST,
        &format!("/v2/requests/{request}/approve"),
        APPROVER,
        None,
    )
    .await;
    let keyed = wait_job(&v, &app, None, &["succeeded", "failed"]).await;
    assert_eq!(keyed["state"], "succeeded", "{keyed}");
    let after = sim.server_certificate_der();
    let key_of = |der: &[u8]| {
        openssl::x509::X509::from_der(der)
            .unwrap()
            .public_key()
            .unwrap()
    };
    assert!(
        !key_of(&after).public_eq(&key_of(&before)),
        "the vault's key pair was not installed"
    );
    let record = v
        .ok(
            Method::GET,
            &format!("/v2/requests/{request}"),
            READER,
            None,
        )
        .await;
    assert_eq!(record["state"], "Accepted", "{record}");

    // Every step is in the audit log, and no password.
    let audit = v
        .ok(Method::GET, "/v2/audit?limit=1000", ADMIN, None)
        .await
        .to_string();
    for action in [
        "push.target.register",
        "push.target.update",
        "push.failed",
        "push.succeeded",
        "push.start",
        "push.target.disabled",
    ] {
        assert!(audit.contains(action), "{action} missing");
    }
    assert!(!audit.contains("push-secret"));
    v.ok(Method::DELETE, &path, ADMIN, None).await;
    v.refused(Method::GET, &path, Some(READER), None, 404, "BadNotFound")
        .await;
    sim.shutdown().await;
    v.shutdown().await;
}

/// A server that accepts the connection and never answers holds its own job until the
/// timeout, not the push to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_does_not_hold_up_the_others() {
    let dir = temp_dir("vault-push-parallel");
    let v = start_vault(&dir).await;
    v.ok(
        Method::POST,
        "/v2/groups/DefaultApplicationGroup",
        ADMIN,
        Some(&json!({"autoApprove": true})),
    )
    .await;
    // Accepts, reads nothing, answers nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "opc.tcp://127.0.0.1:{}/",
        silent.local_addr().unwrap().port()
    );
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept() {
            open.push(s);
        }
    });
    let quiet = register_server(&v, "urn:iiot:test:silent-server", &silent_url).await;
    let pin = "00".repeat(20);
    v.ok(
        Method::PUT,
        &format!("/v2/push/targets/{quiet}"),
        ADMIN,
        Some(&target(&silent_url, "secadmin", "x", Some(&pin))),
    )
    .await;

    let pki = dir.join("plc-pki");
    trust_vault(&v, &pki).await;
    let sim = PlcSim::start(PlcSimConfig {
        port: 0,
        pki_dir: pki,
        fast_nodes: 1,
        slow_nodes: 1,
        security_admins: vec![("secadmin".into(), "push-secret".into())],
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sim.endpoint_url();
    let app = register_server(&v, &application_uri("127.0.0.1"), &url).await;
    let pin = iiot_gds::pki::thumbprint(&sim.server_certificate_der());
    let started = Instant::now();
    v.ok(
        Method::PUT,
        &format!("/v2/push/targets/{app}"),
        ADMIN,
        Some(&target(&url, "secadmin", "push-secret", Some(&pin))),
    )
    .await;
    let done = wait_job(&v, &app, None, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the push waited for the silent server ({:?})",
        started.elapsed()
    );
    let stuck = v
        .ok(
            Method::GET,
            &format!("/v2/push/targets/{quiet}"),
            READER,
            None,
        )
        .await;
    assert_eq!(stuck["lastJob"]["step"], "connect", "{stuck}");
    sim.shutdown().await;
    v.shutdown().await;
}
