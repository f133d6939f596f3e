//! iiot-module node id strings: `Namespaces::parse` and `parse_expanded` against a session's
//! namespace array, then every `NamespaceFormat` of what was parsed must parse back to the
//! same node (the API hands node ids out in these forms and takes them back).
#![no_main]

use iiot_module::api::NamespaceFormat;
use libfuzzer_sys::fuzz_target;

const FORMATS: [NamespaceFormat; 4] = [
    NamespaceFormat::Uri,
    NamespaceFormat::Index,
    NamespaceFormat::Expanded,
    NamespaceFormat::ExpandedWithNamespace0,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ns = iiot_fuzz::namespaces();
    for parsed in [ns.parse(text), ns.parse_expanded(text)] {
        iiot_fuzz::trace!("{text:?}: {parsed:?}");
        let Ok(id) = parsed else {
            continue;
        };
        for format in FORMATS {
            let written = ns.format(&id, format);
            let back = ns.parse(&written);
            assert_eq!(
                back.as_ref().ok(),
                Some(&id),
                "{text:?} parsed to {id:?}, written as {format:?} {written:?}, read back as {back:?}"
            );
        }
    }
});
