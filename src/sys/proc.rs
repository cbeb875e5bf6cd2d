//! Reading the process tree from /proc, to find descendants when graceinit is a
//! subreaper rather than PID 1 (where `kill(-1)` already means "everyone left").
//! Always read on a thread of its own: never on the event loop.

use std::collections::HashMap;
use std::fs;

use nix::unistd::Pid;

/// Every living descendant of `root`, parents before children.
///
/// Read from each process's `task/*/children` (the kernel's list of its children, per
/// thread: an orphan is reparented to any thread of its subreaper), so the cost is the
/// number of descendants, not of processes on the host. On a kernel without
/// CONFIG_PROC_CHILDREN, every process's parent is read from /proc instead.
pub fn descendants(root: Pid) -> Vec<Pid> {
    match children_of(root.as_raw()) {
        Some(first) => walk(first),
        None => descendants_by_scan(root),
    }
}

/// Breadth-first from `first`, the root's children.
fn walk(first: Vec<i32>) -> Vec<Pid> {
    let mut found: Vec<Pid> = Vec::new();
    let mut queue = std::collections::VecDeque::from(first);
    while let Some(pid) = queue.pop_front() {
        found.push(Pid::from_raw(pid));
        // A process that exited meanwhile has no children left to list.
        queue.extend(children_of(pid).unwrap_or_default());
    }
    found
}

/// The children of every thread of `pid`; None when the kernel has no such files (or
/// `pid` is gone).
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let mut children = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let listed = fs::read_to_string(task.path().join("children")).ok()?;
        children.extend(
            listed
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    Some(children)
}

/// Every process's parent from /proc/PID/stat: the whole host, once.
fn descendants_by_scan(root: Pid) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(Pid::from_raw(child));
            queue.push(child);
        }
    }
    found
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces or ')'; the fields
    // after the last ')' are "state ppid ...".
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_files_and_the_full_scan_agree() {
        let mut a = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = Pid::from_raw(std::process::id() as i32);
        let shell = Pid::from_raw(a.id() as i32);
        let mut found = Vec::new();
        for _ in 0..200 {
            found = descendants(shell);
            if found.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found.len(), 2, "{found:?}");
        let mut by_scan = descendants_by_scan(shell);
        found.sort();
        by_scan.sort();
        assert_eq!(found, by_scan);
        assert!(descendants(me).contains(&shell));
        for pid in &found {
            let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = a.wait();
    }
}
