//! iiot-module network scan parsers (`discovery::scan::parse_address_ranges`,
//! `parse_port_ranges`) and `targets`, which must refuse any plan above `MAX_PROBES`.
//! Input: address ranges, a newline, port ranges.
#![no_main]

use iiot_module::discovery::scan::{parse_address_ranges, parse_port_ranges, targets, MAX_PROBES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (addresses, ports) = text.split_once('\n').unwrap_or((text, "4840"));
    let ranges = parse_address_ranges(addresses);
    let port_ranges = parse_port_ranges(ports);
    iiot_fuzz::trace!("{ranges:?} {port_ranges:?}");
    let (Ok(ranges), Ok(port_ranges)) = (ranges, port_ranges) else {
        return;
    };
    let mut hosts = 0u64;
    for r in &ranges {
        assert!(
            r.first <= r.last,
            "{addresses:?} gave the empty range {r:?}"
        );
        hosts += r.len();
    }
    let mut port_count = 0u64;
    for &(a, b) in &port_ranges {
        assert!(a != 0 && a <= b, "{ports:?} gave the port range {a}-{b}");
        port_count += u64::from(b - a) + 1;
    }
    let expected = hosts.saturating_mul(port_count);
    // Building a plan near MAX_PROBES allocates tens of MB; fuzz the refusal and small plans.
    if expected > MAX_PROBES || expected <= 4096 {
        match targets(&ranges, &port_ranges) {
            Ok(t) => assert_eq!(t.len() as u64, expected),
            Err(_) => assert!(
                expected > MAX_PROBES,
                "a plan of {expected} probes was refused"
            ),
        }
    }
});
