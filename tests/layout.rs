//! The crate boundaries ARCHITECTURE.md promises, checked on the dependency graph cargo
//! resolves: the contract crate does no I/O, the cloud service never links the edge, and the
//! benchmarks never link the binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// The normal (non-dev, non-build) dependencies of `package`, one crate name a line.
fn dependencies(package: &str) -> Vec<String> {
    dependencies_with(package, &[])
}

/// As [`dependencies`], with `features` of `package` turned on.
fn dependencies_with(package: &str, features: &[&str]) -> Vec<String> {
    let features = features.join(",");
    let mut args = vec![
        "tree",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-p",
        package,
    ];
    if !features.is_empty() {
        args.extend(["--features", features.as_str()]);
    }
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const IO_CRATES: [&str; 7] = [
    "tokio",
    "async-opcua",
    "rumqttc",
    "axum",
    "sqlx",
    "reqwest",
    "mio",
];

#[test]
fn the_contract_crate_does_no_io() {
    let deps = dependencies("iiot-api");
    for io in IO_CRATES {
        assert!(
            !deps.iter().any(|d| d == io),
            "iiot-api depends on {io}: {deps:?}"
        );
    }
    // The schema derive is for the front ends that publish OpenAPI, not for every user.
    assert!(
        !deps.iter().any(|d| d.starts_with("utoipa")),
        "utoipa is on by default: {deps:?}"
    );
}

/// The `openapi` feature adds utoipa's data types and derive macro, and still no I/O (the
/// workspace's utoipa entry would bring axum extras).
#[test]
fn the_contract_crate_with_schemas_does_no_io() {
    let deps = dependencies_with("iiot-api", &["openapi"]);
    assert!(deps.iter().any(|d| d == "utoipa"), "{deps:?}");
    for io in IO_CRATES {
        assert!(
            !deps.iter().any(|d| d == io),
            "iiot-api --features openapi depends on {io}: {deps:?}"
        );
    }
}

#[test]
fn the_twin_api_does_not_link_the_edge_module() {
    let deps = dependencies("iiot-twin-api");
    assert!(deps.iter().any(|d| d == "iiot-api"), "{deps:?}");
    for edge in ["iiot-module", "async-opcua", "async-opcua-client"] {
        assert!(
            !deps.iter().any(|d| d == edge),
            "iiot-twin-api depends on {edge}"
        );
    }
}

#[test]
fn the_bench_crate_does_not_link_the_binary() {
    let deps = dependencies("iiot-bench");
    assert!(deps.iter().any(|d| d == "iiot-module"), "{deps:?}");
    // The `iiot` package is the binary; clap and anyhow are its command line and error
    // reporting, which the bench crate gets as plain configs and answers with `BenchError`.
    for binary_side in ["iiot", "clap", "anyhow"] {
        assert!(
            !deps.iter().any(|d| d == binary_side),
            "iiot-bench depends on {binary_side}"
        );
    }
}

/// The GDS contract is shared by the vault (serving it) and the module (calling it): it links
/// the OPC UA stack and neither side, and the module never links the vault's storage.
#[test]
fn the_gds_contract_links_neither_side() {
    let deps = dependencies("iiot-gds");
    assert!(deps.iter().any(|d| d == "async-opcua"), "{deps:?}");
    for side in ["iiot-vault", "iiot-module", "sqlx", "axum", "rusqlite"] {
        assert!(
            !deps.iter().any(|d| d == side),
            "iiot-gds depends on {side}"
        );
    }
    let module = dependencies("iiot-module");
    assert!(module.iter().any(|d| d == "iiot-gds"), "{module:?}");
    for vault_side in ["iiot-vault", "sqlx", "rusqlite"] {
        assert!(
            !module.iter().any(|d| d == vault_side),
            "iiot-module depends on {vault_side}"
        );
    }
}
