//! `iiot bench gds`: enrollments per second through the vault's OPC UA face (GDS pull model)
//! beside its REST API in the same run (issue 16, "Benchmark"; goal: OPC UA ≥ 0.7 of REST).
//!
//! One vault runs in this process with SQLite, an RSA-2048 CA and the auto-approve policy on
//! for `DefaultApplicationGroup`. Each path registers its application once, then enrolls in a
//! closed loop:
//! - OPC UA: StartSigningRequest (a DER CSR) then FinishRequest, on a Basic256Sha256
//!   SignAndEncrypt session opened once per client with a user name (an API key), through our
//!   async-opcua client; the client trusts the GDS through the vault's CA and CRL.
//! - REST: `PUT /v2/requests/sign` then `GET /v2/requests/sign/{id}` with the same key.
//!
//! Both run the same service code (CSR checks, policy approval, issue, audit, accept), so the
//! ratio is what the OPC UA face (secure channel crypto, binary encoding, node manager) costs
//! against HTTP/JSON. CSRs are made beforehand with the openssl command line, a pool per path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use iiot_gds::client::GdsClient;
use iiot_gds::record::ApplicationRecord;
use opcua::client::{ClientBuilder, IdentityToken, Password};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    LocalizedText, MessageSecurityMode, NodeId, ObjectTypeId, StatusCode, UserTokenPolicy,
};
use serde_json::{json, Value};

use crate::error::{bail, BenchError, Context, Result};
use crate::harness::TempDir;
use crate::vault::{closed_loop, make_csrs, Window, KINDS};

const GROUP: &str = "DefaultApplicationGroup";
const KEY_NAME: &str = "bench";
const KEY: &str = "bench-gds-key-0123456789";
const REST_URI: &str = "urn:iiot:bench:gds-rest-client";
const OPCUA_URI: &str = "urn:iiot:bench:gds-opcua-client";

/// `iiot bench gds`'s flags.
pub struct GdsBenchConfig {
    pub seconds: u64,
    pub clients: Vec<usize>,
    pub csrs: usize,
    pub openssl: std::path::PathBuf,
}

struct Row {
    path: &'static str,
    clients: usize,
    w: Window,
}

pub async fn run(args: GdsBenchConfig) -> Result<()> {
    if args.seconds == 0 || args.clients.contains(&0) || args.csrs == 0 {
        bail!("--seconds, --clients and --csrs must be positive");
    }
    let dir = TempDir(std::env::temp_dir().join(format!("iiot-bench-gds-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0)?;
    let keys = iiot_vault::ApiKeys::single(
        KEY_NAME,
        KEY,
        [iiot_vault::Role::Writer, iiot_vault::Role::Reader],
    );
    let mut config = iiot_vault::VaultConfig::new(keys);
    config.bind = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.0.join("vault");
    config.kek = Some(iiot_vault::KekSource::File(dir.0.join("vault.kek")));
    config.cert_types = vec![iiot_vault::CertType::RsaSha256];
    config.auto_approve_groups = vec![GROUP.to_string()];
    config.opcua = Some(iiot_vault::gds::GdsConfig {
        bind: ([127, 0, 0, 1], 0).into(),
        hostname: "localhost".into(),
    });
    let handle = iiot_vault::start(config).await?;
    let base = format!("http://{}", handle.addr());
    let url = handle
        .opcua_url()
        .context("the vault started without its OPC UA face")?
        .to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    let rsa = &KINDS[0];
    let rest_csrs = Arc::new(make_csrs(&args.openssl, &dir.0, rsa, args.csrs, REST_URI)?);
    let opcua_csrs: Arc<Vec<Vec<u8>>> = Arc::new(
        make_csrs(&args.openssl, &dir.0, rsa, args.csrs, OPCUA_URI)?
            .iter()
            .map(|pem| pem_to_der(pem))
            .collect::<Result<_>>()?,
    );

    let rest = Arc::new(Rest::register(http, base.clone()).await?);
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let gds = Gds::connect(&dir.0, &url, &rest, max_clients).await?;
    let gds = Arc::new(gds);

    // Warm-up: connections, SQLite pages, the CA key in memory.
    for i in 0..4 {
        rest.enroll(&rest_csrs[i % rest_csrs.len()]).await?;
        gds.enroll(0, &opcua_csrs[i % opcua_csrs.len()]).await?;
    }
    let length = Duration::from_secs(args.seconds);
    let mut rows = Vec::new();
    for &clients in &args.clients {
        // Alternating paths in one run: the machine's speed drifts less between neighbours.
        let (r, c) = (rest.clone(), rest_csrs.clone());
        let w = closed_loop(clients, length, move |i| {
            let (r, c) = (r.clone(), c.clone());
            async move { r.enroll(&c[i % c.len()]).await }
        })
        .await?;
        eprintln!(
            "REST × {clients}: {:.1} enrollments/s",
            w.certs as f64 / w.secs
        );
        rows.push(Row {
            path: "REST",
            clients,
            w,
        });
        let (g, c) = (gds.clone(), opcua_csrs.clone());
        let w = closed_loop(clients, length, move |i| {
            let (g, c) = (g.clone(), c.clone());
            async move { g.enroll(i % clients, &c[i % c.len()]).await }
        })
        .await?;
        eprintln!(
            "OPC UA × {clients}: {:.1} enrollments/s",
            w.certs as f64 / w.secs
        );
        rows.push(Row {
            path: "OPC UA",
            clients,
            w,
        });
    }
    gds.close().await;
    handle.shutdown().await?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "vault enrollment (sign request → auto-approve → issue → collect), RSA-2048 CA, {} s windows, SQLite, {cores} cores; OPC UA: Basic256Sha256 SignAndEncrypt, one session per client",
        args.seconds
    );
    println!();
    println!("| path | clients | enrollments/s | p50 ms | p99 ms | CPU (cores) | CPU ms/enrollment | OPC UA / REST | goal ≥0.7 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let rate = r.w.certs as f64 / r.w.secs;
        let cpu_ms = r.w.cpu_cores * r.w.secs * 1000.0 / r.w.certs.max(1) as f64;
        let (ratio, verdict) = if r.path == "OPC UA" {
            let rest = rows
                .iter()
                .find(|x| x.path == "REST" && x.clients == r.clients)
                .map(|x| x.w.certs as f64 / x.w.secs)
                .unwrap_or(f64::NAN);
            let ratio = rate / rest;
            (
                format!("{ratio:.2}"),
                if ratio >= 0.7 { "met" } else { "NOT met" },
            )
        } else {
            (String::new(), "")
        };
        println!(
            "| {} | {} | {rate:.1} | {:.1} | {:.1} | {:.2} | {cpu_ms:.1} | {ratio} | {verdict} |",
            r.path, r.clients, r.w.p50_ms, r.w.p99_ms, r.w.cpu_cores
        );
    }
    Ok(())
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| BenchError::Failed(format!("CSR PEM body is not base64: {e}")))
}

/// The REST path: an application registered through REST.
struct Rest {
    http: reqwest::Client,
    base: String,
    app_id: String,
}

impl Rest {
    async fn register(http: reqwest::Client, base: String) -> Result<Rest> {
        let app: Value = http
            .post(format!("{base}/v2/applications"))
            .bearer_auth(KEY)
            .json(&json!({
                "applicationUri": REST_URI,
                "applicationType": "Client",
                "applicationNames": [{ "locale": "en", "text": "bench REST client" }],
                "productUri": "urn:iiot:bench"
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let app_id = app["applicationId"]
            .as_str()
            .context("no applicationId in the registration answer")?
            .to_string();
        Ok(Rest { http, base, app_id })
    }

    async fn enroll(&self, csr: &str) -> Result<()> {
        let submitted: Value = self
            .http
            .put(format!("{}/v2/requests/sign", self.base))
            .bearer_auth(KEY)
            .json(&json!({
                "entityId": self.app_id,
                "groupId": GROUP,
                "certificateTypeId": "RsaSha256ApplicationCertificateType",
                "certificateRequest": csr
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = submitted["requestId"]
            .as_str()
            .context("no requestId in the sign answer")?;
        let fetched: Value = self
            .http
            .get(format!("{}/v2/requests/sign/{id}", self.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if !fetched["certificate"]["certificate"].is_string() {
            bail!("fetch of {id} gave no certificate: {fetched}");
        }
        Ok(())
    }

    /// The group's CA certificates and CRLs, base64 DER.
    async fn trust_list(&self) -> Result<Value> {
        Ok(self
            .http
            .get(format!("{}/v2/groups/{GROUP}/trustlist", self.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

/// The OPC UA path: sessions to the GDS and the application registered through it.
struct Gds {
    clients: Vec<GdsClient>,
    loops: Vec<tokio::task::JoinHandle<StatusCode>>,
    group: NodeId,
    app: NodeId,
}

impl Gds {
    async fn connect(dir: &Path, url: &str, rest: &Rest, clients: usize) -> Result<Gds> {
        let pki = dir.join("client-pki");
        for sub in ["own", "private", "trusted/crl", "rejected", "issuer"] {
            std::fs::create_dir_all(pki.join(sub))?;
        }
        // Trust the GDS through the vault's CA and its CRL, as an enrolled application would.
        let tl = rest.trust_list().await?;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .map_err(|e| BenchError::Failed(format!("trust list entry is not base64: {e}")))
        };
        for (i, c) in tl["trustedCertificates"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            std::fs::write(pki.join(format!("trusted/vault-ca-{i}.der")), b64(c)?)?;
        }
        for (i, c) in tl["trustedCrls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            std::fs::write(pki.join(format!("trusted/crl/vault-ca-{i}.crl")), b64(c)?)?;
        }
        let mut client = ClientBuilder::new()
            .application_name("iiot bench gds")
            .application_uri(OPCUA_URI)
            .product_uri("urn:iiot:bench")
            .pki_dir(&pki)
            .create_sample_keypair(true)
            .trust_server_certs(false)
            .verify_server_certs(true)
            .session_retry_limit(0)
            .session_timeout(120_000)
            .client()
            .map_err(|e| BenchError::Failed(format!("client: {}", e.join("; "))))?;
        let mut sessions = Vec::new();
        let mut loops = Vec::new();
        for _ in 0..clients {
            let (session, event_loop) = client
                .connect_to_matching_endpoint(
                    (
                        url,
                        SecurityPolicy::Basic256Sha256.to_uri(),
                        MessageSecurityMode::SignAndEncrypt,
                        UserTokenPolicy::anonymous(),
                    ),
                    IdentityToken::UserName(KEY_NAME.into(), Password::new(KEY.to_string())),
                )
                .await
                .map_err(|e| BenchError::Failed(format!("GDS session: {e}")))?;
            loops.push(event_loop.spawn());
            if !session.wait_for_connection().await {
                bail!("GDS session did not connect");
            }
            sessions.push(
                GdsClient::new(session)
                    .await
                    .map_err(|e| BenchError::Failed(e.to_string()))?,
            );
        }
        let first = &sessions[0];
        let record = ApplicationRecord {
            application_id: NodeId::null(),
            application_uri: OPCUA_URI.into(),
            application_type: 1,
            application_names: vec![LocalizedText::new("en", "bench OPC UA client")],
            product_uri: "urn:iiot:bench".into(),
            discovery_urls: Vec::new(),
            server_capabilities: Vec::new(),
        };
        let app = first
            .register_application(&record)
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?;
        let group = first.application_group();
        Ok(Gds {
            clients: sessions,
            loops,
            group,
            app,
        })
    }

    async fn enroll(&self, session: usize, csr: &[u8]) -> Result<()> {
        let gds = &self.clients[session];
        let fail = |e: iiot_gds::client::GdsError| BenchError::Failed(e.to_string());
        let request = gds
            .start_signing_request(
                &self.app,
                &self.group,
                ObjectTypeId::RsaSha256ApplicationCertificateType,
                csr,
            )
            .await
            .map_err(fail)?;
        match gds
            .finish_request(&self.app, &request)
            .await
            .map_err(fail)?
        {
            Some(_) => Ok(()),
            None => bail!("request {request} waits for approval; auto-approve is off"),
        }
    }

    async fn close(&self) {
        for c in &self.clients {
            let _ = c.session().disconnect().await;
        }
        for l in &self.loops {
            l.abort();
        }
    }
}
