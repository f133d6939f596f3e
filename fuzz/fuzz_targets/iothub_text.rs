//! The IoT Hub texts a device or a service client sends the hub, before anything is
//! authenticated: MQTT topics and property bags, subscription filters, SAS tokens and
//! connection strings (`iiot_api::iothub`). Byte 0 picks the parser; the rest is the text.
//! None may panic; a property bag that parses must encode and parse back to itself, and a
//! connection string's `Debug` must never show its key.
#![no_main]

use std::str::FromStr;

use iiot_module::api::iothub::connection_string::ConnectionString;
use iiot_module::api::iothub::sas::SasToken;
use iiot_module::api::iothub::topics::{
    classify_publish, classify_subscription, Identity, PropertyBag,
};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let device = Identity {
        device_id: "dev-1",
        module_id: None,
    };
    let module = Identity {
        device_id: "gw",
        module_id: Some("pub"),
    };
    match pick % 5 {
        0 => {
            iiot_fuzz::trace!("{:?}", classify_publish(&device, &text));
            iiot_fuzz::trace!("{:?}", classify_publish(&module, &text));
        }
        1 => {
            if let Ok(bag) = PropertyBag::parse(&text) {
                let again = PropertyBag::parse(&bag.encode()).expect("an encoded bag parses");
                assert_eq!(again, bag, "a bag survives encode and parse");
                let _ = bag.split();
            }
        }
        2 => {
            iiot_fuzz::trace!("{:?}", classify_subscription(&device, &text));
            iiot_fuzz::trace!("{:?}", classify_subscription(&module, &text));
        }
        3 => {
            if let Ok(t) = SasToken::parse(&text) {
                let _ = t.verify(KEY, 0);
                let _ = t.covers("hub1.local", "/devices/dev-1");
                let _ = t.resource();
            }
        }
        _ => {
            if let Ok(c) = ConnectionString::from_str(&text) {
                let key = c.shared_access_key();
                let shown = format!("{c:?}");
                assert!(key.len() < 4 || !shown.contains(key), "Debug shows the key");
                let _ = (c.resource(), c.username("x"), c.endpoint_host());
            }
        }
    }
});
