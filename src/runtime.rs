//! The tokio runtime every async part of graceinit runs on: one thread with I/O and
//! timers, so that an idle PID 1 has no worker threads to wake (DESIGN: zero idle
//! wake-ups).

/// A current-thread runtime with I/O and time enabled.
pub fn event_loop() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
