//! `graceinit drain`: the target of a Kubernetes preStop exec hook
//! (`lifecycle.preStop.exec.command: ["/graceinit", "drain"]`). Asks the supervisor over
//! its control socket to start the drain (or join the one under way) and waits until
//! the pre_stop hooks are done. The kubelet sends SIGTERM after the hook returns; the
//! supervisor then sends the app its stop signal without running the hooks again.
//!
//! Exit 0 when the hooks are done; 1 with the reason when no supervisor answers, a hook
//! failed with on_failure = "fail", or `--timeout` passed (the drain goes on); 2 for a
//! usage error.

use crate::cli::DrainArgs;
use crate::commands::output;
use crate::control::{self, Failure, Request};
use crate::exit_code;

pub fn run(args: &DrainArgs) -> i32 {
    let located = match control::locate(args.socket.socket.as_deref()) {
        Ok(located) => located,
        Err(e) => {
            let _ = output::stderr_line(&format!("graceinit drain: {e}"));
            return exit_code::USAGE;
        }
    };
    match control::ask(&located, Request::Drain, args.timeout) {
        Ok(answer) if args.log.verbose => {
            let outcome = answer
                .get("outcome")
                .and_then(|o| o.as_str())
                .unwrap_or("done");
            match output::stderr_line(&format!("graceinit drain: {outcome}")) {
                Ok(()) => 0,
                Err(_) => exit_code::FAILURE,
            }
        }
        Ok(_) => 0,
        Err(failure) => {
            let message = match failure {
                Failure::TimedOut(_) => {
                    format!("{failure}: the pre_stop hooks are still running (the drain goes on)")
                }
                other => other.to_string(),
            };
            let _ = output::stderr_line(&format!("graceinit drain: {message}"));
            exit_code::FAILURE
        }
    }
}
