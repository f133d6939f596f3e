//! End to end: an async-opcua client subscribed to plc-sim keeps receiving values after the
//! server restarts, after the server answers Publish with Bad_TooManyPublishRequests for a
//! while, and after the network drops; and a server that returns short result arrays gets
//! errors back, not a panicking client. These prove the `iiot patch` changes carried in
//! `vendor/async-opcua-client` (see `vendor/PATCHES.md`).
//!
//! The session event loop is only spawned (`SessionEventLoop::spawn`): no test calls
//! `trigger_publish_now()` or watches `Reconnected`, so publishing must resume on its own.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "subscriptions/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, temp_dir};
use iiot_plc_sim::PlcSim;
use opcua::client::{ClientBuilder, DataChangeCallback, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters,
    ObjectId, ReadValueId, StatusCode, TimestampsToReturn,
};
use proxy::Proxy;

/// Subscribed `Fast/*` counters; each changes every 100 ms.
const NODES: u32 = 3;
const PUBLISHING_INTERVAL: Duration = Duration::from_millis(100);
/// Values must flow again within this time after a disruption ends.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// New values that count as "flowing" (two publishing intervals' worth for 3 nodes).
const FLOWING: u64 = 6;

async fn start_sim(port: u16, pki_dir: &Path) -> PlcSim {
    common::counter_plc(port, pki_dir, 4).await
}

/// A session with one subscription (100 ms) on `Fast/0..NODES`, counting the data values.
struct Subscribed {
    session: Arc<Session>,
    subscription_id: u32,
    nodes: Vec<opcua::types::NodeId>,
    values: Arc<AtomicU64>,
    event_loop: tokio::task::JoinHandle<StatusCode>,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

impl Subscribed {
    fn values(&self) -> u64 {
        self.values.load(Ordering::Relaxed)
    }

    /// Waits until `FLOWING` more values have arrived; panics after `within`. Returns the wait.
    async fn flowing(&self, within: Duration, what: &str) -> Duration {
        let start = Instant::now();
        let base = self.values();
        loop {
            if self.values() >= base + FLOWING {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{what}: {} values in {within:?}, expected {FLOWING} (the publish loop stopped)",
                self.values() - base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Connects to `url` (security None, anonymous), spawns the session event loop and subscribes.
/// `keep_alive` is the client's keep-alive read period.
async fn subscribe(url: &str, sim: &PlcSim, keep_alive: Duration) -> Subscribed {
    let mut client = ClientBuilder::new()
        .application_name("iiot subscriptions test")
        .application_uri("urn:iiot:test:subscriptions")
        .product_uri("urn:iiot:test")
        .pki_dir(temp_dir("subscriptions-client-pki"))
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .session_retry_limit(-1)
        .session_retry_initial(Duration::from_millis(200))
        .session_retry_max(Duration::from_secs(1))
        .keep_alive_interval(keep_alive)
        .request_timeout(Duration::from_secs(5))
        .publish_timeout(Duration::from_secs(10))
        .session_timeout(60_000)
        .session_name("iiot subscriptions test")
        .client()
        .expect("client config");
    let endpoints = client
        .get_server_endpoints_from_url(url)
        .await
        .expect("GetEndpoints");
    let mut endpoint = endpoints
        .into_iter()
        .find(|e| {
            e.security_mode == MessageSecurityMode::None
                && e.security_policy_uri.as_ref() == SecurityPolicy::None.to_uri()
        })
        .expect("a None endpoint");
    // Connect where we were told (the proxy), not where the server says it listens.
    endpoint.endpoint_url = url.into();
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, IdentityToken::Anonymous)
        .expect("session");
    let event_loop = event_loop.spawn();
    tokio::time::timeout(Duration::from_secs(10), session.wait_for_connection())
        .await
        .expect("connected in time");

    let values = Arc::new(AtomicU64::new(0));
    let counter = values.clone();
    let subscription_id = session
        .create_subscription(
            PUBLISHING_INTERVAL,
            300,
            10,
            0,
            0,
            true,
            DataChangeCallback::new(move |dv, _item| {
                if dv.value.is_some() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }),
        )
        .await
        .expect("CreateSubscription");
    let nodes: Vec<_> = (0..NODES)
        .map(|i| sim.node_id(&format!("Fast/{i}")))
        .collect();
    let items = nodes
        .iter()
        .map(|node| MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId::from(node.clone()),
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                sampling_interval: 100.0,
                queue_size: 10,
                discard_oldest: true,
                ..Default::default()
            },
        })
        .collect();
    let created = session
        .create_monitored_items(subscription_id, TimestampsToReturn::Both, items)
        .await
        .expect("CreateMonitoredItems");
    assert!(created.iter().all(|c| c.result.status_code.is_good()));
    Subscribed {
        session,
        subscription_id,
        nodes,
        values,
        event_loop,
    }
}

fn sim_addr(sim: &PlcSim) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], sim.port()))
}

/// Node id of `Fast/{i}` (the namespace index was resolved when subscribing).
fn sub_node(sub: &Subscribed, i: u32) -> opcua::types::NodeId {
    sub.nodes[i as usize].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_again_after_the_server_restarts() {
    let port = free_port();
    let pki = temp_dir("subscriptions-restart-pki");
    let sim = start_sim(port, &pki).await;
    let sub = subscribe(&sim.endpoint_url(), &sim, Duration::from_secs(1)).await;
    sub.flowing(RECOVERY_BOUND, "before the restart").await;

    sim.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sub.values();
    let sim = start_sim(port, &pki).await;
    let waited = sub.flowing(RECOVERY_BOUND, "after the restart").await;
    assert!(sub.values() > before);
    eprintln!("restart: values flowing {waited:?} after the server came back");
    drop(sub);
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_again_after_bad_too_many_publish_requests() {
    let sim = start_sim(0, &temp_dir("subscriptions-toomany-pki")).await;
    let proxy = Proxy::start(sim_addr(&sim)).await;
    let sub = subscribe(&proxy.url(), &sim, Duration::from_secs(1)).await;
    sub.flowing(RECOVERY_BOUND, "before the faults").await;

    // Every Publish response of the next 3 s is a Bad_TooManyPublishRequests fault, so every
    // outstanding request fails with it.
    let window = Duration::from_secs(3);
    proxy.too_many_publish_requests_for(window);
    tokio::time::sleep(window).await;
    assert!(
        proxy.too_many_injected() >= 2,
        "the proxy answered only {} publish requests with Bad_TooManyPublishRequests",
        proxy.too_many_injected()
    );
    let waited = sub
        .flowing(RECOVERY_BOUND, "after Bad_TooManyPublishRequests")
        .await;
    eprintln!(
        "too many publish requests: {} faults injected, values flowing {waited:?} after the window",
        proxy.too_many_injected()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_again_after_the_network_drops() {
    let sim = start_sim(0, &temp_dir("subscriptions-netdrop-pki")).await;
    let proxy = Proxy::start(sim_addr(&sim)).await;
    let sub = subscribe(&proxy.url(), &sim, Duration::from_secs(1)).await;
    sub.flowing(RECOVERY_BOUND, "before the network drop").await;

    let outage = Duration::from_secs(3);
    proxy.drop_network_for(outage);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = sub.values();
    tokio::time::sleep(outage - Duration::from_millis(300)).await;
    assert!(
        sub.values() <= during + NODES as u64,
        "values kept arriving while the network was down: the proxy did not cut it"
    );
    let waited = sub.flowing(RECOVERY_BOUND, "after the network drop").await;
    eprintln!("network drop: values flowing {waited:?} after the network came back");
}

/// Subscribes through a proxy, with keep-alive reads far apart so that an emptied Read
/// response is the test's own.
async fn subscribed_through_proxy(name: &str) -> (PlcSim, Proxy, Subscribed) {
    let sim = start_sim(0, &temp_dir(name)).await;
    let proxy = Proxy::start(sim_addr(&sim)).await;
    let sub = subscribe(&proxy.url(), &sim, Duration::from_secs(120)).await;
    sub.flowing(RECOVERY_BOUND, "after subscribing").await;
    (sim, proxy, sub)
}

fn assert_unexpected(result: Result<impl std::fmt::Debug, opcua::types::Error>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.status(), StatusCode::BadUnexpectedError, "{what}: {e}"),
        Ok(v) => panic!("{what}: a short result array must be an error, got Ok({v:?})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_read_and_call_results_are_errors_not_panics() {
    let (_sim, proxy, sub) = subscribed_through_proxy("subscriptions-short-read-pki").await;
    let session = &sub.session;

    // Session::read_namespace_array indexed the first result (0.19.0: panic).
    proxy.empty_results_of_next(ObjectId::ReadResponse_Encoding_DefaultBinary, 1);
    assert_unexpected(session.read_namespace_array().await, "read_namespace_array");

    // Session::read returned the short array as if it were complete (0.19.0: Ok(vec![])).
    proxy.empty_results_of_next(ObjectId::ReadResponse_Encoding_DefaultBinary, 1);
    let node = ReadValueId::from(sub_node(&sub, 0));
    assert_unexpected(
        session.read(&[node], TimestampsToReturn::Both, 0.0).await,
        "read",
    );

    // Session::call_one through call_get_monitored_items: Call::send already rejected a short
    // array in 0.19.0 and call_one no longer unwraps; kept as a regression check.
    proxy.empty_results_of_next(ObjectId::CallResponse_Encoding_DefaultBinary, 1);
    assert_unexpected(
        session.call_get_monitored_items(sub.subscription_id).await,
        "call_get_monitored_items",
    );
    assert_eq!(proxy.emptied(), 3);

    // Answered normally, the same calls work: the errors came from the short arrays, and the
    // session is still usable.
    let (server_handles, _) = session
        .call_get_monitored_items(sub.subscription_id)
        .await
        .expect("GetMonitoredItems");
    assert_eq!(server_handles.len(), NODES as usize);
    session
        .read_namespace_array()
        .await
        .expect("namespace array");
    sub.flowing(RECOVERY_BOUND, "after the short results").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_subscription_service_results_are_errors_not_panics() {
    let (_sim, proxy, sub) = subscribed_through_proxy("subscriptions-short-sub-pki").await;
    let session = &sub.session;
    let (server_handles, _) = session
        .call_get_monitored_items(sub.subscription_id)
        .await
        .expect("GetMonitoredItems");

    // Already checked in 0.19.0 (SetMonitoringMode::send); kept as a regression check.
    proxy.empty_results_of_next(
        ObjectId::SetMonitoringModeResponse_Encoding_DefaultBinary,
        1,
    );
    assert_unexpected(
        session
            .set_monitoring_mode(
                sub.subscription_id,
                MonitoringMode::Reporting,
                &server_handles,
            )
            .await,
        "set_monitoring_mode",
    );
    sub.flowing(RECOVERY_BOUND, "after SetMonitoringMode").await;

    // Session::delete_monitored_items returned the short array as if it were complete
    // (0.19.0: Ok(vec![])).
    proxy.empty_results_of_next(
        ObjectId::DeleteMonitoredItemsResponse_Encoding_DefaultBinary,
        1,
    );
    assert_unexpected(
        session
            .delete_monitored_items(sub.subscription_id, &server_handles[..1])
            .await,
        "delete_monitored_items",
    );
    sub.flowing(RECOVERY_BOUND, "after DeleteMonitoredItems")
        .await;

    // Session::delete_subscription indexed the first result (0.19.0: panic).
    proxy.empty_results_of_next(
        ObjectId::DeleteSubscriptionsResponse_Encoding_DefaultBinary,
        1,
    );
    assert_unexpected(
        session.delete_subscription(sub.subscription_id).await,
        "delete_subscription",
    );
    assert_eq!(proxy.emptied(), 3);
    session
        .read_namespace_array()
        .await
        .expect("session still usable");
}
