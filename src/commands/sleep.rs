//! `graceinit sleep DURATION`: for images with no shell (and no `sleep` binary), e.g. as
//! a Kubernetes preStop exec hook. SIGTERM ends it, as it ends `sleep`.

use crate::cli::SleepArgs;

pub fn run(args: &SleepArgs) -> i32 {
    std::thread::sleep(args.duration);
    0
}
