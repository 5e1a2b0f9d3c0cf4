//! Stopping gracefully on SIGINT or SIGTERM: the server and the standalone notification
//! worker wait on the same signal.

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives while the server is still starting
/// (deliveries already running, say) must stop it gracefully, not kill it.
pub(crate) fn signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (Ok(mut interrupt), Err(error)) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                    interrupt.recv().await;
                }
                (Err(error), Ok(mut terminate)) => {
                    tracing::warn!(%error, "cannot listen for SIGINT; only SIGTERM stops the server");
                    terminate.recv().await;
                }
                (Err(error), Err(_)) => {
                    tracing::warn!(%error, "cannot listen for signals; falling back to ctrl-c");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
