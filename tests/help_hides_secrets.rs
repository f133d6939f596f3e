//! `--help` names the environment variables a command reads but never prints their values:
//! broker and database URLs carry passwords, and API keys and the vault's KEK are secrets.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const MARKER: &str = "M4rker-s3cret-7f3a";

/// Every variable the commands read that may hold a secret, set to a value carrying the marker.
fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        ("IIOT_MQTT_URL", format!("mqtt://user:{MARKER}@broker:1883")),
        (
            "IIOT_DATABASE_URL",
            format!("postgres://user:{MARKER}@db/iiot"),
        ),
        ("IIOT_USERS", format!("operator:{MARKER}")),
        ("IIOT_API_KEY", MARKER.to_string()),
        ("IIOT_KEK", MARKER.to_string()),
    ]
}

fn help(command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_iiot"))
        .args([command, "--help"])
        .envs(secret_env())
        .output()
        .expect("run iiot");
    assert!(out.status.success(), "iiot {command} --help failed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_shows_env_names_but_not_secret_values() {
    for (command, names) in [
        ("twin-api", &["IIOT_MQTT_URL", "IIOT_DATABASE_URL"][..]),
        ("module", &["IIOT_MQTT_URL", "IIOT_API_KEY"][..]),
        ("vault", &["IIOT_DATABASE_URL", "IIOT_KEK"][..]),
        ("plc-sim", &["IIOT_USERS"][..]),
    ] {
        let text = help(command);
        assert!(
            !text.contains(MARKER),
            "iiot {command} --help shows a secret:\n{text}"
        );
        for name in names {
            assert!(
                text.contains(&format!("[env: {name}]")),
                "iiot {command} --help does not name {name}:\n{text}"
            );
        }
    }
}
