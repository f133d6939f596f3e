//! Normalizing configuration entries into writers and nodes.
//!
//! OPC Publisher's configuration has grown over versions: intervals as milliseconds or as
//! TimeSpan strings (the TimeSpan wins), security as `UseSecurity` or `EndpointSecurityMode`
//! (the mode wins), node ids in `Id`, `ExpandedNodeId` or a 2.5 top-level `NodeId`, and node
//! publishing intervals that split a writer into one subscription per interval. All of that
//! is resolved here, so the engine sees one shape.
//!
//! A node without `QueueSize` gets a queue that holds every sample of one publishing interval
//! and one more (OPC Publisher's `--aq`, on by default here): with a queue of one, a node
//! sampled faster than it is published would lose all but the last sample of each interval
//! on the server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{
    ConnectionModel, CredentialModel, CredentialType, EndpointModel, OpcNodeModel,
    PublishedNodesEntryModel, SecurityMode, UserIdentityModel,
};
use crate::discovery::stable_id;
use crate::twin::read::parse_duration_ms;

pub const DEFAULT_PUBLISHING_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_SAMPLING_INTERVAL: Duration = Duration::from_secs(1);
/// OPC Publisher's historic defaults for batching.
pub const DEFAULT_BATCH_SIZE: u32 = 50;
pub const DEFAULT_BATCH_TRIGGER_INTERVAL: Duration = Duration::from_secs(10);
pub use crate::api::writer_group::UNKNOWN_WRITER;

/// Why an entry cannot be published; the message names the entry and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} ({endpoint}): {message}")]
pub struct PlanError {
    pub index: usize,
    pub endpoint: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessagingMode {
    #[default]
    PubSub,
    Samples,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataChangeTrigger {
    Status,
    #[default]
    StatusValue,
    StatusValueTimestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    Absolute(f64),
    Percent(f64),
}

/// One node to monitor: its identity, its field name and its settings.
///
/// A writer may hold 100k nodes and the engine, the writer task and its subscriptions all
/// share them, so a node is three pointers: the settings every node of an entry usually has
/// in common are one shared allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// Node id as configured (any accepted spelling); resolved per session. Shared with the
    /// writer's field (and with `field_name` when the node has no name of its own).
    pub node_id: Arc<str>,
    /// Field name in messages: DataSetFieldId, else DisplayName, else the node id.
    pub field_name: Arc<str>,
    pub settings: Arc<NodeSettings>,
}

/// How a node is sampled and reported; equal for most nodes of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    pub browse_path: Option<Vec<String>>,
    pub sampling_interval: Duration,
    pub heartbeat: Option<Duration>,
    pub skip_first: bool,
    pub queue_size: u32,
    pub discard_new: bool,
    pub trigger: DataChangeTrigger,
    pub deadband: Option<Deadband>,
}

/// Hands out one `Arc` per distinct settings value. Nodes of an entry come in runs with the
/// same settings, so the few most recent values are all that is worth comparing against.
#[derive(Default)]
struct SettingsCache(Vec<Arc<NodeSettings>>);

impl SettingsCache {
    const RECENT: usize = 8;

    fn share(&mut self, settings: NodeSettings) -> Arc<NodeSettings> {
        if let Some(s) = self.0.iter().rev().find(|s| ***s == settings) {
            return s.clone();
        }
        let s = Arc::new(settings);
        if self.0.len() == Self::RECENT {
            self.0.remove(0);
        }
        self.0.push(s.clone());
        s
    }
}

/// A data set writer: one subscription at one publishing interval on one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterPlan {
    pub group: String,
    pub id: String,
    pub connection: ConnectionModel,
    pub publishing_interval: Duration,
    pub key_frame_count: Option<u32>,
    pub messaging_mode: MessagingMode,
    pub batch_size: u32,
    pub batch_trigger_interval: Duration,
    /// Shared: the engine, the writer task and its subscriptions all hold the same nodes,
    /// and a writer may have 100k of them.
    pub nodes: Vec<Arc<NodePlan>>,
}

/// Picks the TimeSpan over the milliseconds, as OPC Publisher does.
fn interval(
    timespan: Option<&str>,
    ms: Option<f64>,
    what: &str,
) -> Result<Option<Duration>, String> {
    if let Some(t) = timespan.map(str::trim).filter(|t| !t.is_empty()) {
        let ms = parse_duration_ms(t)
            .ok_or_else(|| format!("{what}Timespan '{t}' is not a duration"))?;
        return millis(ms, what).map(Some);
    }
    ms.map(|ms| millis(ms, what)).transpose()
}

fn millis(ms: f64, what: &str) -> Result<Duration, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "{what} must be a non-negative number of milliseconds"
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn security(entry: &PublishedNodesEntryModel) -> Result<SecurityMode, String> {
    if let Some(mode) = entry.endpoint_security_mode.as_deref() {
        return mode
            .parse::<SecurityMode>()
            .map_err(|_| format!("EndpointSecurityMode '{mode}' is not one of Best, None, Sign, SignAndEncrypt, NotNone"));
    }
    // UseSecurity true asks for any secured endpoint; false (the default) for None.
    Ok(if entry.use_security.unwrap_or(false) {
        SecurityMode::NotNone
    } else {
        SecurityMode::None
    })
}

fn credential(entry: &PublishedNodesEntryModel) -> Result<Option<CredentialModel>, String> {
    match entry.opc_authentication_mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("anonymous") => Ok(None),
        Some("usernamepassword") => {
            let user = entry
                .opc_authentication_username
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or("OpcAuthenticationMode UsernamePassword needs OpcAuthenticationUsername")?;
            Ok(Some(CredentialModel {
                type_: Some(CredentialType::UserName),
                value: Some(UserIdentityModel {
                    user: Some(user),
                    password: Some(entry.opc_authentication_password.clone().unwrap_or_default()),
                    thumbprint: None,
                }),
            }))
        }
        Some("certificate") => Err("OpcAuthenticationMode Certificate is not supported yet".into()),
        Some(other) => Err(format!("OpcAuthenticationMode '{other}' is not one of Anonymous, UsernamePassword, Certificate")),
    }
}

/// OPC Publisher's `--aq/--autosetqueuesize`: a queue for every sample taken during one
/// publishing interval, ceil(publishing / sampling), plus one, as the OPC UA .NET stack under
/// OPC Publisher computes it. The one more is for a publish that comes a server tick late:
/// servers test their publishing timers on a tick, and async-opcua's 100 ms tick publishes a
/// 200 ms subscription every 200 or 300 ms, so a 100 ms node has three samples to hand over
/// (measured against plc-sim: ceil alone still lost 12 of 52 values, a queue of one 62 of
/// 102). A zero interval (the server's fastest) has no known rate: the queue stays one.
pub fn auto_queue_size(publishing: Duration, sampling: Duration) -> u32 {
    let (p, s) = (publishing.as_nanos(), sampling.as_nanos());
    if p == 0 || s == 0 {
        return 1;
    }
    u32::try_from(p.div_ceil(s).saturating_add(1)).unwrap_or(u32::MAX)
}

/// How nodes that leave a setting out are planned (command-line flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanDefaults {
    /// Messaging mode of the entries that name none (the module's `--mm`).
    pub messaging_mode: MessagingMode,
    /// Queue size of the nodes without `QueueSize` from their intervals (`--aq`); otherwise 1.
    pub auto_queue_size: bool,
}

impl Default for PlanDefaults {
    fn default() -> Self {
        Self {
            messaging_mode: MessagingMode::default(),
            auto_queue_size: true,
        }
    }
}

fn node_plan(
    entry: &PublishedNodesEntryModel,
    node: &OpcNodeModel,
    sampling_default: Duration,
    publishing: Duration,
    auto_queue: bool,
    cache: &mut SettingsCache,
) -> Result<NodePlan, String> {
    let node_id = node
        .id
        .clone()
        .or_else(|| node.expanded_node_id.clone())
        .filter(|i| !i.trim().is_empty());
    let browse_path = node.browse_path.clone().filter(|p| !p.is_empty());
    let node_id: Arc<str> = match (node_id, &browse_path) {
        (Some(id), _) => id.into(),
        // A browse path alone starts at the Root folder.
        (None, Some(_)) => "i=84".into(),
        (None, None) => return Err("a node needs Id, ExpandedNodeId or BrowsePath".into()),
    };
    let heartbeat = match node.heartbeat_interval_timespan.as_deref() {
        Some(_) => interval(
            node.heartbeat_interval_timespan.as_deref(),
            None,
            "HeartbeatInterval",
        )?,
        // The integer HeartbeatInterval has been seconds since OPC Publisher 2.5.
        None => match node.heartbeat_interval {
            Some(s) => Some(millis(s * 1000.0, "HeartbeatInterval")?),
            None => interval(
                entry.default_heartbeat_interval_timespan.as_deref(),
                entry.default_heartbeat_interval,
                "DefaultHeartbeatInterval",
            )?,
        },
    }
    .filter(|d| !d.is_zero());
    let trigger = match node
        .data_change_trigger
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("statusvalue") => DataChangeTrigger::StatusValue,
        Some("status") => DataChangeTrigger::Status,
        Some("statusvaluetimestamp") => DataChangeTrigger::StatusValueTimestamp,
        Some(other) => {
            return Err(format!(
            "DataChangeTrigger '{other}' is not one of Status, StatusValue, StatusValueTimestamp"
        ))
        }
    };
    let deadband = match (
        node.deadband_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        node.deadband_value,
    ) {
        (None, _) => None,
        (Some("absolute"), v) => Some(Deadband::Absolute(v.unwrap_or(1.0).max(0.0))),
        (Some("percent"), v) => Some(Deadband::Percent(v.unwrap_or(1.0).clamp(0.0, 100.0))),
        (Some(other), _) => {
            return Err(format!(
                "DeadbandType '{other}' is not one of Absolute, Percent"
            ))
        }
    };
    let field_name = node
        .data_set_field_id
        .clone()
        .or_else(|| node.display_name.clone())
        .filter(|n| !n.is_empty())
        .map(Arc::from)
        .unwrap_or_else(|| node_id.clone());
    let sampling_interval = interval(
        node.opc_sampling_interval_timespan.as_deref(),
        node.opc_sampling_interval,
        "OpcSamplingInterval",
    )?
    .unwrap_or(sampling_default);
    let queue_size = match node.queue_size {
        Some(q) => q.max(1),
        None if auto_queue => auto_queue_size(publishing, sampling_interval),
        None => 1,
    };
    let settings = NodeSettings {
        sampling_interval,
        browse_path,
        heartbeat,
        skip_first: node.skip_first.unwrap_or(false),
        queue_size,
        discard_new: node.discard_new.unwrap_or(false),
        trigger,
        deadband,
    };
    Ok(NodePlan {
        node_id,
        field_name,
        settings: cache.share(settings),
    })
}

/// Group, writer id, publishing interval (ms) and connection (as JSON): what makes two
/// entries one writer.
type WriterKey = (String, String, u128, String);
/// Node id and browse path: what makes two nodes of a writer the same.
type NodeKey = (Arc<str>, Option<Vec<String>>);

/// Turns configuration entries into writers. Entries naming the same group, writer and
/// connection are merged; a node listed twice in one writer is kept once.
pub fn plan(entries: &[PublishedNodesEntryModel]) -> Result<Vec<WriterPlan>, Vec<PlanError>> {
    let mut planner = Planner::default();
    for (index, entry) in entries.iter().enumerate() {
        planner.add(index, entry);
    }
    planner.finish()
}

/// The errors `plan` would report, without building the plans: validating a 100k-node
/// configuration then costs one entry's worth of memory, not the whole plan's.
pub fn check(entries: &[PublishedNodesEntryModel]) -> Result<(), Vec<PlanError>> {
    let mut cache = SettingsCache::default();
    let errors: Vec<PlanError> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| {
            entry_plan(entry, PlanDefaults::default(), &mut cache)
                .err()
                .map(|message| PlanError {
                    index,
                    endpoint: entry.endpoint_url.clone(),
                    message,
                })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `plan` an entry at a time, so a caller can decode entries one by one and never hold all
/// of them parsed (a parsed node is ≈ 700 bytes, its plan ≈ 100).
#[derive(Default)]
pub struct Planner {
    /// Each writer with the (node id, browse path) pairs it holds: a hash lookup, since a
    /// writer may hold 100k nodes.
    writers: BTreeMap<WriterKey, (WriterPlan, HashSet<NodeKey>)>,
    cache: SettingsCache,
    errors: Vec<PlanError>,
    defaults: PlanDefaults,
}

impl Planner {
    /// What the entries and nodes that leave a setting out get (the module's flags).
    pub fn with_defaults(defaults: PlanDefaults) -> Self {
        Self {
            defaults,
            ..Self::default()
        }
    }

    /// Plans entry number `index` of the configuration.
    pub fn add(&mut self, index: usize, entry: &PublishedNodesEntryModel) {
        let (template, nodes) = match entry_plan(entry, self.defaults, &mut self.cache) {
            Ok(planned) => planned,
            Err(message) => {
                self.errors.push(PlanError {
                    index,
                    endpoint: entry.endpoint_url.clone(),
                    message,
                });
                return;
            }
        };
        // The connection as JSON is part of the key: computed once per entry.
        let connection = serde_json::to_string(&template.connection).unwrap_or_default();
        for (publishing, node) in nodes {
            let key = (
                template.group.clone(),
                template.id.clone(),
                publishing
                    .unwrap_or(template.publishing_interval)
                    .as_millis(),
                connection.clone(),
            );
            let (writer, seen) = self.writers.entry(key).or_insert_with(|| {
                let mut w = WriterPlan {
                    nodes: Vec::new(),
                    ..template.clone()
                };
                if let Some(p) = publishing {
                    w.publishing_interval = p;
                }
                (w, HashSet::new())
            });
            if seen.insert((node.node_id.clone(), node.settings.browse_path.clone())) {
                writer.nodes.push(Arc::new(node));
            }
        }
    }

    /// The writers, or every entry that cannot be published.
    pub fn finish(self) -> Result<Vec<WriterPlan>, Vec<PlanError>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(self
            .writers
            .into_values()
            .map(|(w, _)| w)
            .filter(|w| !w.nodes.is_empty())
            .map(|mut w| {
                unique_field_names(&mut w.nodes);
                w.nodes.shrink_to_fit();
                w
            })
            .collect())
    }
}

/// One entry: the writer it describes (without nodes) and its nodes, each with its own
/// publishing interval when it names one.
#[allow(clippy::type_complexity)]
fn entry_plan(
    entry: &PublishedNodesEntryModel,
    defaults: PlanDefaults,
    cache: &mut SettingsCache,
) -> Result<(WriterPlan, Vec<(Option<Duration>, NodePlan)>), String> {
    let url = entry.endpoint_url.trim();
    if !url.starts_with("opc.tcp://") {
        return Err(format!("EndpointUrl '{url}' is not an opc.tcp:// URL"));
    }
    let mode = security(entry)?;
    let user = credential(entry)?;
    let connection = ConnectionModel {
        endpoint: EndpointModel {
            url: url.to_string(),
            security_mode: Some(mode),
            security_policy: entry
                .endpoint_security_policy
                .clone()
                .filter(|p| !p.is_empty()),
            ..Default::default()
        },
        user,
        ..Default::default()
    };
    let group = entry
        .data_set_writer_group
        .clone()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| {
            let user = connection
                .user
                .as_ref()
                .and_then(|c| c.value.as_ref())
                .and_then(|v| v.user.clone())
                .unwrap_or_default();
            let digest = stable_id("", &[url, mode.as_str(), &user]);
            crate::api::writer_group::default_writer_group(url, &digest)
        });
    let publishing = interval(
        entry.data_set_publishing_interval_timespan.as_deref(),
        entry.data_set_publishing_interval,
        "DataSetPublishingInterval",
    )?
    .unwrap_or(DEFAULT_PUBLISHING_INTERVAL);
    let sampling = interval(
        entry.data_set_sampling_interval_timespan.as_deref(),
        entry.data_set_sampling_interval,
        "DataSetSamplingInterval",
    )?
    .unwrap_or(DEFAULT_SAMPLING_INTERVAL);
    let messaging_mode = match entry
        .messaging_mode
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => defaults.messaging_mode,
        Some("pubsub") | Some("fullnetworkmessages") => MessagingMode::PubSub,
        Some("samples") | Some("fullsamples") => MessagingMode::Samples,
        Some(other) => {
            return Err(format!(
                "MessagingMode '{other}' is not supported (PubSub, Samples)"
            ))
        }
    };
    let template = WriterPlan {
        group,
        id: entry
            .data_set_writer_id
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| UNKNOWN_WRITER.into()),
        connection,
        publishing_interval: publishing,
        key_frame_count: entry.data_set_key_frame_count,
        messaging_mode,
        batch_size: entry.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1),
        batch_trigger_interval: interval(
            entry.batch_trigger_interval_timespan.as_deref(),
            entry.batch_trigger_interval,
            "BatchTriggerInterval",
        )?
        .unwrap_or(DEFAULT_BATCH_TRIGGER_INTERVAL),
        nodes: Vec::new(),
    };
    let legacy = entry.node_id.as_ref().map(|legacy| OpcNodeModel {
        id: Some(legacy.identifier.clone()),
        ..Default::default()
    });
    let listed = entry.opc_nodes.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(listed.len() + usize::from(legacy.is_some()));
    for (i, node) in listed.iter().chain(legacy.as_ref()).enumerate() {
        // A node's own publishing interval puts it in a subscription of its own rate.
        let own = interval(
            node.opc_publishing_interval_timespan.as_deref(),
            node.opc_publishing_interval,
            "OpcPublishingInterval",
        )
        .map_err(|m| format!("OpcNodes[{i}]: {m}"))?;
        let plan = node_plan(
            entry,
            node,
            sampling,
            own.unwrap_or(publishing),
            defaults.auto_queue_size,
            cache,
        )
        .map_err(|m| format!("OpcNodes[{i}]: {m}"))?;
        out.push((own, plan));
    }
    Ok((template, out))
}

/// Two nodes of one writer with the same display name would be one key twice in a data set
/// message, and a consumer would keep only one of the values: later ones get `_2`, `_3`, …
fn unique_field_names(nodes: &mut [Arc<NodePlan>]) {
    let mut used: HashSet<String> = HashSet::with_capacity(nodes.len());
    let mut dupes = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if !used.insert(n.field_name.to_string()) {
            dupes.push(i);
        }
    }
    for i in dupes {
        let base = nodes[i].field_name.to_string();
        let name = (2..)
            .map(|k| format!("{base}_{k}"))
            .find(|c| !used.contains(c))
            .unwrap_or(base);
        used.insert(name.clone());
        Arc::make_mut(&mut nodes[i]).field_name = name.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_published_nodes;

    fn plan_of(text: &str) -> Vec<WriterPlan> {
        plan(&parse_published_nodes(text).unwrap()).unwrap()
    }

    #[test]
    fn same_display_name_twice_gets_distinct_field_names() {
        let w = plan_of(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "OpcNodes": [
                { "Id": "i=1", "DisplayName": "T" }, { "Id": "i=2", "DisplayName": "T" },
                { "Id": "i=3", "DisplayName": "T_2" }, { "Id": "i=4", "DisplayName": "T" } ] }]"#,
        );
        let names: Vec<_> = w[0].nodes.iter().map(|n| &*n.field_name).collect();
        assert_eq!(names, ["T", "T_3", "T_2", "T_4"]);
    }

    #[test]
    fn legacy_2_5_entry_becomes_one_writer() {
        let w = plan_of(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "UseSecurity": true,
            "NodeId": { "Identifier": "nsu=urn:x;s=FastUInt1" } }]"#,
        );
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].connection.endpoint.security_mode,
            Some(SecurityMode::NotNone)
        );
        assert_eq!(&*w[0].nodes[0].node_id, "nsu=urn:x;s=FastUInt1");
        assert_eq!(w[0].id, UNKNOWN_WRITER);
        assert_eq!(w[0].publishing_interval, DEFAULT_PUBLISHING_INTERVAL);
    }

    #[test]
    fn timespans_win_and_node_intervals_split_writers() {
        let w = plan_of(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "DataSetWriterId": "w1",
            "DataSetPublishingInterval": 5000, "DataSetPublishingIntervalTimespan": "00:00:02",
            "DataSetSamplingInterval": 500,
            "OpcNodes": [
              { "Id": "i=1", "DisplayName": "one" },
              { "Id": "i=2", "OpcPublishingInterval": 100, "OpcSamplingIntervalTimespan": "00:00:00.050" },
              { "Id": "i=1", "DisplayName": "duplicate" },
              { "Id": "i=3", "HeartbeatInterval": 2, "DataSetFieldId": "three",
                "DeadbandType": "Percent", "DeadbandValue": 250 } ] }]"#,
        );
        assert_eq!(w.len(), 2);
        let slow = w
            .iter()
            .find(|w| w.publishing_interval == Duration::from_secs(2))
            .unwrap();
        let fast = w
            .iter()
            .find(|w| w.publishing_interval == Duration::from_millis(100))
            .unwrap();
        assert_eq!(slow.nodes.len(), 2, "{slow:?}");
        assert_eq!(&*slow.nodes[0].field_name, "one");
        assert_eq!(
            slow.nodes[0].settings.sampling_interval,
            Duration::from_millis(500)
        );
        assert_eq!(
            slow.nodes[1].settings.heartbeat,
            Some(Duration::from_secs(2))
        );
        assert_eq!(&*slow.nodes[1].field_name, "three");
        assert_eq!(
            slow.nodes[1].settings.deadband,
            Some(Deadband::Percent(100.0))
        );
        assert_eq!(
            fast.nodes[0].settings.sampling_interval,
            Duration::from_millis(50)
        );
    }

    /// Without `QueueSize` the server keeps every sample of one publishing interval and one
    /// more (OPC Publisher's `--aq`); an explicit `QueueSize` stays as given.
    #[test]
    fn queue_size_defaults_to_the_samples_of_one_publishing_interval() {
        let w = plan_of(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "DataSetPublishingInterval": 200,
            "OpcNodes": [
              { "Id": "i=1", "OpcSamplingInterval": 100 },
              { "Id": "i=2", "OpcSamplingInterval": 100, "QueueSize": 1 },
              { "Id": "i=3", "OpcSamplingInterval": 30 },
              { "Id": "i=4", "OpcSamplingInterval": 500 },
              { "Id": "i=5", "OpcSamplingInterval": 100, "OpcPublishingInterval": 1000 },
              { "Id": "i=6", "OpcSamplingInterval": 100, "QueueSize": 7 } ] }]"#,
        );
        let queue = |id: &str| {
            w.iter()
                .flat_map(|w| &w.nodes)
                .find(|n| &*n.node_id == id)
                .map(|n| n.settings.queue_size)
        };
        assert_eq!(queue("i=1"), Some(3));
        assert_eq!(queue("i=2"), Some(1));
        assert_eq!(queue("i=3"), Some(8));
        assert_eq!(queue("i=4"), Some(2));
        assert_eq!(
            queue("i=5"),
            Some(11),
            "the node's own publishing interval counts"
        );
        assert_eq!(queue("i=6"), Some(7));

        let mut fixed = Planner::with_defaults(PlanDefaults {
            auto_queue_size: false,
            ..PlanDefaults::default()
        });
        let entries = parse_published_nodes(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "DataSetPublishingInterval": 200,
            "OpcNodes": [ { "Id": "i=1", "OpcSamplingInterval": 100 },
              { "Id": "i=2", "OpcSamplingInterval": 100, "QueueSize": 3 } ] }]"#,
        )
        .unwrap();
        fixed.add(0, &entries[0]);
        let w = fixed.finish().unwrap();
        let sizes: Vec<u32> = w[0].nodes.iter().map(|n| n.settings.queue_size).collect();
        assert_eq!(
            sizes,
            [1, 3],
            "--aq false: one value, or the configured size"
        );
    }

    #[test]
    fn auto_queue_size_is_the_samples_per_publishing_interval_rounded_up_plus_one() {
        let ms = Duration::from_millis;
        assert_eq!(auto_queue_size(ms(200), ms(100)), 3);
        assert_eq!(auto_queue_size(ms(1000), ms(100)), 11);
        assert_eq!(auto_queue_size(ms(1000), ms(300)), 5);
        assert_eq!(auto_queue_size(ms(100), ms(100)), 2);
        assert_eq!(auto_queue_size(ms(100), ms(1000)), 2);
        assert_eq!(auto_queue_size(ms(0), ms(100)), 1);
        assert_eq!(auto_queue_size(ms(1000), ms(0)), 1);
        assert_eq!(
            auto_queue_size(Duration::from_secs(u64::MAX), Duration::from_nanos(1)),
            u32::MAX
        );
    }

    #[test]
    fn security_mode_overrides_use_security_and_credentials_map() {
        let w = plan_of(
            r#"[{ "EndpointUrl": "opc.tcp://plc:50000", "UseSecurity": false,
            "EndpointSecurityMode": "SignAndEncrypt", "DataSetWriterGroup": "g",
            "OpcAuthenticationMode": "UsernamePassword", "OpcAuthenticationUsername": "user1",
            "OpcAuthenticationPassword": "password", "OpcNodes": [{ "Id": "i=2258" }] }]"#,
        );
        assert_eq!(w[0].group, "g");
        assert_eq!(
            w[0].connection.endpoint.security_mode,
            Some(SecurityMode::SignAndEncrypt)
        );
        let user = w[0]
            .connection
            .user
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap();
        assert_eq!(user.user.as_deref(), Some("user1"));
    }

    #[test]
    fn merges_entries_of_the_same_writer_and_names_bad_entries() {
        let w = plan_of(
            r#"[
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterId": "w", "OpcNodes": [{ "Id": "i=1" }] },
            { "EndpointUrl": "opc.tcp://a:1", "DataSetWriterId": "w", "OpcNodes": [{ "Id": "i=2" }] }]"#,
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].nodes.len(), 2);
        let errors = plan(&parse_published_nodes(r#"[
            { "EndpointUrl": "opc.tcp://a:1", "OpcNodes": [{ "Id": "i=1" }] },
            { "EndpointUrl": "http://b", "OpcNodes": [{ "Id": "i=1" }] },
            { "EndpointUrl": "opc.tcp://c:1", "OpcNodes": [{ "DisplayName": "no id" }] },
            { "EndpointUrl": "opc.tcp://c:1", "DataSetPublishingIntervalTimespan": "soon", "OpcNodes": [{ "Id": "i=1" }] },
            { "EndpointUrl": "opc.tcp://c:1", "OpcAuthenticationMode": "UsernamePassword", "OpcNodes": [{ "Id": "i=1" }] }
        ]"#).unwrap()).unwrap_err();
        let indexes: Vec<_> = errors.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4]);
        assert!(
            errors[1].to_string().contains("OpcNodes[0]"),
            "{}",
            errors[1]
        );
    }
}
