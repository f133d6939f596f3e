//! OPC Publisher's topic templates (`--rtt`, `--ttt`, `--mdt`) and their variables.

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
}
