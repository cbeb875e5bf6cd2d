//! What a TCP socket of graceinit's own says about itself.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The connections waiting in a listening socket's accept queue (TCP_INFO's
/// `tcpi_unacked`, which the kernel fills with the accept backlog for listeners).
pub fn accept_queue(listener: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: tcp_info is plain data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `length` bytes into `info`, which is that
    // large, and sets `length` to what it wrote; the fd is borrowed, so open.
    let result = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_unacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn the_accept_queue_counts_connections_not_yet_accepted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert_eq!(accept_queue(listener.as_fd()).unwrap(), 0);
        let _clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        assert_eq!(accept_queue(listener.as_fd()).unwrap(), 3);
        let _served = listener.accept().unwrap();
        assert_eq!(accept_queue(listener.as_fd()).unwrap(), 2);
    }
}
