//! How a module names the writer group and data set writer of a `publishednodes.json` entry
//! that names neither. Consumers (the twin API's telemetry stream) must tie published
//! messages back to configuration entries, so both sides use these rules.

/// The data set writer id of an entry without `DataSetWriterId`, as OPC Publisher writes it.
pub const UNKNOWN_WRITER: &str = "<<UnknownDataSet>>";

/// Hex digits of the entry's digest that end a default group name.
const DIGEST_DIGITS: usize = 8;

/// The group of an entry without `DataSetWriterGroup`: its endpoint URL, `_`, and the first
/// eight hex digits of a digest over URL, security mode and user (computed by the module, so
/// entries differing only in credentials stay apart).
pub fn default_writer_group(endpoint_url: &str, digest_hex: &str) -> String {
    let digits = digest_hex.get(..DIGEST_DIGITS).unwrap_or(digest_hex);
    format!("{endpoint_url}_{digits}")
}

/// The endpoint URL of a group named by [`default_writer_group`], if it is one.
pub fn default_group_url(group: &str) -> Option<&str> {
    let cut = group.len().checked_sub(DIGEST_DIGITS + 1)?;
    if !group.is_char_boundary(cut) {
        return None;
    }
    let (url, suffix) = group.split_at(cut);
    let digits = suffix.strip_prefix('_')?;
    digits.bytes().all(|b| b.is_ascii_hexdigit()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_groups_round_trip() {
        let g = default_writer_group("opc.tcp://plc:50000", "0badcafe12345678");
        assert_eq!(g, "opc.tcp://plc:50000_0badcafe");
        assert_eq!(default_group_url(&g), Some("opc.tcp://plc:50000"));
        assert_eq!(default_group_url("line1"), None);
        assert_eq!(default_group_url("opc.tcp://plc_notahex!"), None);
    }
}
