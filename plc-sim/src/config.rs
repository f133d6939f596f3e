//! Simulator configuration: what the address space contains and which server limits apply.

use std::path::PathBuf;

use crate::PlcSimError;

/// Upper bound on generated variables (Fast + Slow + Tree leaves): beyond this a typo in a
/// test parameter would eat the machine's memory instead of failing fast.
pub const MAX_GENERATED_NODES: u64 = 10_000_000;

/// Fastest period of the `Fast/*` and `Slow/*` counters, in milliseconds. The server lets
/// clients sample as fast as the counters change (down to this), so that a client can see
/// every value; a faster counter would need a sampling rate no OPC UA server loop keeps.
pub const MIN_RATE_MS: u64 = 10;

/// async-opcua's own minimum sampling interval, which the server keeps unless a counter is
/// faster.
const DEFAULT_MIN_SAMPLING_INTERVAL_MS: u64 =
    opcua::server::constants::MIN_SAMPLING_INTERVAL_MS as u64;

/// `tracing` filter directives that keep async-opcua quiet enough for test logs.
///
/// async-opcua logs every accepted connection, certificate check and session event at
/// `info`, which drowns a gateway test that opens hundreds of sessions; its warnings and
/// errors (rejected certificates, bad passwords, decoding failures) are still shown.
/// Meant to be appended to the caller's own `EnvFilter`.
pub const LOG_FILTER_DIRECTIVES: &str = "opcua_server=warn,opcua_client=warn,opcua_core=warn,\
opcua_crypto=warn,opcua_types=warn,opcua_nodes=warn,opcua_core_namespace=warn";

/// How to build and expose the simulated PLC.
///
/// Construct with struct update syntax so new fields do not break callers:
/// `PlcSimConfig { port: 0, ..Default::default() }`.
#[derive(Clone)]
pub struct PlcSimConfig {
    /// Host name advertised in endpoint URLs, put in the certificate's SAN and used for the
    /// listening socket.
    pub host: String,
    /// TCP port; 0 lets the OS pick a free one, readable afterwards from [`crate::PlcSim::port`].
    pub port: u16,
    /// Server PKI (`own/`, `private/`, `trusted/`, `rejected/`); a self-signed certificate is
    /// created there on first start and reused afterwards.
    ///
    /// Client certificates are trusted either one by one (the certificate itself in
    /// `trusted/`) or through their CA, so an enrolment CA such as `iiot vault` can be trusted
    /// once for every certificate it issues: put the CA certificate in `trusted/` and its CRL
    /// in `trusted/crl/` (intermediate CAs in `issuer/`, their CRLs in `issuer/crl/`). A
    /// CA-issued client is refused when its certificate or an issuer is revoked, expired, or
    /// has no current CRL (fail closed, OPC UA Part 4). The folders are read on every new
    /// session, so a fresh CRL takes effect without a restart. See `vendor/PATCHES.md`,
    /// "CA-based trust".
    pub pki_dir: PathBuf,
    /// Number of `Fast/{i}` UInt64 counters.
    pub fast_nodes: u32,
    /// Period of the `Fast/*` counters, in milliseconds (at least [`MIN_RATE_MS`]).
    pub fast_rate_ms: u64,
    /// Number of `Slow/{i}` UInt64 counters.
    pub slow_nodes: u32,
    /// Period of the `Slow/*` counters, in milliseconds (at least [`MIN_RATE_MS`]).
    pub slow_rate_ms: u64,
    /// `(depth, breadth)` of the `Tree` folder: `breadth^depth` leaf variables; `None` leaves
    /// `Tree` out of the address space entirely.
    pub tree: Option<(u32, u32)>,
    /// Advertised in `OperationLimits` and enforced per Create/Modify/DeleteMonitoredItems call.
    pub max_monitored_items_per_call: u32,
    /// Advertised and enforced per Browse call (nodes to browse, not references returned).
    pub max_nodes_per_browse: u32,
    /// Advertised and enforced per Read call.
    pub max_nodes_per_read: u32,
    /// Advertised and enforced per Write call.
    pub max_nodes_per_write: u32,
    /// Advertised and enforced per Call request.
    pub max_nodes_per_method_call: u32,
    /// Concurrent sessions before CreateSession is refused.
    pub max_sessions: u32,
    /// Open TCP connections before new ones are refused with Bad_TcpServerTooBusy (0: none).
    pub max_connections: u32,
    /// Sessions created but not yet activated before CreateSession is refused (0: none), so
    /// a CreateSession flood cannot take every session slot.
    pub max_unactivated_sessions: u32,
    /// Username/password pairs accepted on the secure endpoints (never on None/None, where the
    /// password would travel in clear).
    pub users: Vec<(String, String)>,
    /// Username/password pairs with Part 12's SecurityAdmin role: over SignAndEncrypt they may
    /// push a certificate and trust list (`ServerConfiguration`). Empty: nobody may. They can
    /// sign in on SignAndEncrypt endpoints only, and under a name no entry of `users` has.
    pub security_admins: Vec<(String, String)>,
    /// Trust any client certificate instead of parking it in `pki_dir/rejected`.
    pub auto_accept: bool,
    /// Monitored items per subscription (async-opcua defaults to 1000, too low for a gateway).
    pub max_monitored_items_per_subscription: u32,
    /// Subscriptions per session (async-opcua defaults to 10).
    pub max_subscriptions_per_session: u32,
    /// Largest request/response message in bytes; a full browse of a 100k-node tree or a
    /// 50k-item CreateMonitoredItems needs far more than async-opcua's ~327 KB default.
    pub max_message_size: u32,
    /// Chunks per message; must cover `max_message_size` at the negotiated buffer size
    /// (64 KiB by default). Also pre-allocated per connection, so not "unlimited".
    pub max_chunk_count: u32,
    /// Longest array accepted in a message (async-opcua default 1000 blocks large reads).
    pub max_array_length: u32,
}

impl Default for PlcSimConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 50000,
            pki_dir: PathBuf::from("pki/plc-sim"),
            fast_nodes: 50,
            fast_rate_ms: 1000,
            slow_nodes: 50,
            slow_rate_ms: 10_000,
            tree: None,
            max_monitored_items_per_call: 10_000,
            max_nodes_per_browse: 10_000,
            max_nodes_per_read: 10_000,
            max_nodes_per_write: 10_000,
            max_nodes_per_method_call: 1_000,
            max_sessions: 100,
            max_connections: 200,
            max_unactivated_sessions: 20,
            users: vec![
                ("user1".to_owned(), "password".to_owned()),
                ("user2".to_owned(), "password1".to_owned()),
            ],
            security_admins: Vec::new(),
            auto_accept: false,
            max_monitored_items_per_subscription: 100_000,
            max_subscriptions_per_session: 100,
            max_message_size: 64 * 1024 * 1024,
            max_chunk_count: 4096,
            max_array_length: 1_000_000,
        }
    }
}

/// Written by hand so that logging a configuration never prints the users' passwords.
impl std::fmt::Debug for PlcSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("PlcSimConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("pki_dir", &self.pki_dir)
            .field("fast_nodes", &self.fast_nodes)
            .field("fast_rate_ms", &self.fast_rate_ms)
            .field("slow_nodes", &self.slow_nodes)
            .field("slow_rate_ms", &self.slow_rate_ms)
            .field("tree", &self.tree)
            .field(
                "max_monitored_items_per_call",
                &self.max_monitored_items_per_call,
            )
            .field("max_nodes_per_browse", &self.max_nodes_per_browse)
            .field("max_nodes_per_read", &self.max_nodes_per_read)
            .field("max_nodes_per_write", &self.max_nodes_per_write)
            .field("max_nodes_per_method_call", &self.max_nodes_per_method_call)
            .field("max_sessions", &self.max_sessions)
            .field("max_connections", &self.max_connections)
            .field("max_unactivated_sessions", &self.max_unactivated_sessions)
            .field("users", &users)
            .field(
                "security_admins",
                &self
                    .security_admins
                    .iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("auto_accept", &self.auto_accept)
            .field(
                "max_monitored_items_per_subscription",
                &self.max_monitored_items_per_subscription,
            )
            .field(
                "max_subscriptions_per_session",
                &self.max_subscriptions_per_session,
            )
            .field("max_message_size", &self.max_message_size)
            .field("max_chunk_count", &self.max_chunk_count)
            .field("max_array_length", &self.max_array_length)
            .finish()
    }
}

impl PlcSimConfig {
    /// Number of leaf variables the configured tree will contain.
    pub fn tree_leaf_count(&self) -> u64 {
        match self.tree {
            None => 0,
            Some((depth, breadth)) => u64::from(breadth).checked_pow(depth).unwrap_or(u64::MAX),
        }
    }

    /// The server's minimum sampling interval: the fastest counter's period when that is
    /// below async-opcua's 100 ms, so a client sampling at the counter's rate is not revised
    /// to a slower one and does not skip values.
    pub fn min_sampling_interval_ms(&self) -> u64 {
        self.fast_rate_ms
            .min(self.slow_rate_ms)
            .clamp(MIN_RATE_MS, DEFAULT_MIN_SAMPLING_INTERVAL_MS)
    }

    /// Rejects configurations that would panic inside async-opcua or tokio (zero periods,
    /// zero limits) or exhaust memory, before any socket or file is touched.
    pub fn validate(&self) -> Result<(), PlcSimError> {
        let err = |m: String| Err(PlcSimError::Config(m));
        if self.host.trim().is_empty() || self.host.chars().any(char::is_whitespace) {
            return err(format!("host {:?} is not a host name", self.host));
        }
        if self.host.contains(':') {
            // async-opcua formats endpoint URLs as `opc.tcp://{host}:{port}` without
            // brackets (server/src/info.rs, `base_endpoint`), so an IPv6 literal breaks them.
            return err(format!(
                "host {:?}: IPv6 literals are not supported, use a name",
                self.host
            ));
        }
        for (name, rate) in [
            ("fast_rate_ms", self.fast_rate_ms),
            ("slow_rate_ms", self.slow_rate_ms),
        ] {
            if rate < MIN_RATE_MS {
                return err(format!(
                    "{name} {rate} is below {MIN_RATE_MS} ms, the fastest clients can sample: \
                     values would change unseen"
                ));
            }
        }
        let generated = u64::from(self.fast_nodes)
            .saturating_add(u64::from(self.slow_nodes))
            .saturating_add(self.tree_leaf_count());
        if generated > MAX_GENERATED_NODES {
            return err(format!(
                "{generated} generated variables exceed the limit of {MAX_GENERATED_NODES}"
            ));
        }
        for (name, value) in [
            (
                "max_monitored_items_per_call",
                self.max_monitored_items_per_call,
            ),
            ("max_nodes_per_browse", self.max_nodes_per_browse),
            ("max_nodes_per_read", self.max_nodes_per_read),
            ("max_nodes_per_write", self.max_nodes_per_write),
            ("max_nodes_per_method_call", self.max_nodes_per_method_call),
            ("max_sessions", self.max_sessions),
            (
                "max_monitored_items_per_subscription",
                self.max_monitored_items_per_subscription,
            ),
            (
                "max_subscriptions_per_session",
                self.max_subscriptions_per_session,
            ),
            ("max_array_length", self.max_array_length),
        ] {
            // async-opcua compares `count > limit`, so 0 would refuse every request
            // rather than meaning "unlimited" as in the OPC UA OperationLimits object.
            if value == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        if self.max_message_size < 8192 {
            return err("max_message_size must be at least 8192 bytes".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        for (user, _) in &self.users {
            if user.is_empty() {
                return err("user names must not be empty".to_owned());
            }
            // async-opcua's authenticator stops at the first entry with a matching name, so
            // a duplicate would silently make the second password unusable.
            if !seen.insert(user.as_str()) {
                return err(format!("user {user:?} is configured twice"));
            }
        }
        // A security administrator shares the authenticator's name lookup with the users:
        // under a user's name (or twice) the first entry would answer and the administrator
        // could never sign in.
        for (admin, password) in &self.security_admins {
            if admin.is_empty() || password.is_empty() {
                return err("security administrators need a name and a password".to_owned());
            }
            if !seen.insert(admin.as_str()) {
                return err(format!(
                    "security administrator {admin:?} is configured twice or is also a user"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_matches_opc_plc_users() {
        let c = PlcSimConfig::default();
        c.validate().unwrap();
        assert_eq!(c.users[0], ("user1".to_owned(), "password".to_owned()));
        assert_eq!(c.users[1], ("user2".to_owned(), "password1".to_owned()));
    }

    #[test]
    fn rejects_zero_rate_huge_tree_and_duplicate_users_or_admins() {
        let c = PlcSimConfig {
            fast_rate_ms: 0,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));

        let c = PlcSimConfig {
            tree: Some((5, 1000)),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));

        let c = PlcSimConfig {
            users: vec![("a".into(), "x".into()), ("a".into(), "y".into())],
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));

        let admin = |name: &str, password: &str| PlcSimConfig {
            security_admins: vec![(name.into(), password.into())],
            ..Default::default()
        };
        admin("admin", "secret").validate().unwrap();
        for (name, password) in [("user1", "secret"), ("", "secret"), ("admin", "")] {
            let e = admin(name, password).validate().unwrap_err();
            assert!(matches!(e, PlcSimError::Config(_)), "{name:?}/{password:?}");
        }
        let c = PlcSimConfig {
            security_admins: vec![("a".into(), "x".into()), ("a".into(), "y".into())],
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));

        let c = PlcSimConfig {
            host: "::1".into(),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));

        let c = PlcSimConfig {
            max_nodes_per_read: 0,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(PlcSimError::Config(_))));
    }

    #[test]
    fn rates_below_ten_ms_are_refused_and_set_the_sampling_floor() {
        let c = |fast_rate_ms, slow_rate_ms| PlcSimConfig {
            fast_rate_ms,
            slow_rate_ms,
            ..Default::default()
        };
        for (fast, slow) in [(9, 10_000), (1, 10_000), (1000, 5)] {
            let e = c(fast, slow).validate().unwrap_err().to_string();
            assert!(e.contains("10 ms"), "{e}");
        }
        c(10, 10_000).validate().unwrap();
        assert_eq!(c(10, 10_000).min_sampling_interval_ms(), 10);
        assert_eq!(c(20, 10_000).min_sampling_interval_ms(), 20);
        assert_eq!(c(1000, 10_000).min_sampling_interval_ms(), 100);
        assert_eq!(c(1000, 50).min_sampling_interval_ms(), 50);
    }

    #[test]
    fn debug_hides_passwords() {
        let text = format!("{:?}", PlcSimConfig::default());
        assert!(text.contains("user1"));
        assert!(!text.contains("password"));
    }

    #[test]
    fn tree_leaf_count_saturates() {
        let c = PlcSimConfig {
            tree: Some((2, 316)),
            ..Default::default()
        };
        assert_eq!(c.tree_leaf_count(), 99_856);
        let c = PlcSimConfig {
            tree: Some((u32::MAX, u32::MAX)),
            ..Default::default()
        };
        assert_eq!(c.tree_leaf_count(), u64::MAX);
    }
}
