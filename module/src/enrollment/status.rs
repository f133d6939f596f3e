//! The enrollment state `/metrics` reports: where the module stands with its GDS, when its
//! certificate expires and when its CRLs were last refreshed.

use std::sync::Mutex;

/// Where enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not configured (no `--gds-url`).
    Off,
    /// Configured, nothing installed yet.
    Starting,
    WaitingForApproval,
    Rejected,
    /// A GDS-issued certificate is installed.
    Enrolled,
    /// The last round failed (see the log); an installed certificate keeps being used.
    Failing,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Off,
        Phase::Starting,
        Phase::WaitingForApproval,
        Phase::Rejected,
        Phase::Enrolled,
        Phase::Failing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Off => "off",
            Phase::Starting => "starting",
            Phase::WaitingForApproval => "waiting_for_approval",
            Phase::Rejected => "rejected",
            Phase::Enrolled => "enrolled",
            Phase::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    phase: Phase,
    /// Unix seconds; 0 when unknown.
    not_after: i64,
    trust_list_refreshed: i64,
    certificates_installed: u64,
    failures: u64,
}

/// Shared between the enrollment task and the metrics endpoint.
#[derive(Debug)]
pub struct EnrollmentStatus(Mutex<State>);

impl Default for EnrollmentStatus {
    fn default() -> Self {
        EnrollmentStatus(Mutex::new(State {
            phase: Phase::Off,
            not_after: 0,
            trust_list_refreshed: 0,
            certificates_installed: 0,
            failures: 0,
        }))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A snapshot for reports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub phase: Phase,
    pub not_after: i64,
    pub trust_list_refreshed: i64,
    pub certificates_installed: u64,
    pub failures: u64,
}

impl EnrollmentStatus {
    fn with(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    pub fn set(&self, phase: Phase) {
        self.with(|s| s.phase = phase);
    }

    pub fn enrolled(&self, not_after: i64) {
        self.with(|s| {
            if s.not_after != not_after {
                s.certificates_installed += 1;
            }
            s.phase = Phase::Enrolled;
            s.not_after = not_after;
        });
    }

    pub fn trust_list_refreshed(&self) {
        self.with(|s| s.trust_list_refreshed = now());
    }

    pub fn failed(&self, _why: &str) {
        self.with(|s| {
            s.failures += 1;
            if s.phase != Phase::Rejected {
                s.phase = Phase::Failing;
            }
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = self
            .0
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        Snapshot {
            phase: s.phase,
            not_after: s.not_after,
            trust_list_refreshed: s.trust_list_refreshed,
            certificates_installed: s.certificates_installed,
            failures: s.failures,
        }
    }
}
