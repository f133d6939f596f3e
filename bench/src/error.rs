//! Why a benchmark could not run to its end.
//!
//! A bench fails for reasons its user fixes by hand (Mosquitto or the asyncua venv missing, a
//! bad `--steps`, a child process that died), so every failure carries the sentence that says
//! where to look, and the underlying error stays reachable as its `source()` for the binary to
//! print as a chain.

use std::fmt::Display;

/// Every failure of `iiot-bench`.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A check of the bench itself failed (bad arguments, a run that lost values, an answer
    /// that is not what the service should send).
    #[error("{0}")]
    Failed(String),
    /// What the bench was doing when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<BenchError>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Boxed: the client's error carries the request it could not send.
    #[error(transparent)]
    Mqtt(Box<rumqttc::v5::ClientError>),
    #[error(transparent)]
    Timeout(#[from] tokio::time::error::Elapsed),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error("the answer channel closed before an answer came")]
    Closed(#[from] tokio::sync::oneshot::error::RecvError),
    #[error(transparent)]
    Number(#[from] std::num::ParseIntError),
    #[error(transparent)]
    PlcSim(#[from] iiot_plc_sim::PlcSimError),
    #[error(transparent)]
    Module(#[from] iiot_module::StartError),
    #[error(transparent)]
    TwinApi(#[from] iiot_twin_api::TwinApiError),
    #[error(transparent)]
    Vault(#[from] iiot_vault::VaultError),
}

impl From<rumqttc::v5::ClientError> for BenchError {
    fn from(e: rumqttc::v5::ClientError) -> Self {
        BenchError::Mqtt(Box::new(e))
    }
}

impl BenchError {
    /// Wraps `self` under what was being done.
    pub fn context(self, context: impl Display) -> BenchError {
        BenchError::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Says what was being done when a `Result` failed or an `Option` was empty.
pub(crate) trait Context<T> {
    fn context(self, context: impl Display) -> Result<T>;
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<BenchError>> Context<T> for Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| BenchError::Failed(context.to_string()))
    }
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| BenchError::Failed(context().to_string()))
    }
}

/// Returns a [`BenchError::Failed`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::BenchError::Failed(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_cause_as_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = Err::<(), _>(io).context("running mosquitto").unwrap_err();
        assert_eq!(e.to_string(), "running mosquitto");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no such file"));
        let none = None::<u8>.context("no pid").unwrap_err();
        assert!(matches!(none, BenchError::Failed(m) if m == "no pid"));
    }
}
