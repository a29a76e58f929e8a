//! UDP in batches: `recvmmsg` and `sendmmsg` on Linux (one system call for many datagrams),
//! `recv_from` and `send_to` one at a time elsewhere; sockets bound with `SO_REUSEPORT` so that
//! several receive threads share a port.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The largest datagram read; longer ones are truncated by the kernel and ignored here.
pub const MAX_DATAGRAM: usize = 1500;

/// The most datagrams one `recvmmsg` takes (Linux's `UIO_MAXIOV`).
pub const MAX_BATCH: usize = 1024;

/// A UDP socket on `addr` that other sockets may share (`SO_REUSEPORT`), with a receive timeout
/// so that a receiving thread sees shutdown.
///
/// # Errors
///
/// Creating, configuring or binding the socket.
pub fn bind_shared(addr: SocketAddr, read_timeout: Duration) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_recv_buffer_size(8 << 20).ok();
    socket.set_send_buffer_size(8 << 20).ok();
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(read_timeout))?;
    Ok(socket)
}

/// One received datagram.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Receives datagrams in batches, reusing its buffers from call to call.
#[derive(Debug)]
pub struct Receiver {
    inner: imp::Receiver,
}

impl Receiver {
    /// A receiver of up to `max` datagrams a call (at most [`MAX_BATCH`]).
    pub fn new(max: usize) -> Receiver {
        Receiver { inner: imp::Receiver::new(max.clamp(1, MAX_BATCH)) }
    }

    /// Receives up to `max` datagrams, waiting for the first until the socket's timeout;
    /// appends them to `out`. Returns how many were appended (0 on timeout) and how many were
    /// truncated (longer than [`MAX_DATAGRAM`]) and left out.
    ///
    /// # Errors
    ///
    /// A receive error other than a timeout or an interruption.
    pub fn receive(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<Datagram>,
    ) -> io::Result<(usize, usize)> {
        self.inner.receive(socket, out)
    }

    /// Receives as [`Self::receive`] does, but leaves the datagrams in the receiver's buffers,
    /// where [`Self::held`] reads them until the next call: nothing is copied. Returns how
    /// many were received (truncated ones included).
    ///
    /// # Errors
    ///
    /// A receive error other than a timeout or an interruption.
    pub fn receive_held(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.inner.receive_held(socket)
    }

    /// Datagram `i` of the last [`Self::receive_held`]: its bytes and sender, or `None` if it
    /// was truncated.
    pub fn held(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        self.inner.held(i)
    }
}

/// Sends each `(to, bytes)`; returns how many were sent (the rest failed: a full send buffer
/// or an unreachable address, which UDP does not retry).
pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> usize {
    imp::send(socket, datagrams)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::mem::{MaybeUninit, size_of, zeroed};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::{Datagram, MAX_DATAGRAM, timed_out};

    pub(super) struct Receiver {
        /// Datagrams the last receive left in the buffers.
        count: usize,
        buffers: Vec<[u8; MAX_DATAGRAM]>,
        addrs: Vec<libc::sockaddr_storage>,
        iovecs: Vec<libc::iovec>,
        headers: Vec<libc::mmsghdr>,
    }

    impl std::fmt::Debug for Receiver {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Receiver").field("max", &self.buffers.len()).finish()
        }
    }

    // Safety: the raw pointers point into the receiver's own vectors, used by one thread at a
    // time (`receive` takes `&mut self`).
    unsafe impl Send for Receiver {}

    impl Receiver {
        pub(super) fn new(max: usize) -> Receiver {
            Receiver {
                count: 0,
                buffers: vec![[0u8; MAX_DATAGRAM]; max],
                // Safety: all-zero bytes are valid for these plain C structs.
                addrs: (0..max).map(|_| unsafe { zeroed() }).collect(),
                iovecs: (0..max)
                    .map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 })
                    .collect(),
                headers: (0..max).map(|_| unsafe { zeroed() }).collect(),
            }
        }

        pub(super) fn receive(
            &mut self,
            socket: &UdpSocket,
            out: &mut Vec<Datagram>,
        ) -> io::Result<(usize, usize)> {
            let n = self.receive_held(socket)?;
            let mut truncated = 0;
            for i in 0..n {
                match self.held(i) {
                    Some((bytes, from)) => out.push(Datagram { from, bytes: bytes.to_vec() }),
                    None => truncated += 1,
                }
            }
            Ok((n - truncated, truncated))
        }

        pub(super) fn receive_held(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.count = 0;
            let max = self.buffers.len();
            // Point the headers at the buffers again: the kernel rewrote the lengths.
            for i in 0..max {
                self.iovecs[i] = libc::iovec {
                    iov_base: self.buffers[i].as_mut_ptr().cast(),
                    iov_len: MAX_DATAGRAM,
                };
                let h = &mut self.headers[i];
                h.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = &raw mut self.iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_flags = 0;
            }
            // Safety: every header points into `buffers`, `addrs` and `iovecs`, which outlive
            // the call and do not move during it.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr(),
                    max as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return if timed_out(&e) { Ok(0) } else { Err(e) };
            }
            self.count = n as usize;
            Ok(self.count)
        }

        pub(super) fn held(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
            if i >= self.count {
                return None;
            }
            let header = &self.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return None;
            }
            let from = to_socket_addr(&self.addrs[i])?;
            Some((&self.buffers[i][..header.msg_len as usize], from))
        }
    }

    pub(super) fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> usize {
        let mut sent = 0;
        for chunk in datagrams.chunks(256) {
            let mut addrs: Vec<(MaybeUninit<libc::sockaddr_storage>, libc::socklen_t)> =
                chunk.iter().map(|(to, _)| from_socket_addr(to)).collect();
            let mut iovecs: Vec<libc::iovec> = chunk
                .iter()
                .map(|(_, bytes)| libc::iovec {
                    iov_base: bytes.as_ptr() as *mut _,
                    iov_len: bytes.len(),
                })
                .collect();
            let mut headers: Vec<libc::mmsghdr> = (0..chunk.len())
                .map(|i| {
                    // Safety: all-zero bytes are valid for this plain C struct.
                    let mut h: libc::mmsghdr = unsafe { zeroed() };
                    h.msg_hdr.msg_name = addrs[i].0.as_mut_ptr().cast();
                    h.msg_hdr.msg_namelen = addrs[i].1;
                    h.msg_hdr.msg_iov = &raw mut iovecs[i];
                    h.msg_hdr.msg_iovlen = 1;
                    h
                })
                .collect();
            let mut done = 0;
            while done < headers.len() {
                // Safety: the headers point into `addrs`, `iovecs` and the caller's buffers,
                // all alive and unmoved for the call.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        headers[done..].as_mut_ptr(),
                        (headers.len() - done) as libc::c_uint,
                        0,
                    )
                };
                if n <= 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The datagram at `done` cannot be sent (full buffer, bad address): skip it.
                    done += 1;
                    continue;
                }
                done += n as usize;
                sent += n as usize;
            }
        }
        sent
    }

    fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match storage.ss_family as libc::c_int {
            libc::AF_INET => {
                // Safety: the family says the storage holds a `sockaddr_in`.
                let a: &libc::sockaddr_in =
                    unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // Safety: the family says the storage holds a `sockaddr_in6`.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn from_socket_addr(
        addr: &SocketAddr,
    ) -> (MaybeUninit<libc::sockaddr_storage>, libc::socklen_t) {
        let sock: socket2::SockAddr = (*addr).into();
        let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        // Safety: `SockAddr` holds a valid address of `len` bytes, at most a
        // `sockaddr_storage`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sock.as_ptr().cast::<u8>(),
                storage.as_mut_ptr().cast::<u8>(),
                sock.len() as usize,
            );
        }
        (storage, sock.len())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    use super::{Datagram, MAX_DATAGRAM, timed_out};

    #[derive(Debug)]
    pub(super) struct Receiver {
        held: Option<Datagram>,
    }

    impl Receiver {
        pub(super) fn new(_max: usize) -> Receiver {
            Receiver { held: None }
        }

        pub(super) fn receive_held(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            let mut out = Vec::with_capacity(1);
            let (n, _) = self.receive(socket, &mut out)?;
            self.held = out.pop();
            Ok(n)
        }

        pub(super) fn held(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
            (i == 0).then_some(())?;
            self.held.as_ref().map(|d| (d.bytes.as_slice(), d.from))
        }

        pub(super) fn receive(
            &mut self,
            socket: &UdpSocket,
            out: &mut Vec<Datagram>,
        ) -> io::Result<(usize, usize)> {
            let mut buffer = [0u8; MAX_DATAGRAM];
            match socket.recv_from(&mut buffer) {
                Ok((len, from)) => {
                    out.push(Datagram { from, bytes: buffer[..len].to_vec() });
                    Ok((1, 0))
                }
                Err(e) if timed_out(&e) => Ok((0, 0)),
                Err(e) => Err(e),
            }
        }
    }

    pub(super) fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> usize {
        datagrams.iter().filter(|(to, bytes)| socket.send_to(bytes, to).is_ok()).count()
    }
}
