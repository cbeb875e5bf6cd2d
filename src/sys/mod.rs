//! The operating-system boundary: the only module with `unsafe` code and raw syscalls.
//!
//! Everything above this module speaks in `Pid`s, `Signal`s and `Command`s; everything
//! about masks, dispositions, sessions, terminals and `prctl` lives here.

pub mod proc;
pub mod process;
pub mod signals;
pub mod socket;
pub mod spawn;
pub mod timer;
pub mod wait;
pub mod wait_signal;
