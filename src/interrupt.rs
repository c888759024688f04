//! SIGINT and SIGTERM during `patch` (issue 13, point 4).
//!
//! Before any host has started its commit a signal does what it always did: the process ends
//! at once (the default action, re-raised), nothing was changed, and each node's lock goes
//! with its channel. Once a host's transaction is past that point (a [`Guard`] is alive) the
//! first signal is recorded instead: a host waiting for its API server stops waiting and
//! restores its backup (as on a timeout), a host that has not committed yet stops before it
//! does, and each host names its backup and the exact `k8soidc rollback` command. A second
//! signal stops the restores where they are (each host says what it may have left); a third
//! ends the process at once.
//!
//! A terminal's Ctrl-C reaches the whole foreground process group, so the `ssh` channels this
//! run has open end too; the restore then runs on new channels of the same connection (its
//! master runs in its own session), and is the compare-and-swap every restore is, so it never
//! writes over a change it did not make even though the node lock's channel ended as well.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::sync::watch;

/// The signals seen so far (0: none) and the last one.
static SEEN: OnceLock<watch::Sender<(u32, i32)>> = OnceLock::new();
/// Transactions past the point where stopping the process would leave a node half done.
static GUARDED: AtomicUsize = AtomicUsize::new(0);

/// Starts listening for SIGINT and SIGTERM (once per process; later calls do nothing).
pub(crate) fn listen() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    if SEEN.get().is_some() {
        return;
    }
    let (tx, _) = watch::channel((0, 0));
    if SEEN.set(tx).is_err() {
        return;
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        // No handler: the default action stays, as before this module existed.
        return;
    };
    let handle = signals.handle();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig);
            }
        });
    if spawned.is_err() {
        handle.close();
    }
}

fn on_signal(sig: i32) {
    let Some(tx) = SEEN.get() else { return };
    let n = tx.borrow().0 + 1;
    if GUARDED.load(Ordering::SeqCst) == 0 || n >= 3 {
        if n >= 3 {
            eprintln!("error: interrupted a third time: stopping at once; the hosts' messages above say what each may have left");
        }
        // As if no handler had been installed: the process ends by the signal.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        std::process::exit(128 + sig);
    }
    tx.send_replace((n, sig));
    if n == 1 {
        eprintln!(
            "interrupted ({}): each host waiting for its API server restores its backup, and hosts not yet changed stop; interrupt again to stop the restores where they are",
            name(sig)
        );
    } else {
        eprintln!("interrupted again ({}): stopping the restores", name(sig));
    }
}

/// `SIGINT` or `SIGTERM`.
pub(crate) fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The signal recorded so far, if `times` or more came (None before [`listen`] too).
pub(crate) fn seen(times: u32) -> Option<i32> {
    let (n, sig) = *SEEN.get()?.borrow();
    (n >= times).then_some(sig)
}

/// Waits until `times` signals have been recorded; never returns when nobody listens.
pub(crate) async fn wait(times: u32) -> i32 {
    let Some(tx) = SEEN.get() else {
        return std::future::pending().await;
    };
    let mut rx = tx.subscribe();
    let sig = rx.wait_for(|(n, _)| *n >= times).await.map(|v| v.1);
    match sig {
        Ok(sig) => sig,
        Err(_) => std::future::pending().await,
    }
}

/// Held by a host's transaction from just before its commit to its end: while any is held,
/// a signal is handled by the transactions instead of ending the process.
pub(crate) struct Guard(());

impl Guard {
    pub(crate) fn new() -> Guard {
        GUARDED.fetch_add(1, Ordering::SeqCst);
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        GUARDED.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_seen_before_listening() {
        assert_eq!(seen(1), None);
        assert_eq!(name(signal_hook::consts::SIGTERM), "SIGTERM");
        assert_eq!(name(signal_hook::consts::SIGINT), "SIGINT");
    }
}
