//! Probes: what `expect` and `serve` do. A probe tries to reach an address from inside a
//! network namespace (an ICMP echo, a TCP connect, or a UDP exchange), bounded in time;
//! a responder answers on a port there. Both run on threads of their own that enter the
//! namespace (a socket stays bound to the namespace it was opened in), need no `ping`
//! binary, change nothing in the kernel and are not journaled.

use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol as SocketProtocol, SockAddr, Socket, Type};

use crate::model::Protocol;

/// How a probe tries to reach its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An ICMP echo (ping).
    Echo,
    /// A connection (TCP) or an exchange of datagrams (UDP) with a port.
    Port(u16, Protocol),
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reached,
    /// Not reached, and why: no answer in time, refused, no route…
    NotReached(String),
}

/// The payload a UDP probe sends and a responder sends back.
const UDP_HELLO: &[u8] = b"cnm probe";

/// Runs `body` on a new thread inside the network namespace mounted at `netns` (`None`:
/// the namespace cnm runs in), and waits for it.
fn inside<T: Send + 'static>(
    netns: Option<&Path>,
    body: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let netns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        enter(netns.as_deref())?;
        body()
    })
    .join()
    .map_err(|_| io::Error::other("a probe thread panicked"))?
}

/// Moves the calling thread into the namespace at `netns`, if one is given.
fn enter(netns: Option<&Path>) -> io::Result<()> {
    let Some(path) = netns else { return Ok(()) };
    let file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open namespace {}: {e}", path.display())))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("cannot enter namespace {}: {}", path.display(), e.desc())))
}

/// Tries to reach `target` from the namespace at `netns` within `timeout`.
pub fn probe(netns: Option<&Path>, target: IpAddr, via: Via, timeout: Duration) -> io::Result<Answer> {
    inside(netns, move || match via {
        Via::Echo => echo(target, timeout),
        Via::Port(port, Protocol::Tcp) => Ok(tcp(SocketAddr::new(target, port), timeout)),
        Via::Port(port, Protocol::Udp) => udp(SocketAddr::new(target, port), timeout),
    })
}

fn tcp(address: SocketAddr, timeout: Duration) -> Answer {
    match TcpStream::connect_timeout(&address, timeout) {
        Ok(_) => Answer::Reached,
        Err(e) => Answer::NotReached(why(&e)),
    }
}

fn udp(address: SocketAddr, timeout: Duration) -> io::Result<Answer> {
    let local: SocketAddr = match address {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("an address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("an address"),
    };
    let socket = UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(timeout))?;
    // Connected, the socket hears of ICMP errors (a closed port, a firewall's refusal)
    // at once, and takes answers from `address` only.
    socket.connect(address)?;
    if let Err(e) = socket.send(UDP_HELLO) {
        return Ok(Answer::NotReached(why(&e)));
    }
    let mut buffer = [0u8; 64];
    Ok(match socket.recv(&mut buffer) {
        Ok(_) => Answer::Reached,
        Err(e) => Answer::NotReached(why(&e)),
    })
}

/// An I/O error as a probe result: a timeout is "no answer".
fn why(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no answer in time".into(),
        _ => crate::io_reason::io_reason(error),
    }
}

/// An ICMP echo request to `target`, over a raw socket (which needs CAP_NET_RAW in the
/// namespace, as root has, and as the owner of an isolated namespace has).
fn echo(target: IpAddr, timeout: Duration) -> io::Result<Answer> {
    let (domain, protocol, request, reply) = match target {
        IpAddr::V4(_) => (Domain::IPV4, SocketProtocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, SocketProtocol::ICMPV6, 128u8, 129u8),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    // Distinguishes this probe's replies from other pings in the namespace.
    let id = (std::process::id() as u16) ^ (thread_id() as u16);
    let mut message = vec![request, 0, 0, 0];
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&1u16.to_be_bytes());
    message.extend_from_slice(b"cnm-probe");
    if target.is_ipv4() {
        // For ICMPv6 the kernel fills the checksum in.
        let sum = checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let to = SockAddr::from(SocketAddr::new(target, 0));
    if let Err(e) = socket.send_to(&message, &to) {
        return Ok(Answer::NotReached(why(&e)));
    }
    let deadline = Instant::now() + timeout;
    let mut buffer = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Answer::NotReached("no answer in time".into()));
        }
        socket.set_read_timeout(Some(left))?;
        let (length, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(Answer::NotReached("no answer in time".into()))
            }
            Err(e) => return Ok(Answer::NotReached(why(&e))),
        };
        // SAFETY: recv_from initialised the first `length` bytes.
        let packet: Vec<u8> = buffer[..length]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        // An IPv4 raw socket gets the IP header too; an IPv6 one does not.
        let icmp = match target {
            IpAddr::V4(_) => packet.get(usize::from(packet.first().copied().unwrap_or(0) & 0x0f) * 4..),
            IpAddr::V6(_) => Some(&packet[..]),
        };
        let Some(icmp) = icmp.filter(|icmp| icmp.len() >= 8) else {
            continue;
        };
        let from = from.as_socket().map(|a| a.ip());
        if from == Some(target) && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
            return Ok(Answer::Reached);
        }
        if let Some(reason) = unreachable(icmp, target, request, id) {
            let from = from.map_or_else(String::new, |from| format!(" (from {from})"));
            return Ok(Answer::NotReached(format!("{reason}{from}")));
        }
    }
}

/// Why the ICMP message `icmp` says our echo request to `target` cannot arrive, if it
/// is a "destination unreachable" about that request: a router (a firewall, say) said
/// so, and there is no need to wait any longer.
fn unreachable(icmp: &[u8], target: IpAddr, request: u8, id: u16) -> Option<String> {
    let reason = match (target, icmp[0], icmp[1]) {
        (IpAddr::V4(_), 3, 0) | (IpAddr::V6(_), 1, 0) => "no route to it",
        (IpAddr::V4(_), 3, 1) | (IpAddr::V6(_), 1, 3) => "host unreachable",
        (IpAddr::V4(_), 3, 9 | 10 | 13) | (IpAddr::V6(_), 1, 1) => "refused: administratively prohibited",
        (IpAddr::V4(_), 3, _) | (IpAddr::V6(_), 1, _) => "unreachable",
        _ => return None,
    };
    // The message quotes the packet that failed: its IP header, then our ICMP header.
    let quoted = &icmp[8..];
    let (destination, inner) = match target {
        IpAddr::V4(_) => {
            let header = usize::from(*quoted.first()? & 0x0f) * 4;
            let address: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
            (IpAddr::from(address), quoted.get(header..)?)
        }
        IpAddr::V6(_) => {
            let address: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
            (IpAddr::from(address), quoted.get(40..)?)
        }
    };
    let ours =
        destination == target && inner.len() >= 6 && inner[0] == request && inner[4..6] == id.to_be_bytes();
    ours.then(|| reason.to_string())
}

/// A number that tells this thread from the others of the process.
fn thread_id() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    hasher.finish()
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A responder started by `serve`: it answers until the process ends.
#[derive(Debug)]
pub struct Responder {
    pub netns: Option<PathBuf>,
    pub port: u16,
    pub protocol: Protocol,
    /// The responder's socket, to wake its thread when it stops.
    socket: Socket,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// The sandbox it answers in: its namespace's name.
    pub fn sandbox(&self) -> Option<&str> {
        self.netns.as_deref()?.file_name()?.to_str()
    }
}

/// A stopped responder has closed its socket and its thread has left the namespace,
/// which holds the namespace no more: a deleted namespace's veths go only then.
impl Drop for Responder {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a responder on `port` inside the namespace at `netns`, on all its addresses
/// (IPv4 and IPv6): TCP connections are accepted and closed, UDP datagrams sent back.
/// Returns once it listens, or with why it cannot.
pub fn serve(netns: Option<&Path>, port: u16, protocol: Protocol) -> io::Result<Responder> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = netns.map(Path::to_path_buf);
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let thread = std::thread::spawn(move || {
        let listening = enter(path.as_deref()).and_then(|()| listen(port, protocol));
        match listening {
            Ok((socket, answer)) => {
                let _ = ready_tx.send(socket.try_clone());
                answer(socket, &stop);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    });
    let socket = ready_rx
        .recv()
        .map_err(|_| io::Error::other("the responder thread ended"))??;
    Ok(Responder {
        netns: netns.map(Path::to_path_buf),
        port,
        protocol,
        socket,
        stopping,
        thread: Some(thread),
    })
}

/// How a responder answers on its socket until told to stop.
type Answering = fn(Socket, &AtomicBool);

/// Binds the port (dual-stack): the socket and how to answer on it.
fn listen(port: u16, protocol: Protocol) -> io::Result<(Socket, Answering)> {
    let any = SocketAddr::new("::".parse().expect("an address"), port);
    let socket = match protocol {
        Protocol::Tcp => Socket::new(Domain::IPV6, Type::STREAM, None)?,
        Protocol::Udp => Socket::new(Domain::IPV6, Type::DGRAM, None)?,
    };
    // One socket for both families: IPv4 peers arrive as mapped addresses.
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&any.into())?;
    match protocol {
        Protocol::Tcp => {
            socket.listen(128)?;
            Ok((socket, accept_and_close))
        }
        Protocol::Udp => Ok((socket, echo_datagrams)),
    }
}

fn accept_and_close(socket: Socket, stopping: &AtomicBool) {
    let listener: TcpListener = socket.into();
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut stream) = stream {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.read(&mut [0u8; 64]);
        }
    }
}

fn echo_datagrams(socket: Socket, stopping: &AtomicBool) {
    let socket: UdpSocket = socket.into();
    let mut buffer = [0u8; 1500];
    while let Ok((length, from)) = socket.recv_from(&mut buffer) {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let _ = socket.send_to(&buffer[..length], from);
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn checksum_is_rfc_1071() {
        // An echo request with id 1, sequence 1 and no payload.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
        // A message with its checksum in place sums to zero.
        assert_eq!(checksum(&[8, 0, 0xf7, 0xfd, 0, 1, 0, 1]), 0);
    }
}
