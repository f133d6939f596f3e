//! Every MQTT topic of the edge↔cloud contract, built in one place so the module and the
//! twin API cannot drift apart: a module's method, state and event topics under its `{root}`,
//! and OPC Publisher's telemetry templates (`--rtt`, `--ttt`, `--mdt`) with their variables.
//!
//! A module announces the telemetry pattern it uses in its state message
//! ([`crate::ModuleStateModel::telemetry_topic`]); consumers subscribe with
//! [`TelemetryPattern::filter`] and read the writer group back with
//! [`TelemetryPattern::writer_group`], instead of assuming the default template.

/// Topic level under `{root}` where methods are mounted; the method name is the next level.
pub const METHODS_LEVEL: &str = "methods";
/// Topic level under `{root}` carrying the module's retained state (DESIGN flow 4).
pub const STATE_LEVEL: &str = "state";
/// Topic level under `{root}` carrying discovery events.
pub const EVENTS_LEVEL: &str = "events";
/// Filter for the state message of every module.
pub const ALL_MODULE_STATES: &str = "+/state";
/// Filter for the events of every module.
pub const ALL_MODULE_EVENTS: &str = "+/events";

/// The method, state and event topics of one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleTopics {
    root: String,
}

impl ModuleTopics {
    pub fn new(root: impl Into<String>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// `{root}/methods/{method}`: where a request for `method` is published.
    pub fn method(&self, method: &str) -> String {
        format!("{}/{METHODS_LEVEL}/{method}", self.root)
    }

    /// `{root}/methods/+`: what the module subscribes to for requests.
    pub fn methods_filter(&self) -> String {
        self.method("+")
    }

    /// The method name (last level, possibly with MQTT 3.1.1's `?$rid=` suffix) of a request
    /// topic of this module.
    pub fn method_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix('/')?
            .strip_prefix(METHODS_LEVEL)?
            .strip_prefix('/')
    }

    /// `{root}/state`.
    pub fn state(&self) -> String {
        format!("{}/{STATE_LEVEL}", self.root)
    }

    /// `{root}/events`.
    pub fn events(&self) -> String {
        format!("{}/{EVENTS_LEVEL}", self.root)
    }

    /// The telemetry pattern of a module that announces none (an older module, or OPC
    /// Publisher itself): OPC Publisher's default telemetry template under this root.
    pub fn default_telemetry(&self) -> TelemetryPattern {
        TelemetryPattern::new(format!("{}/messages/{{WriterGroup}}", self.root))
    }
}

/// The module root of a `{root}/state` topic.
pub fn state_topic_root(topic: &str) -> Option<&str> {
    topic.strip_suffix(STATE_LEVEL)?.strip_suffix('/')
}

/// The module root of a `{root}/events` topic.
pub fn events_topic_root(topic: &str) -> Option<&str> {
    topic.strip_suffix(EVENTS_LEVEL)?.strip_suffix('/')
}

/// The templates in use; defaults are OPC Publisher 2.9's, except that metadata gets a topic
/// of its own per writer so that each writer's retained `ua-metadata` survives beside the
/// others (one retained message per topic).
#[derive(Debug, Clone)]
pub struct TopicTemplates {
    pub root: String,
    pub telemetry: String,
    pub metadata: String,
    pub site_id: Option<String>,
}

impl Default for TopicTemplates {
    fn default() -> Self {
        Self {
            root: "{PublisherId}".into(),
            telemetry: "{RootTopic}/messages/{WriterGroup}".into(),
            metadata: "{TelemetryTopic}/metadata/{DataSetWriter}".into(),
            site_id: None,
        }
    }
}

/// What a writer's topics are made of.
pub struct TopicVars<'a> {
    pub publisher_id: &'a str,
    pub writer_group: &'a str,
    pub data_set_writer: &'a str,
    pub encoding: &'a str,
}

impl TopicTemplates {
    pub fn root_topic(&self, publisher_id: &str) -> String {
        let site = self.site_id.as_deref().unwrap_or("$default");
        self.root
            .replace("{PublisherId}", publisher_id)
            .replace("{SiteId}", site)
    }

    /// (telemetry topic, metadata topic) of a writer.
    pub fn writer_topics(&self, v: &TopicVars<'_>) -> (String, String) {
        let root = self.root_topic(v.publisher_id);
        let fill = |t: &str| {
            t.replace("{RootTopic}", &root)
                .replace("{PublisherId}", v.publisher_id)
                .replace("{SiteId}", self.site_id.as_deref().unwrap_or("SiteId"))
                .replace("{Encoding}", v.encoding)
                .replace("{DataSetClassId}", "00000000-0000-0000-0000-000000000000")
                .replace("{DataSetWriter}", v.data_set_writer)
                .replace("{DataSetWriterName}", v.data_set_writer)
                .replace("{WriterGroup}", v.writer_group)
                .replace("{DataSetWriterGroup}", v.writer_group)
        };
        let telemetry = fill(&self.telemetry);
        let metadata = fill(&self.metadata.replace("{TelemetryTopic}", &telemetry));
        (telemetry, metadata)
    }

    /// The telemetry pattern of this publisher as it announces it: the telemetry template
    /// with the module-wide variables filled in and the per-writer ones left as `{Name}`.
    pub fn telemetry_pattern(&self, publisher_id: &str) -> TelemetryPattern {
        let root = self.root_topic(publisher_id);
        TelemetryPattern::new(
            self.telemetry
                .replace("{RootTopic}", &root)
                .replace("{PublisherId}", publisher_id)
                .replace("{SiteId}", self.site_id.as_deref().unwrap_or("SiteId")),
        )
    }
}

/// A telemetry topic template with the per-writer variables still in it, e.g.
/// `pub1/messages/{WriterGroup}`. Variable values may contain `/` (a writer group named after
/// an endpoint URL does), so a variable matches any non-empty run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPattern {
    text: String,
}

/// The variables that name a message's writer group.
const GROUP_VARIABLES: &[&str] = &["{WriterGroup}", "{DataSetWriterGroup}"];

enum Piece<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

impl TelemetryPattern {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The MQTT filter that receives every topic of the pattern (and whatever else lies under
    /// its fixed prefix): the levels before the first variable, then `#`.
    pub fn filter(&self) -> String {
        let fixed: Vec<&str> = self
            .text
            .split('/')
            .take_while(|level| !level.contains('{'))
            .collect();
        if fixed.is_empty() {
            "#".into()
        } else {
            format!("{}/#", fixed.join("/"))
        }
    }

    fn pieces(&self) -> Vec<Piece<'_>> {
        let mut out = Vec::new();
        let mut rest = self.text.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c + 1) else {
                break;
            };
            if open > 0 {
                out.push(Piece::Literal(&rest[..open]));
            }
            out.push(Piece::Variable(&rest[open..close]));
            rest = &rest[close..];
        }
        if !rest.is_empty() {
            out.push(Piece::Literal(rest));
        }
        out
    }

    /// Whether `topic` is one of this pattern's, and if so the writer group it names
    /// (`Some(None)` when the pattern has no group variable). Where a group could be cut
    /// several ways, the longest group wins (metadata topics below a telemetry topic then
    /// read as a longer group, and their payload tells them apart).
    pub fn writer_group<'t>(&self, topic: &'t str) -> Option<Option<&'t str>> {
        fn walk<'t>(pieces: &[Piece<'_>], topic: &'t str, at: usize) -> Option<Option<&'t str>> {
            let Some((first, rest)) = pieces.split_first() else {
                return (at == topic.len()).then_some(None);
            };
            match first {
                Piece::Literal(l) => topic[at..]
                    .starts_with(l)
                    .then(|| walk(rest, topic, at + l.len()))
                    .flatten(),
                Piece::Variable(name) => (at + 1..=topic.len())
                    .rev()
                    .filter(|e| topic.is_char_boundary(*e))
                    .find_map(|end| {
                        walk(rest, topic, end).map(|found| {
                            if GROUP_VARIABLES.contains(name) {
                                Some(&topic[at..end])
                            } else {
                                found
                            }
                        })
                    }),
            }
        }
        walk(&self.pieces(), topic, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_opc_publisher() {
        let t = TopicTemplates::default();
        let (tel, meta) = t.writer_topics(&TopicVars {
            publisher_id: "pub1",
            writer_group: "line1",
            data_set_writer: "w7",
            encoding: "Json",
        });
        assert_eq!(tel, "pub1/messages/line1");
        assert_eq!(meta, "pub1/messages/line1/metadata/w7");
        let t = TopicTemplates {
            root: "{SiteId}/{PublisherId}".into(),
            telemetry: "{RootTopic}/{Encoding}/{DataSetWriterGroup}/{DataSetWriter}".into(),
            metadata: "{TelemetryTopic}".into(),
            site_id: Some("plant".into()),
        };
        let (tel, meta) = t.writer_topics(&TopicVars {
            publisher_id: "p",
            writer_group: "g",
            data_set_writer: "w",
            encoding: "Json",
        });
        assert_eq!(tel, "plant/p/Json/g/w");
        assert_eq!(meta, tel);
    }

    #[test]
    fn module_topics() {
        let t = ModuleTopics::new("pub1");
        assert_eq!(t.method("ValueRead"), "pub1/methods/ValueRead");
        assert_eq!(t.methods_filter(), "pub1/methods/+");
        assert_eq!(t.method_of("pub1/methods/ValueRead"), Some("ValueRead"));
        assert_eq!(t.method_of("pub2/methods/ValueRead"), None);
        assert_eq!(t.method_of("pub1/methodsX/ValueRead"), None);
        assert_eq!(t.state(), "pub1/state");
        assert_eq!(state_topic_root("a/b/state"), Some("a/b"));
        assert_eq!(state_topic_root("a/bstate"), None);
        assert_eq!(events_topic_root(&t.events()), Some("pub1"));
    }

    #[test]
    fn telemetry_patterns_give_filter_and_group() {
        let p = TopicTemplates::default().telemetry_pattern("pub1");
        assert_eq!(p, ModuleTopics::new("pub1").default_telemetry());
        assert_eq!(p.filter(), "pub1/messages/#");
        assert_eq!(p.writer_group("pub1/messages/line1"), Some(Some("line1")));
        // Unnamed groups carry their endpoint URL, slashes included.
        let g = "opc.tcp://plc:50000/_0badcafe";
        assert_eq!(p.writer_group(&format!("pub1/messages/{g}")), Some(Some(g)));
        assert_eq!(p.writer_group("pub2/messages/line1"), None);
        assert_eq!(p.writer_group("pub1/messages/"), None);

        let t = TopicTemplates {
            root: "{SiteId}/{PublisherId}".into(),
            telemetry: "plant/{RootTopic}/{WriterGroup}/{Encoding}".into(),
            metadata: "{TelemetryTopic}/meta".into(),
            site_id: Some("s1".into()),
        };
        let p = t.telemetry_pattern("p");
        assert_eq!(p.as_str(), "plant/s1/p/{WriterGroup}/{Encoding}");
        assert_eq!(p.filter(), "plant/s1/p/#");
        let (tel, _) = t.writer_topics(&TopicVars {
            publisher_id: "p",
            writer_group: "g/1",
            data_set_writer: "w",
            encoding: "Json",
        });
        assert_eq!(p.writer_group(&tel), Some(Some("g/1")));
        let no_group = TelemetryPattern::new("{Encoding}/x");
        assert_eq!(no_group.filter(), "#");
        assert_eq!(no_group.writer_group("Json/x"), Some(None));
    }
}
