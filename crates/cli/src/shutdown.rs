//! Graceful shutdown on SIGINT and SIGTERM, shared by the server commands.
//!
//! ```text
//! let shutdown = Shutdown::install()?;      // before the service loop
//! while !shutdown.requested() { ... service with a short timeout (<= POLL_INTERVAL) ... }
//! // tell every peer (ENet DISCONNECT, DTLS close_notify), keep servicing until they have
//! // answered or `GRACE` has passed, flush, exit 0
//! ```
//!
//! The first SIGINT or SIGTERM only sets a flag: the command says goodbye to its peers and exits
//! 0 within [`GRACE`]. A second one ends the process at once with status [`FORCED_EXIT_STATUS`],
//! from the signal handler itself, so that a stuck shutdown can always be cut short.
//!
//! Built on `signal-hook` (its `flag` module), which registers async-signal-safe handlers that
//! only store into an atomic, chains with other handlers and needs no `unsafe` here.
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// How long a command may take to say goodbye after the first signal (then it exits anyway).
pub(crate) const GRACE: Duration = Duration::from_millis(800);

/// The longest a service loop should block between two looks at [`Shutdown::requested`].
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Exit status after a second signal (128 + SIGINT, as shells report an interrupted command).
pub(crate) const FORCED_EXIT_STATUS: i32 = 130;

/// The shutdown flag, set by the first SIGINT or SIGTERM.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// Installs the handlers for SIGINT and SIGTERM (call once, before the service loop).
    pub(crate) fn install() -> io::Result<Shutdown> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Order matters: the conditional exit sees the flag as it was before this signal,
            // so only a second signal (of either kind) exits at once.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                FORCED_EXIT_STATUS,
                Arc::clone(&flag),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(Shutdown { flag })
    }

    /// Has a SIGINT or SIGTERM arrived?
    pub(crate) fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
