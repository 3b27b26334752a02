//! The rtnetlink requests the backend sends, one function per request. Each takes the
//! handle of the namespace it works in; links are named in the request (`IFLA_IFNAME`,
//! index 0), so the kernel resolves the name when the request runs, or looked up by name
//! just before (addresses and routes need an index).

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use futures::{Stream, StreamExt};
use ipnetwork::IpNetwork;
use nix::errno::Errno;
use rtnetlink::packet_core::{
    ErrorMessage, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST,
};
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoData, InfoKind, InfoMacVlan, InfoVeth,
    LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::Handle;
use rustc_hash::FxHashSet;

/// A refused request: the kernel's errno and, when it gave one, its explanation (the
/// extended acknowledgement's message). Or a request that got no answer at all
/// (`unanswered`): it may or may not have gone out and taken effect.
#[derive(Debug)]
pub struct Nack {
    pub errno: Errno,
    pub why: Option<String>,
    pub unanswered: bool,
}

impl From<Errno> for Nack {
    fn from(errno: Errno) -> Nack {
        Nack {
            errno,
            why: None,
            unanswered: false,
        }
    }
}

/// `NLMSGERR_ATTR_MSG`: the extended acknowledgement's text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The length of a netlink message header.
const NLMSG_HDRLEN: usize = 16;
/// How long the kernel may take to answer one request. It always answers, unless the
/// answer is dropped: a socket whose receive buffer overflowed loses it (the next read
/// says ENOBUFS, which the connection passes over), and without a limit the request
/// would be awaited forever. The request then counts as unanswered.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

impl Nack {
    /// The refusal an error message carries; `None` for an acknowledgement.
    fn of(flags: u16, error: &ErrorMessage) -> Option<Nack> {
        let code = error.code?;
        Some(Nack {
            errno: Errno::from_raw(-code.get()),
            why: explanation(flags, &error.header),
            unanswered: false,
        })
    }

    /// No answer came: the connection ended (its socket failed, to send or to
    /// receive) before the kernel's acknowledgement or reply arrived.
    fn unanswered() -> Nack {
        Nack {
            errno: Errno::EIO,
            why: Some("no answer from the kernel; the request may or may not have taken effect".into()),
            unanswered: true,
        }
    }
}

/// The message of the attributes that follow the echoed request in an error message
/// (`NLM_F_ACK_TLVS`): after its header alone when capped, else after all of it.
fn explanation(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || echoed.len() < NLMSG_HDRLEN {
        return None;
    }
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let length = u32::from_ne_bytes(echoed[..4].try_into().ok()?);
        usize::try_from(length).ok()?.next_multiple_of(4)
    };
    let mut attributes = echoed.get(skip..)?;
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & 0x3fff;
        let value = attributes.get(4..length)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|byte| *byte == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        attributes = attributes.get(length.max(4).next_multiple_of(4)..)?;
    }
    None
}

/// Sends one request that asks for an acknowledgement; the refusal, if refused. Only an
/// acknowledgement is success (the connection forwards them, see `connect`): a
/// connection that ends first — its socket failed to send the request or to receive
/// the answer — leaves the request [`Nack::unanswered`].
async fn ack(handle: &mut Handle, message: RouteNetlinkMessage, flags: u16) -> Result<(), Nack> {
    request(handle, message, flags).await.map(drop)
}

/// As [`ack`], and the messages the kernel sent back before its acknowledgement (with
/// `NLM_F_ECHO`: what it made, as it tells listeners).
async fn request(
    handle: &mut Handle,
    message: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, Nack> {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    request.finalize();
    // The connection has ended already: nothing was sent.
    let responses = handle.request(request).map_err(|_| Errno::ENOTCONN)?;
    answered(responses, ANSWER_WAIT).await
}

/// The kernel's answer to a request that asked for an acknowledgement: the messages
/// before the first error message among `responses`, if that is an acknowledgement and
/// comes within `wait`.
async fn answered(
    responses: impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>>,
    wait: Duration,
) -> Result<Vec<RouteNetlinkMessage>, Nack> {
    let answer = async {
        let mut replies = Vec::new();
        let mut responses = std::pin::pin!(responses);
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::Error(error) => {
                    return match Nack::of(response.header.flags, &error) {
                        Some(nack) => Err(nack),
                        None => Ok(replies),
                    };
                }
                NetlinkPayload::InnerMessage(reply) => replies.push(reply),
                _ => {}
            }
        }
        Err(Nack::unanswered())
    };
    within(wait, answer).await
}

/// The answer `answer` gives within `wait`; none by then leaves the request unanswered.
async fn within<T>(
    wait: Duration,
    answer: impl std::future::Future<Output = Result<T, Nack>>,
) -> Result<T, Nack> {
    tokio::time::timeout(wait, answer)
        .await
        .unwrap_or_else(|_| Err(Nack::unanswered()))
}

/// A link message that names its link (index 0: the kernel looks the name up).
fn named(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_string()));
    message
}

/// The index of the link named `name` in the handle's namespace, now.
pub async fn link_index(mut handle: Handle, name: &str) -> Result<u32, Nack> {
    let mut message = named(name);
    message
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetLink(message));
    request.header.flags = NLM_F_REQUEST;
    request.finalize();
    let responses = handle.request(request).map_err(|_| Errno::ENOTCONN)?;
    let answer = async {
        let mut responses = std::pin::pin!(responses);
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    return Ok(link.header.index)
                }
                NetlinkPayload::Error(error) => {
                    if let Some(nack) = Nack::of(response.header.flags, &error) {
                        return Err(nack);
                    }
                }
                _ => {}
            }
        }
        // The kernel answers a lookup with the link or with ENODEV: nothing at all means
        // the connection ended, and nothing is known about the link.
        Err(Nack::unanswered())
    };
    within(ANSWER_WAIT, answer).await
}

/// The names of all links in the handle's namespace, now (one dump). A dump the kernel
/// marks as interrupted (the links changed while it ran, and it may have missed one) is
/// refused with `EAGAIN`.
pub async fn link_names(mut handle: Handle) -> Result<FxHashSet<String>, Nack> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetLink(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.finalize();
    let responses = handle.request(request).map_err(|_| Errno::ENOTCONN)?;
    within(ANSWER_WAIT, listed(responses)).await
}

/// The link names in the answer to a dump of links, once it has ended (see
/// [`link_names`]).
async fn listed(
    responses: impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>>,
) -> Result<FxHashSet<String>, Nack> {
    let mut names = FxHashSet::default();
    let mut interrupted = false;
    let mut responses = std::pin::pin!(responses);
    while let Some(response) = responses.next().await {
        interrupted |= response.header.flags & NLM_F_DUMP_INTR != 0;
        match response.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                names.extend(link.attributes.into_iter().filter_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name),
                    _ => None,
                }));
            }
            NetlinkPayload::Done(_) if interrupted => return Err(Nack::from(Errno::EAGAIN)),
            NetlinkPayload::Done(_) => return Ok(names),
            NetlinkPayload::Error(error) => {
                if let Some(nack) = Nack::of(response.header.flags, &error) {
                    return Err(nack);
                }
            }
            _ => {}
        }
    }
    // Ended before the end of the dump: the list is not whole.
    Err(Nack::unanswered())
}

/// `ip link add NAME mtu MTU address MAC type bridge mcast_snooping 0`: multicast goes to
/// every port (see README), and no port change restarts a timer on every port.
pub async fn add_bridge(mut handle: Handle, name: &str, mtu: u32, mac: Vec<u8>) -> Result<(), Nack> {
    let mut message = named(name);
    message.attributes.push(LinkAttribute::Mtu(mtu));
    message.attributes.push(LinkAttribute::Address(mac));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(false)])),
    ]));
    ack(
        &mut handle,
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
}

/// A veth pair to make in one request.
pub struct Veth<'a> {
    /// The end in the handle's namespace, with `link_mac`.
    pub link: &'a str,
    pub link_mac: Vec<u8>,
    /// The end created directly inside the namespace `netns_fd` refers to, with `mac`.
    pub peer: &'a str,
    pub netns_fd: RawFd,
    pub mac: Vec<u8>,
    /// Of both ends.
    pub mtu: u32,
    /// The index of the bridge `link` is attached to, by the kernel, once the pair is
    /// made; if it cannot be, the pair is deleted again and the request refused.
    pub master: Option<u32>,
}

/// Makes `veth`, both ends down. The peer's index, when the kernel says it (it echoes
/// what it made).
pub async fn add_veth(mut handle: Handle, veth: Veth<'_>) -> Result<Option<u32>, Nack> {
    let Veth {
        link,
        link_mac,
        peer,
        netns_fd,
        mac,
        mtu,
        master,
    } = veth;
    // One queue each way, as the veth would end up with anyway: asked for at creation,
    // so that the kernel does not make one per CPU and then wait for an RCU grace
    // period to take the others away, twice per pair (500 pairs: 1,000 waits).
    let mut peer_message = named(peer);
    peer_message.attributes.extend([
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(mac),
        LinkAttribute::NetNsFd(netns_fd),
        LinkAttribute::NumTxQueues(1),
        LinkAttribute::NumRxQueues(1),
    ]);
    let mut message = named(link);
    message.attributes.extend([
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(link_mac),
        LinkAttribute::NumTxQueues(1),
        LinkAttribute::NumRxQueues(1),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]),
    ]);
    message.attributes.extend(master.map(LinkAttribute::Controller));
    let replies = request(
        &mut handle,
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
    )
    .await?;
    // The kernel tells of `link` with the index of its peer, in the peer's namespace
    // (`IFLA_LINK`, `ip link` shows it as `link@ifN`).
    Ok(replies.iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewLink(made)
            if made.attributes.contains(&LinkAttribute::IfName(link.into())) =>
        {
            made.attributes.iter().find_map(|attribute| match attribute {
                LinkAttribute::Link(index) => Some(*index),
                _ => None,
            })
        }
        _ => None,
    }))
}

/// A macvlan (mode bridge) on the link with index `parent` of the handle's namespace,
/// created directly inside the namespace `netns_fd` refers to.
pub async fn add_macvlan(
    mut handle: Handle,
    link: &str,
    parent: u32,
    netns_fd: RawFd,
    mtu: u32,
    mac: Vec<u8>,
) -> Result<(), Nack> {
    let mut message = named(link);
    message.attributes.extend([
        LinkAttribute::Link(parent),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(mac),
        LinkAttribute::NetNsFd(netns_fd),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
        ]),
    ]);
    ack(
        &mut handle,
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
}

/// `ip link set NAME addrgenmode none`: no IPv6 link-local address, so no multicast
/// chatter when it goes up. Must come before the link is up, in its own request.
pub async fn addrgenmode_none(mut handle: Handle, name: &str) -> Result<(), Nack> {
    let mut message = named(name);
    message
        .attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![
            AfSpecInet6::AddrGenMode(In6AddrGenMode::None),
        ])]));
    match ack(&mut handle, RouteNetlinkMessage::SetLink(message), 0).await {
        // A link without IPv6 at all (an MTU below 1280) has nothing to disable.
        Err(nack) if nack.errno == Errno::EAFNOSUPPORT => Ok(()),
        result => result,
    }
}

/// A request to change the link named `name` that changes nothing: the kernel still
/// checks that the sender may change links in this namespace.
pub async fn touch(mut handle: Handle, name: &str) -> Result<(), Nack> {
    ack(&mut handle, RouteNetlinkMessage::SetLink(named(name)), 0).await
}

/// `ip link del NAME`
pub async fn del_link(mut handle: Handle, name: &str) -> Result<(), Nack> {
    ack(&mut handle, RouteNetlinkMessage::DelLink(named(name)), 0).await
}

/// `ip link set NAME up` or `down`.
pub async fn set_up(mut handle: Handle, name: &str, up: bool) -> Result<(), Nack> {
    let mut message = named(name);
    if up {
        message.header.flags = LinkFlags::Up;
    }
    message.header.change_mask = LinkFlags::Up;
    ack(&mut handle, RouteNetlinkMessage::SetLink(message), 0).await
}

/// `ip link set NAME master MASTER` (the master's index), or `nomaster` (0).
pub async fn set_master(mut handle: Handle, name: &str, master: u32) -> Result<(), Nack> {
    let mut message = named(name);
    message.attributes.push(LinkAttribute::Controller(master));
    ack(&mut handle, RouteNetlinkMessage::SetLink(message), 0).await
}

/// `ip addr add|del ADDRESS dev INDEX`
pub async fn address(mut handle: Handle, index: u32, address: IpNetwork, add: bool) -> Result<(), Nack> {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = address.prefix();
    message.header.family = family(address.ip());
    message.attributes.push(AddressAttribute::Local(address.ip()));
    message.attributes.push(AddressAttribute::Address(address.ip()));
    if add {
        match address {
            IpNetwork::V4(v4) if v4.prefix() < 31 => {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
            // Usable at once, as container runtimes do: no duplicate address detection
            // on an address the IPAM already made unique.
            IpNetwork::V6(_) => message.header.flags = AddressHeaderFlags::Nodad,
            IpNetwork::V4(_) => {}
        }
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        ack(&mut handle, RouteNetlinkMessage::NewAddress(message), flags).await
    } else {
        ack(&mut handle, RouteNetlinkMessage::DelAddress(message), 0).await
    }
}

/// `ip route add|del default via GATEWAY dev INDEX` in the main table.
pub async fn default_route(mut handle: Handle, gateway: IpAddr, index: u32, add: bool) -> Result<(), Nack> {
    let mut message = RouteMessage::default();
    message.header.address_family = family(gateway);
    message.header.destination_prefix_length = 0;
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    message.attributes.push(RouteAttribute::Oif(index));
    if add {
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        ack(&mut handle, RouteNetlinkMessage::NewRoute(message), flags).await
    } else {
        // As `ip route del` does: any protocol, any scope (IPv4).
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = match gateway {
            IpAddr::V4(_) => RouteScope::NoWhere,
            IpAddr::V6(_) => RouteScope::Universe,
        };
        ack(&mut handle, RouteNetlinkMessage::DelRoute(message), 0).await
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink header of `length`, then `tail`.
    fn echoed(length: u32, tail: &[u8]) -> Vec<u8> {
        let mut bytes = length.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(tail);
        bytes
    }

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let length = u16::try_from(4 + value.len()).unwrap();
        let mut bytes = [length.to_ne_bytes(), kind.to_ne_bytes()].concat();
        bytes.extend_from_slice(value);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes
    }

    #[test]
    fn the_kernels_explanation_follows_the_echoed_request() {
        let offset = attribute(2, &7u32.to_ne_bytes());
        let message = attribute(NLMSGERR_ATTR_MSG, b"mtu greater than device maximum\0");
        let capped = echoed(40, &[offset.clone(), message.clone()].concat());
        let flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
        assert_eq!(
            explanation(flags, &capped).as_deref(),
            Some("mtu greater than device maximum")
        );
        // Not capped: the whole request (22 bytes, padded to 24) comes first.
        let whole = echoed(22, &[vec![9; 8], message.clone()].concat());
        assert_eq!(
            explanation(NLM_F_ACK_TLVS, &whole).as_deref(),
            Some("mtu greater than device maximum")
        );
        assert_eq!(explanation(NLM_F_CAPPED, &capped), None, "no attributes");
        assert_eq!(explanation(flags, &echoed(16, &offset)), None);
        assert_eq!(explanation(flags, &capped[..20]), None, "truncated");
    }

    /// The answers of `responses` to a request that asked for an acknowledgement.
    fn answer(responses: Vec<NetlinkMessage<RouteNetlinkMessage>>, then_silence: bool) -> Result<(), Nack> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let given = futures::stream::iter(responses);
        if then_silence {
            let silent = given.chain(futures::stream::pending());
            runtime
                .block_on(answered(silent, Duration::from_millis(20)))
                .map(drop)
        } else {
            runtime
                .block_on(answered(given, Duration::from_millis(20)))
                .map(drop)
        }
    }

    fn error_message(code: i32) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(code);
        NetlinkMessage::new(Default::default(), NetlinkPayload::Error(error))
    }

    #[test]
    fn a_listing_of_links_is_whole_only_when_its_dump_ends_uninterrupted() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let message = |payload, flags| {
            let mut message = NetlinkMessage::new(Default::default(), payload);
            message.header.flags = flags;
            message
        };
        let link = |name: &str, flags| {
            message(
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(named(name))),
                flags,
            )
        };
        let done = |flags| message(NetlinkPayload::Done(Default::default()), flags);
        let list = |answer: Vec<NetlinkMessage<RouteNetlinkMessage>>| {
            runtime.block_on(listed(futures::stream::iter(answer)))
        };

        let whole = list(vec![link("lo", 0), link("ve-1", 0), done(0)]).unwrap();
        assert_eq!(
            whole,
            FxHashSet::from_iter(["lo".to_string(), "ve-1".to_string()])
        );
        // The links changed while the kernel listed them: it may have missed one.
        let interrupted = list(vec![
            link("lo", 0),
            link("ve-1", NLM_F_DUMP_INTR),
            done(NLM_F_DUMP_INTR),
        ]);
        assert_eq!(interrupted.unwrap_err().errno, Errno::EAGAIN);
        // The connection ended before the end of the dump.
        assert!(list(vec![link("lo", 0)]).unwrap_err().unanswered);
    }

    #[test]
    fn only_an_acknowledgement_is_success() {
        let other = NetlinkMessage::from(RouteNetlinkMessage::NewLink(LinkMessage::default()));
        assert!(answer(vec![other.clone(), error_message(0)], false).is_ok());
        let refused = answer(vec![error_message(-libc::EEXIST)], false).unwrap_err();
        assert_eq!((refused.errno, refused.unanswered), (Errno::EEXIST, false));
        // The connection ended (its socket failed) before the answer came.
        let ended = answer(vec![other.clone()], false).unwrap_err();
        assert!(ended.unanswered);
        // The answer was dropped, and the connection goes on: it is not awaited forever.
        let dropped = answer(vec![other], true).unwrap_err();
        assert!(dropped.unanswered);
    }
}
