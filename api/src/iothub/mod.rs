//! IoT Hub's device and service protocol, as far as both sides of it live here: the hub in
//! `iiot-twin-api` and the module connecting to a hub as an IoT Hub module.
//!
//! `sas` is the shared access signature both verify and make, `topics` the MQTT dialect
//! (which topics an identity may use, property bags, the topics the hub sends on), and
//! `connection_string` the `HostName=…;DeviceId=…` strings devices and modules are given.

pub mod connection_string;
pub mod sas;
pub mod topics;
