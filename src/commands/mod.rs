//! The subcommands that are not the supervisor: `check`, `sleep`, `probe`, and the
//! control socket's clients `drain` and `status`.

pub mod check;
pub mod drain;
pub mod output;
pub mod probe;
pub mod sleep;
pub mod status;
