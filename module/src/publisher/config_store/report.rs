//! The two reports of the publisher's counters: GetDiagnosticInfo (OPC Publisher's
//! `PublishDiagnosticInfoModel`, one per writer) and `/metrics` (Prometheus text).
//!
//! The Prometheus text is written by hand rather than through `prometheus-client`: the
//! counters already live in `publisher::metrics` as plain atomics shared with the pipeline,
//! and the crate would want its own metric types (or a custom collector that ends up writing
//! the same lines). Two dozen families of the text format 0.0.4 are a few lines of code, and
//! the exhaustive destructuring below makes the compiler point here when a counter is added.

use std::fmt::Write;

use super::{ConfigError, ConfigStore};
use crate::api::{PublishDiagnosticInfoModel, PublishedNodesEntryModel};
use crate::publisher::metrics::{PipelineMetrics, PublisherDiagnostics, WriterDiagnostics};
use crate::publisher::plan::plan;

impl ConfigStore {
    /// GetDiagnosticInfo: one model per writer the engine runs, with the configuration
    /// entries it came from (passwords left out, as OPC Publisher does). A writer whose
    /// entry is gone (being torn down) is listed with a minimal entry naming it.
    pub fn diagnostic_info(
        &self,
        diag: &PublisherDiagnostics,
    ) -> Result<Vec<PublishDiagnosticInfoModel>, ConfigError> {
        let entries = self.entries()?;
        // Each entry's writers: (group, writer id, publishing interval ms).
        let planned: Vec<Vec<(String, String, u64)>> = entries
            .iter()
            .map(|e| {
                plan(std::slice::from_ref(e))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.group, w.id, w.publishing_interval.as_millis() as u64))
                    .collect()
            })
            .collect();
        let PipelineMetrics {
            outbox_messages,
            outbox_dropped_messages,
            messages_acked,
            ..
        } = &diag.pipeline;
        let enrollment = diag.enrollment.snapshot();
        let enrolling = enrollment.phase != crate::enrollment::status::Phase::Off;
        let time = |unix: i64| (enrolling && unix > 0).then(|| crate::pki::rfc3339(unix));
        let mut out = Vec::new();
        for w in sorted_writers(diag) {
            let key = (
                w.group.clone(),
                w.writer_id.clone(),
                w.publishing_interval_ms,
            );
            let mut endpoints = Vec::new();
            for (e, writers) in entries.iter().zip(&planned) {
                if writers.contains(&key) {
                    let mut e = self.seal(e)?;
                    e.encrypted_auth_password = None;
                    e.opc_authentication_password = None;
                    endpoints.push(e);
                }
            }
            if endpoints.is_empty() {
                endpoints.push(PublishedNodesEntryModel {
                    endpoint_url: w.endpoint_url.clone(),
                    data_set_writer_group: Some(w.group.clone()),
                    data_set_writer_id: Some(w.writer_id.clone()),
                    data_set_publishing_interval: Some(w.publishing_interval_ms as f64),
                    ..Default::default()
                });
            }
            out.push(PublishDiagnosticInfoModel {
                endpoints,
                ingress_value_changes: Some(w.values_in.get()),
                encoder_io_t_messages_processed: Some(w.messages_out.get()),
                monitored_opc_nodes_succeeded_count: Some(w.items_good.get()),
                monitored_opc_nodes_failed_count: Some(w.items_bad.get()),
                connection_retries: Some(w.reconnects.get()),
                opc_endpoint_connected: w.connected.get() > 0,
                outgress_input_buffer_count: Some(outbox_messages.get()),
                outgress_input_buffer_dropped: Some(outbox_dropped_messages.get()),
                outgress_io_t_message_count: Some(messages_acked.get()),
                certificate_enrollment: enrolling.then(|| enrollment.phase.as_str().to_owned()),
                certificate_not_after: time(enrollment.not_after),
                trust_list_refreshed: time(enrollment.trust_list_refreshed),
            });
        }
        Ok(out)
    }
}

fn sorted_writers(diag: &PublisherDiagnostics) -> Vec<std::sync::Arc<WriterDiagnostics>> {
    let mut writers: Vec<_> = diag.writers.iter().map(|w| w.value().clone()).collect();
    writers.sort_by(|a, b| {
        (&a.group, &a.writer_id, a.publishing_interval_ms).cmp(&(
            &b.group,
            &b.writer_id,
            b.publishing_interval_ms,
        ))
    });
    writers
}

/// A label value with `\`, `"` and line breaks escaped, as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        let name = format!("iiot_publisher_{name}_total");
        self.family(&name, "counter", help);
        self.sample(&name, "", value);
    }
    fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let name = format!("iiot_publisher_{name}");
        self.family(&name, "gauge", help);
        self.sample(&name, "", value);
    }
}

/// Prometheus text exposition (format 0.0.4) of every pipeline counter, one series per
/// writer for the writer counters (labels `group`, `writer`, `endpoint`, and
/// `publishing_interval_ms`, without which a writer split by node publishing intervals
/// would expose duplicate series), and the size of the configuration.
pub fn render_prometheus(diag: &PublisherDiagnostics, configured: &super::PackedEntries) -> String {
    let PipelineMetrics {
        notifications_in,
        values_encoded,
        messages_encoded,
        outbox_appended,
        outbox_messages,
        outbox_bytes,
        outbox_dropped_messages,
        outbox_dropped_bytes,
        outbox_rejected_full,
        outbox_rejected_too_large,
        outbox_rejected_disk_error,
        messages_sent,
        messages_acked,
        bytes_acked,
        mqtt_reconnects,
        opcua_reconnects,
        monitored_items_good,
        monitored_items_bad,
        republished,
        watchdog_revivals,
    } = &diag.pipeline;
    let mut t = Text(String::with_capacity(4096));
    t.counter(
        "notifications_in",
        "Data change notifications received from OPC UA servers.",
        notifications_in.get(),
    );
    t.counter(
        "values_encoded",
        "Values written into data set messages.",
        values_encoded.get(),
    );
    t.counter(
        "messages_encoded",
        "Network messages produced by the encoders.",
        messages_encoded.get(),
    );
    t.counter(
        "outbox_appended",
        "Network messages durably committed to the outbox.",
        outbox_appended.get(),
    );
    t.gauge(
        "outbox_messages",
        "Messages held by the outbox.",
        outbox_messages.get(),
    );
    t.gauge(
        "outbox_bytes",
        "Bytes the outbox takes on disk.",
        outbox_bytes.get(),
    );
    t.counter(
        "outbox_dropped_messages",
        "Messages removed by the outbox overflow policy, never delivered.",
        outbox_dropped_messages.get(),
    );
    t.counter(
        "outbox_dropped_bytes",
        "Bytes removed by the outbox overflow policy, never delivered.",
        outbox_dropped_bytes.get(),
    );
    let rejected = "iiot_publisher_outbox_rejected_messages_total";
    t.family(
        rejected,
        "counter",
        "Messages the outbox refused, never delivered, by reason: full (reject-new), too_large or disk_error (a write or fsync failed).",
    );
    t.sample(rejected, "reason=\"full\"", outbox_rejected_full.get());
    t.sample(
        rejected,
        "reason=\"too_large\"",
        outbox_rejected_too_large.get(),
    );
    t.sample(
        rejected,
        "reason=\"disk_error\"",
        outbox_rejected_disk_error.get(),
    );
    t.counter(
        "messages_sent",
        "Publishes handed to the broker connection.",
        messages_sent.get(),
    );
    t.counter(
        "messages_acked",
        "Publishes the broker acknowledged.",
        messages_acked.get(),
    );
    t.counter(
        "bytes_acked",
        "Bytes of acknowledged payloads.",
        bytes_acked.get(),
    );
    t.counter(
        "mqtt_reconnects",
        "Broker connections established after the first one.",
        mqtt_reconnects.get(),
    );
    t.counter(
        "opcua_reconnects",
        "OPC UA session reconnects seen by the publisher.",
        opcua_reconnects.get(),
    );
    t.gauge(
        "monitored_items_good",
        "Monitored items the servers accepted.",
        monitored_items_good.get(),
    );
    t.gauge(
        "monitored_items_bad",
        "Monitored items that failed and are retried.",
        monitored_items_bad.get(),
    );
    t.counter(
        "republished",
        "Notifications recovered with Republish after a sequence gap.",
        republished.get(),
    );
    t.counter(
        "watchdog_revivals",
        "Subscriptions revived by the watchdog after they fell silent.",
        watchdog_revivals.get(),
    );
    t.counter(
        "publish_gate_saturations",
        "Times OPC UA Publish requests stopped because writers stayed behind their notifications past the bounded hold.",
        crate::opcua::notification_backlog::saturations_total(),
    );
    t.gauge(
        "configured_entries",
        "Entries in the publisher configuration.",
        configured.len() as i64,
    );
    t.gauge(
        "configured_nodes",
        "Nodes in the publisher configuration.",
        configured.node_count() as i64,
    );

    let writers = sorted_writers(diag);
    let labels: Vec<String> = writers
        .iter()
        .map(|w| {
            format!(
                "group=\"{}\",writer=\"{}\",endpoint=\"{}\",publishing_interval_ms=\"{}\"",
                label(&w.group),
                label(&w.writer_id),
                label(&w.endpoint_url),
                w.publishing_interval_ms
            )
        })
        .collect();
    type Read = fn(&WriterDiagnostics) -> i128;
    let families: [(&str, &str, &str, Read); 6] = [
        (
            "iiot_publisher_writer_values_in_total",
            "counter",
            "Values received by the writer.",
            |w| w.values_in.get().into(),
        ),
        (
            "iiot_publisher_writer_messages_out_total",
            "counter",
            "Messages produced by the writer.",
            |w| w.messages_out.get().into(),
        ),
        (
            "iiot_publisher_writer_monitored_items_good",
            "gauge",
            "Monitored items of the writer the server accepted.",
            |w| w.items_good.get().into(),
        ),
        (
            "iiot_publisher_writer_monitored_items_bad",
            "gauge",
            "Monitored items of the writer that failed.",
            |w| w.items_bad.get().into(),
        ),
        (
            "iiot_publisher_writer_reconnects_total",
            "counter",
            "Session reconnects of the writer.",
            |w| w.reconnects.get().into(),
        ),
        (
            "iiot_publisher_writer_connected",
            "gauge",
            "1 while the writer's session is connected.",
            |w| w.connected.get().into(),
        ),
    ];
    for (name, kind, help, read) in families {
        t.family(name, kind, help);
        for (w, l) in writers.iter().zip(&labels) {
            t.sample(name, l, read(w));
        }
    }
    // Make sure every writer counter has a family above.
    let _exhaustive = |w: &WriterDiagnostics| {
        let WriterDiagnostics {
            group: _,
            writer_id: _,
            endpoint_url: _,
            publishing_interval_ms: _,
            values_in: _,
            messages_out: _,
            items_good: _,
            items_bad: _,
            reconnects: _,
            connected: _,
            last_error: _,
        } = w;
    };
    enrollment(&mut t, &diag.enrollment.snapshot());
    t.0
}

/// GDS enrollment: one series per phase (1 for the current one), the certificate's expiry and
/// the last trust list refresh (Unix seconds, 0 before the first).
fn enrollment(t: &mut Text, s: &crate::enrollment::status::Snapshot) {
    let name = "iiot_gds_enrollment_phase";
    t.family(
        name,
        "gauge",
        "GDS certificate enrollment phase (1 = current).",
    );
    for phase in crate::enrollment::Phase::ALL {
        t.sample(
            name,
            &format!("phase=\"{}\"", phase.as_str()),
            i64::from(phase == s.phase),
        );
    }
    for (name, help, value) in [
        (
            "iiot_gds_certificate_not_after_seconds",
            "Expiry of the GDS-issued certificate in use (Unix seconds; 0 when none).",
            s.not_after,
        ),
        (
            "iiot_gds_trust_list_refreshed_seconds",
            "When the GDS trust list and CRLs were last installed (Unix seconds).",
            s.trust_list_refreshed,
        ),
    ] {
        t.family(name, "gauge", help);
        t.sample(name, "", value);
    }
    for (name, help, value) in [
        (
            "iiot_gds_certificates_installed_total",
            "GDS-issued certificates installed since start.",
            s.certificates_installed,
        ),
        (
            "iiot_gds_failures_total",
            "Enrollment rounds that failed (connection, GDS refusal, PKI write).",
            s.failures,
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, "", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_every_pipeline_counter_and_one_series_per_writer() {
        let diag = PublisherDiagnostics::default();
        diag.pipeline.notifications_in.add(7);
        diag.pipeline.outbox_messages.set(3);
        diag.pipeline.outbox_rejected_too_large.add(2);
        diag.pipeline.outbox_rejected_disk_error.add(4);
        let w = diag.writer("g\"1", "w1", "opc.tcp://a:1", 1000);
        w.values_in.add(5);
        w.connected.set(1);
        diag.writer("g\"1", "w1", "opc.tcp://a:1", 100);
        let text = render_prometheus(&diag, &super::super::PackedEntries::default());
        assert!(text.contains("# TYPE iiot_publisher_notifications_in_total counter\n"));
        assert!(text.contains("\niiot_publisher_notifications_in_total 7\n"));
        assert!(text.contains("# TYPE iiot_publisher_outbox_messages gauge\n"));
        assert!(text.contains("\niiot_publisher_outbox_messages 3\n"));
        assert!(text
            .contains("\niiot_publisher_outbox_rejected_messages_total{reason=\"too_large\"} 2\n"));
        assert!(text.contains(
            "\niiot_publisher_outbox_rejected_messages_total{reason=\"disk_error\"} 4\n"
        ));
        assert!(text.contains(
            "iiot_publisher_writer_values_in_total{group=\"g\\\"1\",writer=\"w1\",endpoint=\"opc.tcp://a:1\",publishing_interval_ms=\"1000\"} 5\n"
        ));
        assert!(text.contains("publishing_interval_ms=\"100\"} 0\n"));
        assert!(text.contains("# TYPE iiot_publisher_publish_gate_saturations_total counter\n"));
        // 18 pipeline + 1 Publish gate + 2 configuration + 6 writer + 5 GDS enrollment
        // families, each with HELP and TYPE once.
        assert_eq!(text.matches("# TYPE ").count(), 32);
        assert_eq!(text.matches("# HELP ").count(), 32);
        assert!(text.contains("\niiot_gds_enrollment_phase{phase=\"off\"} 1\n"));
        assert!(text.contains("\niiot_gds_enrollment_phase{phase=\"enrolled\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                name.starts_with("iiot_publisher_") || name.starts_with("iiot_gds_"),
                "{line}"
            );
            let is_counter = text.contains(&format!("# TYPE {name} counter"));
            assert_eq!(is_counter, name.ends_with("_total"), "{line}");
        }
    }
}
