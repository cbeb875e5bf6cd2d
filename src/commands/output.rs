//! Writing to stdout and stderr without `print!`: those panic when the stream is closed
//! or full (`check > /dev/full`, `check | head -c1`), which would turn a usage error
//! into exit 134. Here a failed write is an `io::Error` the caller turns into an exit
//! code.

use std::io::{self, Write};

/// Writes all of `text` to stdout and flushes it, so that a failure shows now.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `line` and a newline to stderr.
pub fn stderr_line(line: &str) -> io::Result<()> {
    let mut err = io::stderr().lock();
    err.write_all(line.as_bytes())?;
    err.write_all(b"\n")?;
    err.flush()
}
