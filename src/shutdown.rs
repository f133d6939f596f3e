//! How every long-running command stops: on SIGTERM (containers, systemd, Kubernetes) or
//! SIGINT (Ctrl-C). Imports nothing else from the binary.

pub async fn wait_for_shutdown() {
    shutdown_signal().await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are in place when this returns, not
/// only once the future is first polled: a service that announces it is ready after calling
/// this cannot be killed by a signal sent right after the announcement.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut term, mut int)) = handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
