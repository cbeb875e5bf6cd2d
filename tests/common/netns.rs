//! A network namespace of a test's own, with loopback up: what the kernel counts per
//! namespace (the passive TCP opens that `wait_quiet` reads) then sees only the test's
//! traffic, whatever else runs on the machine.
//!
//! [`Netns::enter`] makes one (a holder process, `unshare -n` then `sleep`, keeps it
//! alive) and moves the calling thread into it. A network namespace belongs to a thread:
//! the threads it spawns, the processes it starts (graceinit) and the sockets it makes
//! are in it too. Dropping the guard moves the thread back and ends the holder.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

use super::require_tool;

pub struct Netns {
    holder: Child,
    /// The thread's namespace before, to go back to.
    original: File,
}

impl Netns {
    pub fn enter() -> Netns {
        require_tool("ip", "iproute2");
        let mut holder = Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && echo up && exec sleep 1000",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare -n (the tests run as root)");
        let mut up = String::new();
        BufReader::new(holder.stdout.take().expect("piped"))
            .read_line(&mut up)
            .expect("the holder's line");
        assert_eq!(up, "up\n", "loopback did not come up in the new namespace");
        let original = File::open("/proc/thread-self/ns/net").expect("this thread's namespace");
        // The holder's namespace (sh or sleep: the same one).
        setns(&File::open(format!("/proc/{}/ns/net", holder.id())).expect("the namespace"));
        Netns { holder, original }
    }
}

fn setns(namespace: &File) {
    // SAFETY: setns(2) on an fd we own; it changes only the calling thread's namespace.
    let result = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(result, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        setns(&self.original);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
