//! A userspace frame generator: one AF_PACKET socket bound to an interface, frames sent with
//! `sendmmsg` in batches. veth-rate falls back to it where the kernel refuses live-frames test
//! runs (`BPF_F_TEST_XDP_LIVE_FRAMES` answered with EPERM: some sandboxed kernels filter it), so
//! the capture rate is still measured, with a slower generator that the report names.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

/// Frames handed to the kernel per `sendmmsg` call.
const BATCH: usize = 256;

/// Sends `count` frames out of interface `ifindex`, cycling through `frames`, and returns how
/// long that took. A full transmit queue (ENOBUFS) is waited out, not counted as sent.
pub fn send(ifindex: u32, frames: &[Vec<u8>], count: u32) -> io::Result<Duration> {
    if frames.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no frames to send",
        ));
    }
    let socket = bound_socket(ifindex)?;
    let mut vectors: Vec<libc::iovec> = (0..BATCH)
        .map(|index| {
            let frame = &frames[index % frames.len()];
            libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast(),
                iov_len: frame.len(),
            }
        })
        .collect();
    let mut messages: Vec<libc::mmsghdr> = vectors
        .iter_mut()
        .map(|vector| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
            let mut message: libc::mmsghdr = unsafe { std::mem::zeroed() };
            message.msg_hdr.msg_iov = std::ptr::from_mut(vector);
            message.msg_hdr.msg_iovlen = 1;
            message
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0_u32;
    while sent < count {
        let want = (count - sent).min(BATCH as u32);
        // SAFETY: `messages` holds `BATCH` >= `want` headers, each pointing at one iovec over a
        // frame of `frames`, all alive for the call.
        let result = unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), want, 0) };
        if let Ok(done) = u32::try_from(result) {
            sent += done;
        } else {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ENOBUFS) {
                return Err(error);
            }
            std::thread::yield_now();
        }
    }
    Ok(started.elapsed())
}

fn bound_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain libc call; the descriptor is owned at once below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero then the fields a transmit-only bind needs
    // (protocol 0: the socket receives nothing).
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_ifindex =
        i32::try_from(ifindex).map_err(|_| io::Error::other("interface index out of range"))?;
    // SAFETY: `address` is a valid sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}
