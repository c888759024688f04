//! Everything that depends on the terminal: whether to prompt, whether to draw progress.
//! One `Env` is made in `main` and passed down, so tests (never a TTY) get no prompts and no
//! progress bars without special cases.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;

/// What the process can do with its terminal.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub(crate) stdin_tty: bool,
    pub(crate) stderr_tty: bool,
}

impl Env {
    pub(crate) fn detect() -> Self {
        Env {
            stdin_tty: std::io::stdin().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// Asks for a value on a terminal; elsewhere returns None (the caller then reports it missing).
    pub(crate) fn prompt(&self, question: &str) -> Result<Option<String>, Error> {
        if !(self.stdin_tty && self.stderr_tty) {
            return Ok(None);
        }
        let answer: String = dialoguer::Input::new()
            .with_prompt(question)
            .interact_text()
            .map_err(|e| Error::Other(format!("prompt failed: {e}")))?;
        Ok(Some(answer))
    }

    /// Asks to go ahead. Without a terminal the user must have passed `--yes`.
    pub(crate) fn confirm(&self, question: &str, yes: bool) -> Result<bool, Error> {
        if yes {
            return Ok(true);
        }
        if !(self.stdin_tty && self.stderr_tty) {
            return Err(Error::Input(
                "refusing to make changes without confirmation: stdin is not a terminal; pass --yes to go ahead, or --dry-run to see what would happen".into(),
            ));
        }
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(|e| Error::Other(format!("prompt failed: {e}")))
    }

    /// [`Env::confirm`] on a blocking thread: the async runtime keeps running meanwhile, so a
    /// held node lock keeps its heartbeat while the question waits (issue 13 point 3).
    pub(crate) async fn confirm_async(&self, question: &str, yes: bool) -> Result<bool, Error> {
        let (env, q) = (self.clone(), question.to_string());
        tokio::task::spawn_blocking(move || env.confirm(&q, yes))
            .await
            .map_err(|e| Error::Other(format!("prompt failed: {e}")))?
    }

    /// A spinner drawn only on a terminal.
    pub(crate) fn spinner(&self, message: String) -> ProgressBar {
        let target = if self.stderr_tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
