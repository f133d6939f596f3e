//! Twin documents: tags, desired and reported properties with their versions and metadata, the
//! merge-patch rules (a `null` deletes a member) and IoT Hub's limits.
//!
//! Kept free of I/O so the rules can be tested alone; the store saves a [`TwinState`] as JSON
//! beside its identity and the routes render it with [`TwinState::properties_json`].

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::HubError;

/// Deepest nesting of objects in tags, desired or reported (IoT Hub's limit).
pub const MAX_DEPTH: usize = 10;
/// Largest desired or reported section, as compact JSON without metadata.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;
/// Largest tags section.
pub const MAX_TAGS_BYTES: usize = 8 * 1024;
/// Longest member name, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest string value, in bytes.
pub const MAX_STRING_BYTES: usize = 4 * 1024;

/// One of desired or reported: the members, a metadata tree mirroring them, and a version that
/// grows with every change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub version: u64,
    pub props: Map<String, Value>,
    pub meta: Map<String, Value>,
}

/// What the hub keeps of a twin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinState {
    /// Grows with every change of tags, desired or reported.
    pub version: u64,
    /// Grows with every change the service side makes (tags, desired): the twin's etag, so a
    /// device reporting every second does not fail an operator's conditional update.
    pub etag_version: u64,
    pub tags: Map<String, Value>,
    pub desired: Section,
    pub reported: Section,
}

/// Which section a change goes to; desired members also record the version that set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Desired,
    Reported,
}

impl TwinState {
    /// A new identity's twin: version 1, empty sections at version 1.
    pub fn new(now: &str) -> Self {
        let section = || Section {
            version: 1,
            props: Map::new(),
            meta: last_updated(now, None),
        };
        Self {
            version: 1,
            etag_version: 1,
            tags: Map::new(),
            desired: section(),
            reported: section(),
        }
    }

    /// The twin's etag: base64 of its service-side version as 8 bytes, IoT Hub's form.
    pub fn etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.etag_version.to_be_bytes())
    }

    /// Merges a service-side patch: tags and desired members; `null` deletes. Returns whether
    /// anything changed (an empty patch changes nothing and keeps every version).
    pub fn patch(
        &mut self,
        tags: Option<&Map<String, Value>>,
        desired: Option<&Map<String, Value>>,
        now: &str,
    ) -> Result<bool, HubError> {
        let mut next = self.clone();
        let mut changed = false;
        if let Some(t) = tags {
            check_members(t, 0, "tags")?;
            let before = next.tags.clone();
            merge_plain(&mut next.tags, t);
            changed |= before != next.tags;
        }
        if let Some(d) = desired {
            let d = without_read_only(d);
            check_members(&d, 0, "properties.desired")?;
            changed |= next.apply(Side::Desired, &d, now);
        }
        if !changed {
            return Ok(false);
        }
        next.check_sizes()?;
        next.version += 1;
        next.etag_version += 1;
        *self = next;
        Ok(true)
    }

    /// Replaces tags and desired wholesale (`PUT /twins/{id}`).
    pub fn replace(
        &mut self,
        tags: &Map<String, Value>,
        desired: &Map<String, Value>,
        now: &str,
    ) -> Result<(), HubError> {
        let desired = without_read_only(desired);
        check_members(tags, 0, "tags")?;
        check_members(&desired, 0, "properties.desired")?;
        let mut next = self.clone();
        next.tags = Map::new();
        merge_plain(&mut next.tags, tags);
        // A replace is a new desired version even when it empties the section: devices
        // compare `$version` to learn that something changed.
        let version = next.desired.version + 1;
        next.desired.props = Map::new();
        next.desired.meta = Map::new();
        merge_with_meta(
            &mut next.desired.props,
            &mut next.desired.meta,
            &desired,
            now,
            Some(version),
        );
        next.desired.version = version;
        next.desired.meta.extend(last_updated(now, Some(version)));
        next.check_sizes()?;
        next.version += 1;
        next.etag_version += 1;
        *self = next;
        Ok(())
    }

    /// Merges a device's reported patch. Returns whether anything changed.
    pub fn report(&mut self, patch: &Map<String, Value>, now: &str) -> Result<bool, HubError> {
        check_members(patch, 0, "properties.reported")?;
        let mut next = self.clone();
        if !next.apply(Side::Reported, patch, now) {
            return Ok(false);
        }
        next.check_sizes()?;
        next.version += 1;
        *self = next;
        Ok(true)
    }

    fn apply(&mut self, side: Side, patch: &Map<String, Value>, now: &str) -> bool {
        if patch.is_empty() {
            return false;
        }
        let section = match side {
            Side::Desired => &mut self.desired,
            Side::Reported => &mut self.reported,
        };
        let version = section.version + 1;
        let stamp_version = (side == Side::Desired).then_some(version);
        merge_with_meta(
            &mut section.props,
            &mut section.meta,
            patch,
            now,
            stamp_version,
        );
        // A patch that only deletes absent members or sets members to what they are still
        // counts as a write in IoT Hub; only an empty patch is no change.
        section.version = version;
        section.meta.extend(last_updated(now, stamp_version));
        true
    }

    fn check_sizes(&self) -> Result<(), HubError> {
        let size = |m: &Map<String, Value>| Value::Object(m.clone()).to_string().len();
        let checks = [
            ("tags", size(&self.tags), MAX_TAGS_BYTES),
            (
                "properties.desired",
                size(&self.desired.props),
                MAX_PROPERTIES_BYTES,
            ),
            (
                "properties.reported",
                size(&self.reported.props),
                MAX_PROPERTIES_BYTES,
            ),
        ];
        for (name, len, max) in checks {
            if len > max {
                return Err(HubError::Argument(format!(
                    "{name} would be {len} bytes, at most {max} are allowed"
                )));
            }
        }
        Ok(())
    }

    /// `{"desired": {…, "$metadata", "$version"}, "reported": {…}}` as the REST API and the
    /// device endpoint show it.
    pub fn properties_json(&self) -> Value {
        serde_json::json!({
            "desired": section_json(&self.desired),
            "reported": section_json(&self.reported),
        })
    }
}

/// A section as shown: its members, `$metadata` and `$version`.
pub fn section_json(s: &Section) -> Value {
    let mut out = s.props.clone();
    out.insert("$metadata".into(), Value::Object(s.meta.clone()));
    out.insert("$version".into(), s.version.into());
    Value::Object(out)
}

fn last_updated(now: &str, version: Option<u64>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("$lastUpdated".into(), now.into());
    if let Some(v) = version {
        m.insert("$lastUpdatedVersion".into(), v.into());
    }
    m
}

/// `$version` and `$metadata` come back in bodies a client read and edited; they are the
/// hub's to set, so they are dropped rather than refused.
fn without_read_only(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "$version" | "$metadata"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_plain(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_plain(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_with_meta(
    props: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    now: &str,
    version: Option<u64>,
) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                props.remove(k);
                meta.remove(k);
            }
            Value::Object(p) => {
                let slot = props
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                    meta.remove(k);
                }
                let m = meta
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !m.is_object() {
                    *m = Value::Object(Map::new());
                }
                if let (Value::Object(t), Value::Object(mt)) = (slot, m) {
                    merge_with_meta(t, mt, p, now, version);
                    mt.extend(last_updated(now, version));
                }
            }
            other => {
                props.insert(k.clone(), other.clone());
                meta.insert(k.clone(), Value::Object(last_updated(now, version)));
            }
        }
    }
}

/// Member names and nesting as IoT Hub allows them: names without `.`, `$`, space or control
/// characters and at most 1 KB, objects nested at most [`MAX_DEPTH`] deep below the section
/// (`depth` 0 is the section itself), strings ≤ 4 KB.
pub fn check_members(m: &Map<String, Value>, depth: usize, path: &str) -> Result<(), HubError> {
    if depth > MAX_DEPTH {
        return Err(HubError::Argument(format!(
            "{path} nests objects deeper than {MAX_DEPTH} levels"
        )));
    }
    for (k, v) in m {
        if k.is_empty()
            || k.len() > MAX_KEY_BYTES
            || k.chars()
                .any(|c| c == '.' || c == '$' || c == ' ' || c.is_control())
        {
            return Err(HubError::Argument(format!(
                "{path}: member name '{}' is not allowed: 1 to {MAX_KEY_BYTES} bytes without '.', '$', spaces or control characters",
                k.chars().take(64).collect::<String>().escape_default()
            )));
        }
        check_value(v, depth, &format!("{path}.{k}"))?;
    }
    Ok(())
}

fn check_value(v: &Value, depth: usize, path: &str) -> Result<(), HubError> {
    match v {
        Value::Object(o) => check_members(o, depth + 1, path),
        Value::Array(a) => a.iter().try_for_each(|e| check_value(e, depth + 1, path)),
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(HubError::Argument(format!(
            "{path}: a string value is at most {MAX_STRING_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_desired_patch_merges_deletes_and_stamps_metadata() {
        let mut t = TwinState::new("T0");
        assert!(t
            .patch(
                None,
                Some(&obj(json!({"a": 1, "b": {"c": 2, "d": 3}}))),
                "T1"
            )
            .unwrap());
        assert_eq!((t.version, t.desired.version, t.etag_version), (2, 2, 2));
        assert!(t
            .patch(
                None,
                Some(&obj(json!({"a": null, "b": {"c": null, "e": "x"}}))),
                "T2"
            )
            .unwrap());
        let d = section_json(&t.desired);
        assert_eq!(d["b"], json!({"d": 3, "e": "x"}));
        assert!(d.get("a").is_none());
        assert_eq!(d["$version"], 3);
        assert_eq!(d["$metadata"]["$lastUpdated"], "T2");
        assert_eq!(d["$metadata"]["b"]["e"]["$lastUpdatedVersion"], 3);
        assert_eq!(d["$metadata"]["b"]["d"]["$lastUpdated"], "T1");
        assert!(d["$metadata"]["b"].get("c").is_none());
        // Read-only members sent back are ignored; an empty patch changes nothing.
        assert!(!t
            .patch(
                None,
                Some(&obj(json!({"$version": 9, "$metadata": {}}))),
                "T3"
            )
            .unwrap());
        assert_eq!(t.version, 3);
    }

    #[test]
    fn reported_changes_move_the_version_but_not_the_etag() {
        let mut t = TwinState::new("T0");
        let etag = t.etag();
        assert_eq!(etag, "AAAAAAAAAAE=");
        assert!(t.report(&obj(json!({"temp": 21.5})), "T1").unwrap());
        assert_eq!((t.version, t.reported.version), (2, 2));
        assert_eq!(t.etag(), etag);
        assert!(t
            .patch(Some(&obj(json!({"site": "p7"}))), None, "T2")
            .unwrap());
        assert_ne!(t.etag(), etag);
        assert_eq!(t.tags, obj(json!({"site": "p7"})));
    }

    #[test]
    fn replace_swaps_tags_and_desired_whole() {
        let mut t = TwinState::new("T0");
        t.patch(
            Some(&obj(json!({"a": 1, "b": 2}))),
            Some(&obj(json!({"x": 1}))),
            "T1",
        )
        .unwrap();
        t.replace(&obj(json!({"c": 3})), &obj(json!({"y": {"z": 1}})), "T2")
            .unwrap();
        assert_eq!(t.tags, obj(json!({"c": 3})));
        assert_eq!(t.desired.props, obj(json!({"y": {"z": 1}})));
        assert!(t.desired.meta.get("x").is_none());
        assert_eq!(t.desired.version, 3);
        // Emptying the section is a change devices must hear of.
        t.replace(&Map::new(), &Map::new(), "T3").unwrap();
        assert!(t.desired.props.is_empty());
        assert_eq!(t.desired.version, 4);
    }

    #[test]
    fn limits_are_refused_and_leave_the_twin_as_it_was() {
        let mut t = TwinState::new("T0");
        let before = t.clone();
        for bad in [
            json!({"a.b": 1}),
            json!({"$x": 1}),
            json!({"a b": 1}),
            json!({"": 1}),
            json!({"s": "x".repeat(MAX_STRING_BYTES + 1)}),
        ] {
            assert!(
                t.patch(None, Some(&obj(bad.clone())), "T1").is_err(),
                "{bad}"
            );
        }
        // Ten objects nested below the section are allowed (IoT Hub's example), eleven not.
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 2 {
            deep = json!({ "n": deep });
        }
        assert!(t.patch(None, Some(&obj(deep.clone())), "T1").is_err());
        let ok = deep["n"].clone();
        assert!(t.patch(None, Some(&obj(ok)), "T1").is_ok());
        let mut t = before.clone();
        let big: Map<String, Value> = (0..40)
            .map(|i| (format!("k{i}"), Value::String("v".repeat(1000))))
            .collect();
        let err = t.patch(None, Some(&big), "T1").unwrap_err();
        assert!(err.to_string().contains("at most 32768"), "{err}");
        assert_eq!(t, before);
        let tags: Map<String, Value> = (0..9)
            .map(|i| (format!("k{i}"), Value::String("v".repeat(1000))))
            .collect();
        assert!(t.patch(Some(&tags), None, "T1").is_err());
    }
}
