//! The vault's REST workflow end to end, in this process: registration, signing and key pair
//! requests through approval, the issued profile, CRLs and trust lists verified by the
//! `openssl` command line, refusals as problem+json, CA renewal, the auto-approve policy, and
//! OIDC tokens. What needs the `iiot` binary (its signals) is in the workspace's
//! `tests/vault.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::sync::Arc;

use harness::tools::{b64, make_csr, openssl, pem, pem_body, unb64};
use harness::{
    issue_rsa, save_trust_list, save_trust_list_of, Vault, ADMIN, APPROVER, GROUP, READER, RSA,
    WRITER, WRITER2,
};
use iiot_auth::{JwtSettings, JwtValidator};
use iiot_testkit::{temp_dir, OpensslIdp};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn lifecycle_verified_by_openssl_then_revoked() {
    let dir = temp_dir("vault-life");
    let v = Vault::start(&dir, |_| {}).await;
    let uri = "urn:iiot:test:plc1";
    let app = v.register(uri).await;
    let csr = make_csr(
        &dir,
        "plc1",
        "rsa:2048",
        &[&format!(
            "subjectAltName=URI:{uri},DNS:localhost,IP:127.0.0.1"
        )],
    );
    let (s, body) = v.sign(WRITER, &app, &csr, RSA).await;
    assert_eq!(s, 200, "{body}");
    let id = body["requestId"].as_str().expect("requestId").to_string();

    // Not before approval; never by a writer; never by whoever submitted it.
    v.refused(
        Method::GET,
        &format!("/v2/requests/sign/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(WRITER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    let (s, body) = v.sign(ADMIN, &app, &csr, RSA).await;
    assert_eq!(s, 200, "{body}");
    let own = body["requestId"].as_str().expect("requestId").to_string();
    v.refused(
        Method::POST,
        &format!("/v2/requests/{own}/approve"),
        Some(ADMIN),
        None,
        403,
        "BadRequestNotAllowed",
    )
    .await;
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{own}"), READER, None)
        .await;
    assert_eq!(rec["state"], "New");

    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/reject"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    let fetched = v
        .ok(
            Method::GET,
            &format!("/v2/requests/sign/{id}"),
            WRITER,
            None,
        )
        .await;
    assert_eq!(fetched["request"]["state"], "Accepted", "{fetched}");
    assert_eq!(fetched["request"]["approved"]["authorityId"], "sec");
    let cert_der = unb64(
        fetched["certificate"]["certificate"]
            .as_str()
            .expect("certificate"),
    );
    std::fs::write(dir.join("cert.pem"), pem("CERTIFICATE", &cert_der)).expect("cert.pem");

    // The profile is the vault's, checked with openssl's own reading of the certificate.
    let (ok, text) = openssl(&["x509", "-in", "cert.pem", "-noout", "-text"], &dir);
    assert!(ok, "{text}");
    for want in [
        "CA:FALSE",
        "Digital Signature, Non Repudiation, Key Encipherment, Data Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        &format!("URI:{uri}"),
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "X509v3 CRL Distribution Points",
        &format!("{}/v2/crl/", v.base),
        "Subject: CN = Test PLC",
    ] {
        assert!(text.contains(want), "certificate lacks '{want}':\n{text}");
    }
    assert!(!text.contains("Certificate Sign"), "{text}");
    let serial = fetched["certificate"]["serialNumber"]
        .as_str()
        .expect("serial");
    assert!(serial.len() >= 32, "serial of at least 16 bytes: {serial}");

    let (ca, crl) = save_trust_list(&v, &dir, "1").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            "cert.pem",
        ],
        &dir,
    );
    assert!(ok && out.contains("cert.pem: OK"), "openssl verify: {out}");

    // The anonymous CRL distribution point serves the same CRL the trust list carries.
    let (ok, text) = openssl(
        &[
            "x509",
            "-in",
            "cert.pem",
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
        &dir,
    );
    assert!(ok, "{text}");
    let url = text
        .split("URI:")
        .nth(1)
        .expect("CRL URL")
        .trim()
        .to_string();
    let res = reqwest::get(&url).await.expect("GET CRL");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/pkix-crl");
    let crl_der = res.bytes().await.expect("CRL body").to_vec();
    assert_eq!(
        pem("X509 CRL", &crl_der),
        std::fs::read_to_string(dir.join(&crl)).expect("crl")
    );
    let ca_serial = url.rsplit('/').next().expect("serial");
    let (s, _, _) = v
        .call(Method::GET, &format!("/v2/issuer/{ca_serial}"), None, None)
        .await;
    assert_eq!(s, 200);

    // Revocation reaches the trust list at once.
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        Some(WRITER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let (ca, crl2) = save_trust_list(&v, &dir, "2").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl2,
            "cert.pem",
        ],
        &dir,
    );
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl verify after revoke: {out}"
    );
    let n1 = openssl(&["crl", "-in", &crl, "-noout", "-crlnumber"], &dir).1;
    let n2 = openssl(&["crl", "-in", &crl2, "-noout", "-crlnumber"], &dir).1;
    let num = |s: &str| {
        u64::from_str_radix(
            s.trim()
                .trim_start_matches("crlNumber=0x")
                .trim_start_matches("crlNumber="),
            16,
        )
        .expect("crl number")
    };
    assert!(num(&n2) > num(&n1), "CRLNumber must grow: {n1} → {n2}");

    // The audit log has every step, with who did it, for admins only.
    v.refused(
        Method::GET,
        "/v2/audit",
        Some(APPROVER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    let audit = v.ok(Method::GET, "/v2/audit", ADMIN, None).await;
    let entries = audit["entries"].as_array().expect("entries");
    for (actor, action) in [
        ("ops", "application.register"),
        ("ops", "request.submit"),
        ("sec", "request.approve"),
        ("ops", "request.accept"),
        ("sec", "request.revoke"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["actor"] == actor && e["action"] == action),
            "audit lacks {actor} {action}: {audit}"
        );
    }
    assert!(!audit.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let dir = temp_dir("vault-bad");
    let v = Vault::start(&dir, |_| {}).await;
    let uri = "urn:iiot:test:bad";
    let app = v.register(uri).await;
    let san = format!("subjectAltName=URI:{uri},DNS:localhost");
    let good = make_csr(&dir, "good", "rsa:2048", &[&san]);

    // Emptying a server's discovery URLs conflicts with the record (it is a server): 409, and
    // the URLs stay. A client's URLs may be cleared.
    let path = format!("/v2/applications/{app}");
    let empty = json!({"discoveryUrls": []});
    v.refused(
        Method::PATCH,
        &path,
        Some(WRITER),
        Some(&empty),
        409,
        "BadInvalidState",
    )
    .await;
    let kept = v.ok(Method::GET, &path, WRITER, None).await;
    assert_eq!(kept["discoveryUrls"], json!(["opc.tcp://localhost:4840"]));
    let client = v
        .ok(
            Method::POST,
            "/v2/applications",
            WRITER,
            Some(&json!({
                "applicationUri": "urn:iiot:test:client",
                "applicationType": "Client",
                "applicationName": "Test client",
                "discoveryUrls": ["opc.tcp://localhost:4841"]
            })),
        )
        .await;
    let client_path = format!(
        "/v2/applications/{}",
        client["applicationId"].as_str().unwrap()
    );
    let cleared = v
        .ok(Method::PATCH, &client_path, WRITER, Some(&empty))
        .await;
    assert_eq!(cleared["discoveryUrls"], json!([]));

    // Credentials and roles.
    let body = json!({"entityId": app, "groupId": GROUP, "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        None,
        Some(&body),
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some("not-a-known-key-000"),
        Some(&body),
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(READER),
        Some(&body),
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.refused(
        Method::GET,
        "/v2/groups",
        None,
        None,
        401,
        "BadIdentityTokenInvalid",
    )
    .await;
    let (s, _, h) = v.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, _, doc) = v.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    for route in [
        "/v2/requests/sign",
        "/v2/groups/{id}/trustlist",
        "/v2/crl/{serial}",
    ] {
        assert!(doc["paths"][route].is_object(), "OpenAPI lacks {route}");
    }
    let docs = reqwest::get(format!("{}/docs/", v.base))
        .await
        .expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(
        docs.text().await.unwrap_or_default().contains("swagger"),
        "Swagger UI at /docs"
    );

    // Malformed and truncated CSRs, and a flipped signature byte.
    for (s, sym) in [("not a csr", "BadCertificateInvalid")] {
        let (st, b) = v.sign(WRITER, &app, s, RSA).await;
        assert_eq!((st, b["symbolicId"].as_str()), (400, Some(sym)), "{b}");
    }
    let der = pem_body(&good);
    let truncated = b64(&der[..der.len() / 2]);
    let (st, b) = v.sign(WRITER, &app, &truncated, RSA).await;
    assert_eq!(
        (st, b["symbolicId"].as_str()),
        (400, Some("BadCertificateInvalid")),
        "{b}"
    );
    let mut flipped = der.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x55;
    let (st, b) = v.sign(WRITER, &app, &b64(&flipped), RSA).await;
    assert_eq!(
        (st, b["symbolicId"].as_str()),
        (400, Some("BadCertificateInvalid")),
        "{b}"
    );
    assert!(
        b["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("signature"),
        "{b}"
    );
    // The unflipped DER as base64 is accepted later; PEM with no END line is not.
    let cut_pem = good.lines().take(5).collect::<Vec<_>>().join("\n");
    let (st, _) = v.sign(WRITER, &app, &cut_pem, RSA).await;
    assert_eq!(st, 400);

    // Policy: names, key types and sizes, CA requests.
    let cases: Vec<(String, &str, &str)> = vec![
        (
            make_csr(
                &dir,
                "otheruri",
                "rsa:2048",
                &["subjectAltName=URI:urn:iiot:test:someone-else,DNS:localhost"],
            ),
            RSA,
            "BadCertificateUriInvalid",
        ),
        (
            make_csr(&dir, "nouri", "rsa:2048", &["subjectAltName=DNS:localhost"]),
            RSA,
            "BadCertificateUriInvalid",
        ),
        (
            make_csr(&dir, "rsa1024", "rsa:1024", &[&san]),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(&dir, "ecc", "ec", &[&san]),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(&dir, "rsaforecc", "rsa:2048", &[&san]),
            "EccNistP256ApplicationCertificateType",
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(
                &dir,
                "ca",
                "rsa:2048",
                &[&san, "basicConstraints=critical,CA:TRUE"],
            ),
            RSA,
            "BadCertificatePolicyCheckFailed",
        ),
        (
            make_csr(
                &dir,
                "baddns",
                "rsa:2048",
                &[&format!("subjectAltName=URI:{uri},DNS:bad_host!name")],
            ),
            RSA,
            "BadInvalidArgument",
        ),
        (good.clone(), "NoSuchCertificateType", "BadInvalidArgument"),
    ];
    for (csr, ty, sym) in &cases {
        let (st, b) = v.sign(WRITER, &app, csr, ty).await;
        assert_eq!(
            (st, b["symbolicId"].as_str()),
            (400, Some(*sym)),
            "{ty}: {b}"
        );
        assert_eq!(b["status"], 400);
    }
    let body = json!({"entityId": app, "groupId": "NoSuchGroup", "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&body),
        404,
        "BadNotFound",
    )
    .await;
    let body = json!({"entityId": "no-such-app", "groupId": GROUP, "certificateRequest": good});
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&body),
        404,
        "BadNotFound",
    )
    .await;
    v.refused(
        Method::PUT,
        "/v2/requests/sign",
        Some(WRITER),
        Some(&json!({"entityId": 5})),
        400,
        "BadInvalidArgument",
    )
    .await;
    assert_eq!(
        v.request_count().await,
        0,
        "refused requests must leave no trace"
    );

    // Registration rules of the GDS.
    for bad in [
        json!({"applicationUri": "not a uri", "applicationType": "Client", "applicationName": "x"}),
        json!({"applicationUri": "urn:x", "applicationType": "Server", "applicationName": "x"}),
        json!({"applicationUri": "urn:x", "applicationType": "Client"}),
        json!({"applicationUri": "urn:x", "applicationType": "Robot", "applicationName": "x"}),
        json!({"applicationUri": uri, "applicationType": "Client", "applicationName": "again"}),
    ] {
        let (s, ct, b) = v
            .call(Method::POST, "/v2/applications", Some(WRITER), Some(&bad))
            .await;
        assert!(s == 400 || s == 409, "{bad}: {s} {b}");
        assert_eq!(ct, "application/problem+json");
    }
    // Only the server and the client registered above.
    let list = v.ok(Method::GET, "/v2/applications", READER, None).await;
    assert_eq!(list["applications"].as_array().map(Vec::len), Some(2));

    // Workflow refusals on a real request; the good CSR as base64 DER is accepted.
    let (st, b) = v.sign(WRITER, &app, &b64(&der), RSA).await;
    assert_eq!(st, 200, "{b}");
    let id = b["requestId"].as_str().expect("id").to_string();
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/accept"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/revoke"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        400,
        "BadInvalidArgument",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/reject"),
        APPROVER,
        None,
    )
    .await;
    v.refused(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        Some(APPROVER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        &format!("/v2/requests/sign/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.refused(
        Method::GET,
        "/v2/requests/sign/no-such-request",
        Some(WRITER),
        None,
        404,
        "BadNotFound",
    )
    .await;
    let q = v
        .ok(
            Method::POST,
            "/v2/requests/query",
            READER,
            Some(&json!({"entityId": app, "state": "Rejected"})),
        )
        .await;
    assert_eq!(q["requests"].as_array().map(Vec::len), Some(1), "{q}");
}

#[tokio::test]
async fn key_pair_is_handed_out_once() {
    let dir = temp_dir("vault-keypair");
    let v = Vault::start(&dir, |_| {}).await;
    let app = v.register("urn:iiot:test:kp").await;
    let bad = json!({"entityId": app, "groupId": GROUP, "subjectName": "CN=kp", "domainNames": ["no spaces allowed"], "privateKeyFormat": "PEM"});
    v.refused(
        Method::PUT,
        "/v2/requests/keypair",
        Some(WRITER),
        Some(&bad),
        400,
        "BadInvalidArgument",
    )
    .await;
    let body = json!({
        "entityId": app, "groupId": GROUP, "certificateTypeId": RSA, "subjectName": "CN=kp, O=Plant",
        "domainNames": ["kp.plant.example", "10.0.0.7"], "privateKeyFormat": "PEM", "privateKeyPassword": "s3cret-pass"
    });
    let id = v
        .ok(Method::PUT, "/v2/requests/keypair", WRITER, Some(&body))
        .await["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        409,
        "BadInvalidState",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/requests/{id}/approve"),
        APPROVER,
        None,
    )
    .await;
    let first = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER2,
            None,
        )
        .await;
    let key = first["privateKey"]["key"]
        .as_str()
        .expect("private key on first fetch");
    assert!(key.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{key}");
    std::fs::write(dir.join("kp.key"), key).expect("key");
    std::fs::write(
        dir.join("kp.pem"),
        pem(
            "CERTIFICATE",
            &unb64(first["certificate"]["certificate"].as_str().expect("cert")),
        ),
    )
    .expect("cert");
    let (ok, out) = openssl(
        &["pkey", "-in", "kp.key", "-passin", "pass:wrong", "-noout"],
        &dir,
    );
    assert!(!ok, "a wrong password must not open the key: {out}");
    // The key opens with the password and belongs to the certificate.
    let (ok, k) = openssl(
        &[
            "pkey",
            "-in",
            "kp.key",
            "-passin",
            "pass:s3cret-pass",
            "-pubout",
        ],
        &dir,
    );
    assert!(ok, "{k}");
    let (ok, c) = openssl(&["x509", "-in", "kp.pem", "-noout", "-pubkey"], &dir);
    assert!(ok && c == k, "certificate and key differ");
    let (_, text) = openssl(&["x509", "-in", "kp.pem", "-noout", "-text"], &dir);
    assert!(
        text.contains("DNS:kp.plant.example")
            && text.contains("IP Address:10.0.0.7")
            && text.contains("URI:urn:iiot:test:kp"),
        "{text}"
    );
    let second = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER2,
            None,
        )
        .await;
    assert!(
        second["privateKey"].is_null(),
        "second fetch must not return a key: {second}"
    );
    assert_eq!(second["request"]["state"], "Accepted");
    let audit = v
        .ok(Method::GET, "/v2/audit", ADMIN, None)
        .await
        .to_string();
    assert!(
        !audit.contains("s3cret-pass") && !audit.contains("PRIVATE KEY"),
        "{audit}"
    );
}

#[tokio::test]
async fn ca_renewal_keeps_the_old_ca_trusted_and_flags_its_certificates() {
    let dir = temp_dir("vault-renew");
    let v = Vault::start(&dir, |_| {}).await;
    let uri = "urn:iiot:test:renew";
    let app = v.register(uri).await;
    let (old_id, old_cert) = issue_rsa(&v, &dir, &app, uri, "old").await;
    let status =
        format!("/v2/applications/{app}/certificatestatus?groupId={GROUP}&certificateType={RSA}");
    let st = v.ok(Method::GET, &status, READER, None).await;
    assert_eq!(st["updateRequired"], false, "{st}");

    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}/renew"),
        Some(APPROVER),
        None,
        403,
        "BadUserAccessDenied",
    )
    .await;
    v.ok(
        Method::POST,
        &format!("/v2/groups/{GROUP}/renew"),
        ADMIN,
        None,
    )
    .await;
    let st = v.ok(Method::GET, &status, READER, None).await;
    assert_eq!(st["updateRequired"], true, "{st}");
    assert!(st["reasons"].to_string().contains("renewed"), "{st}");

    // Both CA versions are in the trust list, each with its CRL; old and new certificates verify.
    let tl = v
        .ok(
            Method::GET,
            &format!("/v2/groups/{GROUP}/trustlist?certificateType={RSA}"),
            READER,
            None,
        )
        .await;
    assert_eq!(
        tl["trustedCertificates"].as_array().map(Vec::len),
        Some(2),
        "{tl}"
    );
    assert_eq!(tl["trustedCrls"].as_array().map(Vec::len), Some(2), "{tl}");
    let (_, new_cert) = issue_rsa(&v, &dir, &app, uri, "new").await;
    let (ca, crl) = save_trust_list(&v, &dir, "r1").await;
    for cert in [&old_cert, &new_cert] {
        let (ok, out) = openssl(
            &[
                "verify",
                "-CAfile",
                &ca,
                "-crl_check",
                "-CRLfile",
                &crl,
                cert,
            ],
            &dir,
        );
        assert!(ok, "{cert}: {out}");
    }
    let (ok, i1) = openssl(&["x509", "-in", &old_cert, "-noout", "-issuer"], &dir);
    let (_, i2) = openssl(&["x509", "-in", &new_cert, "-noout", "-issuer"], &dir);
    assert!(ok && i1 == i2, "same group subject: {i1} {i2}");
    let (_, a1) = openssl(
        &[
            "x509",
            "-in",
            &old_cert,
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
        &dir,
    );
    let (_, a2) = openssl(
        &[
            "x509",
            "-in",
            &new_cert,
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
        &dir,
    );
    assert_ne!(a1, a2, "the new certificate must come from the new CA");

    // Revoking the old certificate updates the old CA's CRL.
    v.ok(
        Method::POST,
        &format!("/v2/requests/{old_id}/revoke"),
        APPROVER,
        None,
    )
    .await;
    let (ca, crl) = save_trust_list(&v, &dir, "r2").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            &old_cert,
        ],
        &dir,
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            &new_cert,
        ],
        &dir,
    );
    assert!(ok, "{out}");
}

#[tokio::test]
async fn auto_approve_policy_and_pfx_key_pairs() {
    let dir = temp_dir("vault-auto");
    let v = Vault::start(&dir, |c| c.auto_approve_groups = vec![GROUP.into()]).await;
    let app = v.register("urn:iiot:test:auto").await;
    let body = json!({
        "entityId": app, "groupId": GROUP, "certificateTypeId": "EccNistP256ApplicationCertificateType",
        "subjectName": "CN=auto", "domainNames": ["auto.local"], "privateKeyFormat": "PFX", "privateKeyPassword": "pfx-pass-123"
    });
    let id = v
        .ok(Method::PUT, "/v2/requests/keypair", WRITER, Some(&body))
        .await["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let rec = v
        .ok(Method::GET, &format!("/v2/requests/{id}"), READER, None)
        .await;
    assert_eq!(rec["state"], "Approved", "{rec}");
    assert_eq!(rec["approved"]["authorityId"], "policy:auto-approve");
    // Without the password no PFX can be built, and the key stays for a second try.
    v.refused(
        Method::GET,
        &format!("/v2/requests/keypair/{id}"),
        Some(WRITER),
        None,
        400,
        "BadInvalidArgument",
    )
    .await;
    let res = reqwest::Client::new()
        .get(format!("{}/v2/requests/keypair/{id}", v.base))
        .header("Authorization", format!("Bearer {WRITER}"))
        .header("X-Private-Key-Password", "pfx-pass-123")
        .send()
        .await
        .expect("fetch");
    assert_eq!(res.status().as_u16(), 200);
    let got: Value = res.json().await.expect("json");
    assert_eq!(got["privateKey"]["format"], "PFX");
    std::fs::write(
        dir.join("auto.pfx"),
        unb64(got["privateKey"]["key"].as_str().expect("pfx")),
    )
    .expect("pfx");
    let (ok, out) = openssl(
        &[
            "pkcs12",
            "-in",
            "auto.pfx",
            "-passin",
            "pass:pfx-pass-123",
            "-nodes",
            "-info",
        ],
        &dir,
    );
    assert!(
        ok && out.contains("PRIVATE KEY") && out.contains("BEGIN CERTIFICATE"),
        "{out}"
    );
    // The ECC certificate chains to the group's P-256 CA and passes the CRL check.
    std::fs::write(
        dir.join("auto.pem"),
        pem(
            "CERTIFICATE",
            &unb64(got["certificate"]["certificate"].as_str().expect("cert")),
        ),
    )
    .expect("cert");
    let (ca, crl) =
        save_trust_list_of(&v, &dir, "ecc", "EccNistP256ApplicationCertificateType").await;
    let (ok, out) = openssl(
        &[
            "verify",
            "-CAfile",
            &ca,
            "-crl_check",
            "-CRLfile",
            &crl,
            "auto.pem",
        ],
        &dir,
    );
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", "auto.pem", "-noout", "-text"], &dir);
    assert!(
        text.contains("ecdsa-with-SHA256") && text.contains("Key Agreement"),
        "{text}"
    );
    let again = v
        .ok(
            Method::GET,
            &format!("/v2/requests/keypair/{id}"),
            WRITER,
            None,
        )
        .await;
    assert!(again["privateKey"].is_null(), "{again}");
    // Only an admin changes the policy; once off, submissions wait for an approver again.
    let off = json!({"autoApprove": false, "issuedLifetime": 90});
    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}"),
        Some(APPROVER),
        Some(&off),
        403,
        "BadUserAccessDenied",
    )
    .await;
    let bad = json!({"issuedLifetime": 0});
    v.refused(
        Method::POST,
        &format!("/v2/groups/{GROUP}"),
        Some(ADMIN),
        Some(&bad),
        400,
        "BadInvalidArgument",
    )
    .await;
    let g = v
        .ok(
            Method::POST,
            &format!("/v2/groups/{GROUP}"),
            ADMIN,
            Some(&off),
        )
        .await;
    assert_eq!(
        (
            g["group"]["autoApprove"].as_bool(),
            g["group"]["issuedLifetime"].as_i64()
        ),
        (Some(false), Some(90)),
        "{g}"
    );
    let csr = make_csr(
        &dir,
        "manual",
        "ec",
        &["subjectAltName=URI:urn:iiot:test:auto"],
    );
    let (s, b) = v
        .sign(WRITER, &app, &csr, "EccNistP256ApplicationCertificateType")
        .await;
    assert_eq!(s, 200, "{b}");
    let rec = v
        .ok(
            Method::GET,
            &format!("/v2/requests/{}", b["requestId"].as_str().expect("id")),
            READER,
            None,
        )
        .await;
    assert_eq!(rec["state"], "New", "{rec}");
    let audit = v.ok(Method::GET, "/v2/audit", ADMIN, None).await;
    assert!(
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "root" && e["action"] == "group.update"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_carry_roles_and_separation_of_duties_still_holds() {
    let idp = OpensslIdp::new();
    let dir = temp_dir("vault-jwt");
    let jwks = idp.jwks();
    let validator = JwtValidator::load(
        Path::new(&jwks),
        JwtSettings {
            issuer: Some("https://idp.test".into()),
            audience: Some("vault".into()),
            roles_claim: "realm_access.roles".into(),
            ..Default::default()
        },
    )
    .expect("JWKS");
    let v = Vault::start(&dir, |c| c.jwt = Some(Arc::new(validator))).await;
    let token =
        |roles: &[&str], aud: &str, exp: i64| idp.token(&OpensslIdp::claims(roles, aud, exp));
    let reader = token(&["reader"], "vault", 300);
    let groups = v.ok(Method::GET, "/v2/groups", &reader, None).await;
    assert!(
        groups["registrations"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "{groups}"
    );
    // An admin route with a reader token, and tokens that must not pass.
    let (s, _, body) = v
        .call(
            Method::POST,
            &format!("/v2/groups/{GROUP}/renew"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(s, 403, "{body}");
    for (what, bad) in [
        ("expired", token(&["admin"], "vault", -3600)),
        ("audience", token(&["admin"], "twin", 300)),
    ] {
        let (s, _, body) = v.call(Method::GET, "/v2/groups", Some(&bad), None).await;
        assert_eq!(s, 401, "{what}: {body}");
    }
    // A token holder who is both writer and approver still cannot approve its own request.
    let both = token(&["writer", "approver"], "vault", 300);
    let app = v.register("urn:iiot:test:jwt-app").await;
    let csr = make_csr(
        &dir,
        "jwt",
        "rsa:2048",
        &["subjectAltName=URI:urn:iiot:test:jwt-app,DNS:localhost"],
    );
    let (s, body) = v.sign(&both, &app, &csr, RSA).await;
    assert!((200..300).contains(&s), "{body}");
    let id = body["requestId"].as_str().expect("requestId");
    let (s, _, body) = v
        .call(
            Method::POST,
            &format!("/v2/requests/{id}/approve"),
            Some(&both),
            None,
        )
        .await;
    assert_eq!(s, 403, "the submitter approved its own request: {body}");
}
