//! The subcommands that are not the supervisor: `check`, `sleep`, `probe`.

pub mod check;
pub mod output;
pub mod probe;
pub mod sleep;
