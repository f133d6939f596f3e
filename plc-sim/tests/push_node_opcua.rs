//! plc-sim as a Part 12 push target, driven by node-opcua's own push client
//! (`ClientPushCertificateManagement`, tests/peers/node_push_client.js): a security
//! administrator gets a CSR, installs the CA-signed certificate with its chain, pushes the CA
//! and its CRL into the trust list, applies, and the server presents the new certificate on the
//! next connection and keeps it across a restart. Users without the role, and sessions
//! without encryption, are refused. plc-sim takes no CA by AddCertificate (it needs its CRL):
//! the client's CA reaches the trust list with the CRL through the full trust list write.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use iiot_plc_sim::{PlcSim, PlcSimConfig, LOG_FILTER_DIRECTIVES};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "info,{LOG_FILTER_DIRECTIVES}"
        )))
        .with_test_writer()
        .try_init();
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("plc-sim-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed client certificate, and a CA with an empty CRL, made by the openssl CLI.
fn make_credentials(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.pem",
            "-days",
            "30",
            "-subj",
            "/CN=push client/O=iiot tests",
            "-addext",
            "subjectAltName=URI:urn:iiot:test:push-client,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
            "-addext",
            "extendedKeyUsage=clientAuth,serverAuth",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "365",
            "-subj",
            "/CN=push test CA/O=iiot tests",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::create_dir_all(dir.join("ca")).unwrap();
    std::fs::write(dir.join("ca/index.txt"), "").unwrap();
    std::fs::write(dir.join("ca/crlnumber"), "1000\n").unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca=d\n[d]\ndatabase={d}/ca/index.txt\ncrlnumber={d}/ca/crlnumber\n\
             certificate={d}/ca.pem\nprivate_key={d}/ca.key\ndefault_md=sha256\ndefault_crl_days=30\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl.pem"],
    );
    std::fs::write(dir.join("admin.pw"), "admin-secret\n").unwrap();
    std::fs::write(dir.join("user.pw"), "password\n").unwrap();
}

/// Trusts the client certificate by its own file, under the name the stack looks it up by.
fn trust_client(dir: &Path, pki: &Path) {
    let pem = std::fs::read(dir.join("client.pem")).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    let name = iiot_gds::pki::stack_file_name(&der).unwrap();
    std::fs::create_dir_all(pki.join("trusted")).unwrap();
    std::fs::write(pki.join("trusted").join(name), der).unwrap();
}

/// Runs the node-opcua push client; answers its exit success and its last JSON line.
fn push_client(dir: &Path, endpoint: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let script = peers().join("node_push_client.js");
    assert!(
        peers()
            .join("node_modules/node-opcua-server-configuration")
            .is_dir(),
        "node-opcua-server-configuration is not installed: run scripts/install-peers.sh"
    );
    let out = Command::new("node")
        .arg(&script)
        .args(["--endpoint", endpoint])
        .args(["--client-cert", "client.pem", "--client-key", "client.key"])
        .args(["--ca-cert", "ca.pem"])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("{}");
    eprintln!("{stdout}");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), serde_json::from_str(last).unwrap())
}

fn config(pki: &Path) -> PlcSimConfig {
    PlcSimConfig {
        port: 0,
        pki_dir: pki.to_path_buf(),
        fast_nodes: 1,
        slow_nodes: 1,
        security_admins: vec![("admin".into(), "admin-secret".into())],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_pushes_a_certificate_and_trust_list_into_plc_sim() {
    init_tracing();
    let dir = scratch("push-node-opcua");
    let pki = dir.join("pki");
    make_credentials(&dir);
    trust_client(&dir, &pki);
    let sim = PlcSim::start(config(&pki)).await.unwrap();
    let endpoint = sim.endpoint_url();
    let self_signed = sim.server_certificate_der();

    // An ordinary user, and the administrator without encryption, may not push.
    let (ok, last) = push_client(
        &dir,
        &endpoint,
        &[
            "--user",
            "user1",
            "--password-file",
            "user.pw",
            "--expect-denied",
        ],
    );
    assert!(ok, "{last}");
    assert_eq!(last["denied"], "BadUserAccessDenied");
    let (ok, last) = push_client(
        &dir,
        &endpoint,
        &[
            "--user",
            "admin",
            "--password-file",
            "admin.pw",
            "--sign-only",
        ],
    );
    assert!(ok, "{last}");
    // The administrator's token is offered on SignAndEncrypt endpoints only: ActivateSession
    // over Sign fails before any push call.
    assert_eq!(last["denied"], "BadIdentityTokenRejected");
    assert_eq!(last["deniedAt"], "activateSession");
    assert_eq!(sim.server_certificate_der(), self_signed);

    // The administrator over SignAndEncrypt: CSR → CA-signed certificate → trust list with the
    // CA and its CRL → ApplyChanges → the next connection sees the new certificate.
    let (ok, last) = push_client(
        &dir,
        &endpoint,
        &[
            "--user",
            "admin",
            "--password-file",
            "admin.pw",
            "--ca-key",
            "ca.key",
            "--ca-crl",
            "ca.crl.pem",
        ],
    );
    assert!(ok, "{last}");
    let presented = sim.server_certificate_der();
    assert_ne!(presented, self_signed);
    assert_eq!(
        last["presentedThumbprint"],
        iiot_gds::pki::thumbprint(&presented)
    );
    let cert = openssl::x509::X509::from_der(&presented).unwrap();
    let ca = openssl::x509::X509::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    assert!(
        cert.verify(&ca.public_key().unwrap()).unwrap(),
        "not issued by the CA"
    );
    assert_eq!(
        iiot_gds::pki::read_folder(&pki.join("trusted/crl"), true)
            .unwrap()
            .len(),
        1,
        "the CA's CRL was not pushed"
    );

    // A new key on the server's side: the CSR is for a key the server made and keeps.
    let (ok, last) = push_client(
        &dir,
        &endpoint,
        &[
            "--user",
            "admin",
            "--password-file",
            "admin.pw",
            "--ca-key",
            "ca.key",
            "--ca-crl",
            "ca.crl.pem",
            "--regenerate-key",
        ],
    );
    assert!(ok, "{last}");
    let renewed = sim.server_certificate_der();
    assert_ne!(renewed, presented);
    let key_of = |der: &[u8]| {
        openssl::x509::X509::from_der(der)
            .unwrap()
            .public_key()
            .unwrap()
    };
    assert!(
        !key_of(&renewed).public_eq(&key_of(&presented)),
        "key not regenerated"
    );
    sim.shutdown().await;

    // The pushed certificate survives a restart.
    let sim = PlcSim::start(config(&pki)).await.unwrap();
    assert_eq!(sim.server_certificate_der(), renewed);
    sim.shutdown().await;
}
