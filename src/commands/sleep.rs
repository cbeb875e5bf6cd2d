//! `graceinit sleep DURATION...`: for images with no shell (and no `sleep` binary), e.g. as
//! a Kubernetes preStop exec hook, and the drop-in case: under `ENTRYPOINT ["graceinit"]`
//! a `CMD ["sleep", "1"]` names this subcommand, so it must take what coreutils' `sleep`
//! takes (`dumb-init sleep 1` runs /bin/sleep).
//!
//! SIGTERM, SIGINT and SIGHUP end it with 128+N, what a shell reports for a `sleep`
//! killed by signal N, also as PID 1, where the kernel would discard them unhandled.

use std::io::Write;
use std::time::{Duration, Instant};

use libc::c_int;

use crate::cli::SleepArgs;
use crate::exit_code;
use crate::sys::wait_signal::BlockedSignals;

/// The signals that end the sleep, as they end `sleep` when it is not PID 1.
const ENDING_SIGNALS: &[c_int] = &[libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

const EXPECTED: &str = "expected seconds (\"5\", \"0.5\"), a number with a unit s, m, h or d \
     (\"1.5m\", \"2h\"), a duration like \"1500ms\", or \"infinity\"";

pub fn run(args: &SleepArgs) -> i32 {
    // Blocked before the deadline is taken: from here on an ending signal is never lost.
    let signals = match BlockedSignals::block_unless_ignored(ENDING_SIGNALS) {
        Ok(signals) => signals,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "graceinit sleep: cannot block signals: {e}"
            );
            return exit_code::FAILURE;
        }
    };
    let total = args.intervals.iter().fold(Duration::ZERO, |sum, interval| {
        sum.saturating_add(*interval)
    });
    // None: too far to represent, which is for ever ("infinity" is Duration::MAX).
    let deadline = Instant::now().checked_add(total);
    loop {
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return 0;
                }
                Some(left)
            }
            None => None,
        };
        if let Some(sig) = signals.wait(timeout) {
            return 128 + sig;
        }
    }
}

/// One argument of `graceinit sleep`, as coreutils' `sleep` reads it: a non-negative
/// floating-point number of seconds ("5", "0.5", ".5", "1e3", "infinity") with at most one
/// suffix s, m, h or d ("1.5m"); or else a duration humantime reads ("1500ms", "1h30m").
/// Too long to represent saturates to `Duration::MAX`, which sleeps for ever.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        return Err(format!(
            "an empty argument is not a time interval; {EXPECTED}"
        ));
    }
    if let Some(seconds) = coreutils_seconds(text) {
        if seconds.is_nan() {
            return Err(format!("not a number; {EXPECTED}"));
        }
        // `!(seconds >= 0)` is the NaN case above; -0 is zero, as coreutils has it.
        if seconds < 0.0 {
            return Err("a time interval cannot be negative".to_string());
        }
        return Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    if let Some(magnitude) = text.trim_start().strip_prefix('-')
        && parse_interval(magnitude).is_ok()
    {
        return Err("a time interval cannot be negative".to_string());
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("not a time interval ({e}); {EXPECTED}"))
}

/// The seconds in coreutils' form, or None when `text` is not in it. Leading white space
/// is skipped, as `strtod` skips it.
fn coreutils_seconds(text: &str) -> Option<f64> {
    let text = text.trim_start();
    let last = text.chars().last()?;
    let (number, multiplier) = match suffix_seconds(last) {
        Some(multiplier) => (&text[..text.len() - last.len_utf8()], multiplier),
        None => (text, 1.0),
    };
    number.parse::<f64>().ok().map(|number| number * multiplier)
}

fn suffix_seconds(suffix: char) -> Option<f64> {
    match suffix {
        's' => Some(1.0),
        'm' => Some(60.0),
        'h' => Some(3600.0),
        'd' => Some(86400.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> f64 {
        parse_interval(text)
            .unwrap_or_else(|e| panic!("`{text}` rejected: {e}"))
            .as_secs_f64()
    }

    #[test]
    fn accepts_what_coreutils_sleep_accepts() {
        for (text, expected) in [
            ("5", 5.0),
            ("0", 0.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("+2", 2.0),
            ("-0", 0.0),
            ("1e2", 100.0),
            ("5s", 5.0),
            ("1.5m", 90.0),
            ("2h", 7200.0),
            ("1d", 86400.0),
            (".25d", 21600.0),
            (" 3", 3.0),
        ] {
            assert_eq!(seconds(text), expected, "{text}");
        }
    }

    #[test]
    fn infinity_and_huge_values_saturate() {
        for text in [
            "infinity", "inf", "INFINITY", "Inf", "infs", "infd", "1e300", "1e300d",
        ] {
            assert_eq!(parse_interval(text), Ok(Duration::MAX), "{text}");
        }
        // Large but representable: exact, not saturated.
        assert_eq!(
            parse_interval("1e12"),
            Ok(Duration::from_secs(1_000_000_000_000))
        );
    }

    #[test]
    fn accepts_humantime_durations_too() {
        assert_eq!(parse_interval("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_interval("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_interval("1.5ms"), Ok(Duration::from_micros(1500)));
    }

    #[test]
    fn rejects_what_coreutils_sleep_rejects() {
        for (text, reason) in [
            ("", "empty"),
            ("  ", "empty"),
            ("-1", "negative"),
            ("-0.5s", "negative"),
            ("-inf", "negative"),
            ("-1500ms", "negative"),
            ("nan", "not a number"),
            ("NaN", "not a number"),
            ("nans", "not a number"),
            ("abc", "not a time interval"),
            ("5x", "not a time interval"),
            ("1.5x", "not a time interval"),
            ("5 fortnights", "not a time interval"),
            ("s", "not a time interval"),
            ("1e", "not a time interval"),
            ("5 ", "not a time interval"),
            ("-x", "not a time interval"),
            ("--version", "not a time interval"),
        ] {
            let error = parse_interval(text).expect_err(text);
            assert!(error.contains(reason), "`{text}`: {error}");
        }
    }
}
