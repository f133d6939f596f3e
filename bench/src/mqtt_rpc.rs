//! An MQTT v5 RPC caller for `iiot bench read`: many concurrent requests on one connection,
//! told apart by their correlation data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Context, Result};

type Pending = Arc<Mutex<HashMap<Vec<u8>, tokio::sync::oneshot::Sender<u16>>>>;

#[derive(Clone)]
pub(crate) struct Rpc {
    client: rumqttc::v5::AsyncClient,
    pending: Pending,
    reply: String,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Rpc {
    pub(crate) async fn connect(url: &str) -> Result<Rpc> {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{AsyncClient, Event, MqttOptions};
        let hostport = url.trim_start_matches("mqtt://");
        let (host, port) = hostport
            .rsplit_once(':')
            .context("mqtt url needs host:port")?;
        let mut options =
            MqttOptions::new(format!("bench-{}", std::process::id()), host, port.parse()?);
        let mut net = options.network_options();
        net.set_tcp_nodelay(true);
        options.set_network_options(net);
        let (client, mut event_loop) = AsyncClient::new(options, 1024);
        let reply = format!("bench-{}/replies", std::process::id());
        let pending: Pending = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let p = pending.clone();
        let sub = client.clone();
        let topic = reply.clone();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.subscribe(topic.clone(), QoS::AtMostOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(msg))) => {
                        let props = msg.properties.unwrap_or_default();
                        let status = props
                            .user_properties
                            .iter()
                            .find(|(k, _)| k == "StatusCode")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if let Some(c) = props.correlation_data {
                            if let Some(tx) = p.lock().ok().and_then(|mut m| m.remove(c.as_ref())) {
                                let _ = tx.send(status);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .context("MQTT broker did not answer")??;
        Ok(Rpc {
            client,
            pending,
            reply,
            next: Arc::default(),
        })
    }

    /// Publishes one request and answers the `StatusCode` of its response (0 if none).
    pub(crate) async fn call(&self, topic: &str, payload: &[u8]) -> Result<u16> {
        use rumqttc::v5::mqttbytes::v5::PublishProperties;
        use rumqttc::v5::mqttbytes::QoS;
        let id = self
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes()
            .to_vec();
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut m) = self.pending.lock() {
            m.insert(id.clone(), tx);
        }
        let props = PublishProperties {
            response_topic: Some(self.reply.clone()),
            correlation_data: Some(id.into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtMostOnce, false, payload.to_vec(), props)
            .await?;
        Ok(rx.await?)
    }
}
