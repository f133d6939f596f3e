//! One SignAndEncrypt session with a user name, opened for a few calls and closed again: what
//! a GDS pull client (the module enrolling) and a push client (the vault pushing to a server)
//! both need. async-opcua reports the outcome of the first connect through the session's event
//! stream, not as the end of its event loop, so it is read from there.

use std::sync::Arc;
use std::time::Duration;

use opcua::client::transport::TcpConnector;
use opcua::client::{
    Client, IdentityToken, Password, Session, SessionEventLoop, SessionPollResult,
};
use opcua::crypto::SecurityPolicy;
use opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode, UserTokenPolicy};
use tokio::task::JoinHandle;

/// Closing waits this long at most: after a refused connect nothing answers CloseSession.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why no session was opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server (or the secure channel) refused, with this status: the caller may act on it
    /// (a revoked own certificate, an untrusted server certificate, a wrong password).
    #[error("refused: {0}")]
    Refused(StatusCode),
    /// No answer in time, or the endpoint could not be used.
    #[error("{0}")]
    Failed(String),
}

/// An open session and the task driving it.
pub struct OpenSession {
    pub session: Arc<Session>,
    event_loop: JoinHandle<()>,
}

impl OpenSession {
    /// Closes the session, bounded by [`CLOSE_TIMEOUT`].
    pub async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.session.disconnect()).await;
        self.event_loop.abort();
    }
}

/// Opens a Basic256Sha256 SignAndEncrypt session on `url` as `user`, within `timeout`.
pub async fn open(
    client: &mut Client,
    url: &str,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<OpenSession, ConnectError> {
    let (session, event_loop) = client
        .connect_to_matching_endpoint(
            (
                url,
                SecurityPolicy::Basic256Sha256.to_uri(),
                MessageSecurityMode::SignAndEncrypt,
                UserTokenPolicy::anonymous(),
            ),
            identity(user, password),
        )
        .await
        .map_err(|e| ConnectError::Failed(e.to_string()))?;
    established(session, event_loop, timeout).await
}

/// Opens a session on exactly `endpoint` (as a GetEndpoints answer described it, server
/// certificate included), without asking the server for its endpoints again: a caller that
/// checked that certificate hands its password to no other.
pub async fn open_endpoint(
    client: &mut Client,
    endpoint: EndpointDescription,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<OpenSession, ConnectError> {
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, identity(user, password))
        .map_err(|e| ConnectError::Failed(e.to_string()))?;
    established(session, event_loop, timeout).await
}

fn identity(user: &str, password: &str) -> IdentityToken {
    IdentityToken::UserName(user.to_owned(), Password::new(password.to_owned()))
}

/// Drives the event loop until the first connect succeeded or failed.
async fn established(
    session: Arc<Session>,
    event_loop: SessionEventLoop<TcpConnector>,
    timeout: Duration,
) -> Result<OpenSession, ConnectError> {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), StatusCode>>();
    let event_loop = tokio::spawn(async move {
        use futures::StreamExt;
        let mut first = Some(first_tx);
        let stream = event_loop.enter();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let outcome = match event {
                Ok(SessionPollResult::Reconnected(_)) => Ok(()),
                Ok(SessionPollResult::ReconnectFailed(status)) | Err(status) => Err(status),
                Ok(_) => continue,
            };
            if let Some(tx) = first.take() {
                let failed = outcome.is_err();
                let _ = tx.send(outcome);
                if failed {
                    break;
                }
            }
        }
    });
    let open = OpenSession {
        session,
        event_loop,
    };
    let outcome = match tokio::time::timeout(timeout, first_rx).await {
        Err(_) => Err(ConnectError::Failed(format!(
            "no session within {timeout:?}"
        ))),
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(status))) => Err(ConnectError::Refused(status)),
        Ok(Err(_)) => Err(ConnectError::Failed("the session ended".into())),
    };
    match outcome {
        Ok(()) => Ok(open),
        Err(e) => {
            open.close().await;
            Err(e)
        }
    }
}
