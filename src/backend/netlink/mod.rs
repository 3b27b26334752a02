//! The real kernel: rtnetlink requests on a tokio current-thread runtime, nix for
//! namespaces and mounts.
//!
//! One netlink socket per namespace, opened on a dedicated thread inside that namespace
//! (a socket stays bound to the namespace it was opened in) and kept for the next
//! operation there; one for the namespace cnm runs in. Links are named in each request
//! or looked up by name, and an index looked up is remembered until the transaction ends
//! (see [`Indexes`]). Veth peers and macvlans are created directly inside their namespace
//! (moving a link costs a grace period); veths with one queue each way (cutting per-CPU
//! queues down after costs two more), and `addrgenmode none` set on their ends before
//! they go up (no IPv6 multicast chatter).
//! The namespaces a transaction creates are made ahead, nameless, on a thread of their
//! own, and named (bind-mounted) in their turn; files are written ahead likewise.

mod etc;
mod netns;
pub mod nft;
mod rtnl;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ipnetwork::IpNetwork;
use nix::errno::Errno;
use rtnetlink::sys::{Socket, TokioSocket};
use rtnetlink::Handle;
use rustc_hash::FxHashMap;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::{Backend, FileWriter, KernelError};
use crate::model::Mac;
use crate::plan::{EtcFile, FileText, Name, Op};
use netns::SysError;
use rtnl::Nack;

/// How long `settle` waits for the kernel to remove a deleted namespace's veths.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The backend that changes the kernel. See the module documentation.
pub struct NetlinkBackend {
    runtime: Runtime,
    netns_dir: PathBuf,
    etc_dir: PathBuf,
    /// The namespace cnm runs in.
    host: Handle,
    /// The task that drives `host`'s socket: finished once that socket failed.
    host_task: JoinHandle<()>,
    /// Link indexes in cnm's own namespace (see [`Indexes`]).
    host_indexes: Indexes,
    /// Whether a transaction is under way: only then are link indexes remembered.
    in_transaction: bool,
    /// Named namespaces with an open socket, by name.
    spaces: HashMap<String, Space>,
    /// Ticks at each use of a space, to close the least recently used one first.
    clock: u64,
    /// How many namespace sockets may stay open (each is a file descriptor).
    capacity: usize,
    /// The thread that enters namespaces.
    worker: netns::Worker,
    /// Namespaces the transaction under way creates, made ahead.
    blanks: Option<netns::Blanks>,
    /// Files under `etc_dir` were written or removed since they were last flushed (also
    /// by the [`file_writer`](Backend::file_writer), on its thread).
    unsynced: Arc<AtomicBool>,
}

/// An open netlink connection bound to one named namespace.
struct Space {
    handle: Handle,
    task: JoinHandle<()>,
    used: u64,
    /// Which namespace it is (device and inode of the namespace file).
    identity: netns::Identity,
    /// Link indexes in this namespace (see [`Indexes`]).
    indexes: Indexes,
}

/// Link indexes looked up during the transaction under way, by link name: the bridge
/// every port of a network is attached to, the interface that gets an address and then
/// a route. A link keeps its index for its life, and the kernel hands indexes out
/// cyclically, so a remembered index names that link or, once it is gone, nothing: a
/// request that the kernel refuses for want of the link is sent again with the index
/// looked up then (see [`NetlinkBackend::with_index`]). A link this backend creates or
/// deletes is forgotten at once; all are forgotten when the transaction ends.
type Indexes = FxHashMap<String, u32>;

/// What the kernel answers a request that names a link index it does not know:
/// `ENODEV`, or `EINVAL` for a master.
fn no_such_index<T>(result: &Result<T, Nack>) -> bool {
    matches!(result, Err(nack) if !nack.unanswered && matches!(nack.errno, Errno::ENODEV | Errno::EINVAL))
}

/// Where an operation happens, for messages: `""` or ` in namespace NAME`.
fn place(netns: Option<&str>) -> String {
    netns.map_or_else(String::new, |netns| format!(" in namespace {netns}"))
}

/// A kernel refusal: `what` (the object and the action), then the errno in words, then
/// the kernel's own explanation, when it gave one.
/// A request that got no answer is an error whose effect is unknown.
fn refused(nack: Nack, what: impl std::fmt::Display) -> KernelError {
    let mut message = format!("{what}: {}", nack.errno.desc());
    if let Some(why) = nack.why {
        message.push_str(&format!(" ({why})"));
    }
    if nack.unanswered {
        KernelError::unanswered(nack.errno as i32, message)
    } else {
        KernelError::errno(nack.errno as i32, message)
    }
}

fn sys_refused(error: SysError, what: impl std::fmt::Display) -> KernelError {
    KernelError::errno(
        error.errno as i32,
        format!("{what}: cannot {}: {}", error.doing, error.errno.desc()),
    )
}

/// Deleting what is already gone is success.
fn gone_ok(result: Result<(), Nack>, gone: &[Errno]) -> Result<(), Nack> {
    match result {
        Err(nack) if gone.contains(&nack.errno) => Ok(()),
        result => result,
    }
}

/// The MAC a host-side link (a bridge, a veth's host end) gets, derived from its name:
/// stable across runs, so that a link made again (by a rollback, a restart) is the link
/// it was. A bridge with a MAC of its own also keeps it as ports come and go (the kernel
/// would take the lowest of its ports', and sandboxes would keep a stale neighbour entry
/// for their gateway).
fn derived_mac(name: &str) -> Vec<u8> {
    Mac::of_name(name).octets().to_vec()
}

/// A namespace name must stay one file name inside the namespace directory.
fn check_name(netns: &str) -> Result<(), KernelError> {
    let bad =
        netns.is_empty() || netns == "." || netns == ".." || netns.len() > 255 || netns.contains(['/', '\0']);
    if bad {
        return Err(KernelError::errno(
            libc::EINVAL,
            format!("{netns:?} is not a valid namespace name"),
        ));
    }
    Ok(())
}

/// How many namespace sockets may stay open: half the open files this process may have
/// (the rest is the caller's). Past that, the least recently used one is closed; opening
/// it again costs a trip to the worker thread (tens of microseconds).
fn socket_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 256;
    }
    let files = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
    (files / 2).max(16)
}

impl NetlinkBackend {
    /// A backend that creates named namespaces under `netns_dir` (like `/run/netns`) and
    /// writes the per-namespace files under `etc_dir` (like `/etc/netns`):
    /// `etc_dir/NETNS/hosts`, `etc_dir/NETNS/resolv.conf`.
    ///
    /// Fails at once, with errno `EPERM`, when this process may not do the work: change
    /// links in its own namespace, create `netns_dir` and mount on it, create namespaces.
    /// Makes `netns_dir` a shared mount point, as `ip netns add` does.
    pub fn new(netns_dir: PathBuf, etc_dir: PathBuf) -> Result<NetlinkBackend, KernelError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| {
                KernelError::errno(
                    error.raw_os_error().unwrap_or(libc::EIO),
                    format!("cannot start the netlink runtime: {error}"),
                )
            })?;
        let capacity = socket_capacity();
        let (host, host_task) = connect(&runtime, host_socket()?);
        let mut backend = NetlinkBackend {
            runtime,
            netns_dir,
            etc_dir,
            host,
            host_task,
            host_indexes: Indexes::default(),
            in_transaction: false,
            spaces: HashMap::new(),
            clock: 0,
            capacity,
            worker: netns::Worker::start(),
            blanks: None,
            unsynced: Arc::default(),
        };
        backend.check_privileges()?;
        Ok(backend)
    }

    fn check_privileges(&mut self) -> Result<(), KernelError> {
        // A request that changes nothing, but that the kernel lets through only with
        // CAP_NET_ADMIN over this namespace.
        let host = self.host()?;
        let mut touched = self.block(rtnl::touch(host, "lo"));
        if touched.as_ref().is_err_and(|nack| nack.unanswered) {
            // It changes nothing: ask again, on a new socket.
            let host = self.host()?;
            touched = self.block(rtnl::touch(host, "lo"));
        }
        if let Err(nack) = touched {
            match nack.errno {
                Errno::ENODEV | Errno::EINVAL | Errno::EOPNOTSUPP => {}
                Errno::EPERM | Errno::EACCES => {
                    return Err(KernelError::errno(
                        libc::EPERM,
                        "not permitted to change network interfaces here (needs CAP_NET_ADMIN)",
                    ))
                }
                _ => return Err(refused(nack, "cannot reach the kernel over netlink")),
            }
        }
        self.prepare_dir()?;
        netns::can_unshare(&self.worker).map_err(|error| {
            let message = format!(
                "not permitted to create network namespaces: {}",
                error.errno.desc()
            );
            match error.errno {
                Errno::EPERM | Errno::EACCES => KernelError::errno(libc::EPERM, message),
                errno => KernelError::errno(errno as i32, message),
            }
        })
    }

    /// Makes the namespace directory, and a shared mount point, as `ip netns add` does.
    fn prepare_dir(&self) -> Result<(), KernelError> {
        let dir = &self.netns_dir;
        if dir.exists() && !dir.is_dir() {
            return Err(KernelError::errno(
                libc::ENOTDIR,
                format!("the namespace directory {} is not a directory", dir.display()),
            ));
        }
        if let Err(error) = std::fs::create_dir_all(dir) {
            let errno = match error.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => libc::EPERM,
                Some(errno) => errno,
                None => libc::EIO,
            };
            return Err(KernelError::errno(
                errno,
                format!("cannot create the namespace directory {}: {error}", dir.display()),
            ));
        }
        netns::make_shared(dir)
            .map_err(|error| sys_refused(error, format!("namespace directory {}", dir.display())))
    }

    /// The connection in cnm's own namespace. A socket that failed (a request it could
    /// not send, an answer it could not receive) ends its connection: it is replaced by
    /// a new one, so that what comes next — undoing, above all — still reaches the kernel.
    fn host(&mut self) -> Result<Handle, KernelError> {
        if self.host_task.is_finished() {
            let (host, task) = connect(&self.runtime, host_socket()?);
            self.host = host;
            self.host_task = task;
        }
        Ok(self.host.clone())
    }

    /// Runs one request (or a few, joined) to completion.
    fn block<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn netns_path(&self, netns: &str) -> PathBuf {
        self.netns_dir.join(netns)
    }

    /// Keeps `socket`, opened inside `netns`, as that namespace's connection.
    fn keep(&mut self, netns: &str, socket: Socket, identity: netns::Identity) -> Handle {
        if self.spaces.len() >= self.capacity {
            let oldest = self
                .spaces
                .iter()
                .min_by_key(|(_, space)| space.used)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.forget(&oldest);
            }
        }
        self.forget(netns);
        let (handle, task) = connect(&self.runtime, socket);
        self.clock += 1;
        self.spaces.insert(
            netns.to_string(),
            Space {
                handle: handle.clone(),
                task,
                used: self.clock,
                identity,
                indexes: Indexes::default(),
            },
        );
        handle
    }

    /// Closes the socket kept for `netns`, if any, and waits until it is closed: a
    /// namespace is freed only when nothing holds it.
    fn forget(&mut self, netns: &str) {
        if let Some(space) = self.spaces.remove(netns) {
            drop(space.handle);
            space.task.abort();
            let _ = self.block(space.task);
        }
    }

    /// The namespace file of `netns`, open (for `IFLA_NET_NS_FD`).
    fn open_netns(&self, netns: &str) -> Result<std::fs::File, KernelError> {
        netns::open(&self.netns_path(netns)).map_err(|error| match error.errno {
            Errno::ENOENT | Errno::EINVAL => {
                KernelError::errno(libc::ENOENT, format!("namespace {netns} does not exist"))
            }
            _ => sys_refused(error, format!("namespace {netns}")),
        })
    }

    /// The connection inside the named namespace; `ENOENT` if there is no such namespace.
    fn space(&mut self, netns: &str) -> Result<Handle, KernelError> {
        check_name(netns)?;
        let path = self.netns_path(netns);
        // The namespace mounted there now: a kept socket serves only while it is the
        // same one (not deleted, or deleted and made again, outside cnm), and while it
        // works (a socket that failed ended its connection: it is opened anew inside).
        let now = netns::identity(&path);
        self.clock += 1;
        if let Some(space) = self.spaces.get_mut(netns) {
            if Some(space.identity) == now && !space.task.is_finished() {
                space.used = self.clock;
                return Ok(space.handle.clone());
            }
        }
        // Stale: let the namespace it held go.
        self.forget(netns);
        if now.is_none() {
            return Err(KernelError::errno(
                libc::ENOENT,
                format!("namespace {netns} does not exist"),
            ));
        }
        let file = self.open_netns(netns)?;
        let (socket, identity) = netns::socket_in(&self.worker, file)
            .map_err(|error| sys_refused(error, format!("namespace {netns}")))?;
        Ok(self.keep(netns, socket, identity))
    }

    /// The connection for `netns` (`None`: cnm's own namespace).
    fn handle(&mut self, netns: Option<&str>) -> Result<Handle, KernelError> {
        match netns {
            None => self.host(),
            Some(netns) => self.space(netns),
        }
    }

    /// As [`Self::handle`], but `None` when the namespace is gone: whatever was inside
    /// it is gone too, which is what a deletion wants.
    fn handle_if_there(&mut self, netns: Option<&str>) -> Result<Option<Handle>, KernelError> {
        match self.handle(netns) {
            Ok(handle) => Ok(Some(handle)),
            Err(error) if error.errno == Some(libc::ENOENT) && netns.is_some() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The connection for an operation in `netns`: one that makes something needs the
    /// namespace; one that undoes has nothing to do (`None`) when the namespace is gone.
    fn handle_for(&mut self, netns: Option<&str>, making: bool) -> Result<Option<Handle>, KernelError> {
        if making {
            self.handle(netns).map(Some)
        } else {
            self.handle_if_there(netns)
        }
    }

    /// The index of `link` in the namespace of `handle`, looked up now, and remembered
    /// while a transaction is under way.
    fn index(&mut self, handle: &Handle, netns: Option<&str>, link: &str) -> Result<u32, KernelError> {
        let index = self
            .block(rtnl::link_index(handle.clone(), link))
            .map_err(|nack| match nack.errno {
                Errno::ENODEV => KernelError::errno(
                    libc::ENODEV,
                    format!("there is no interface named {link}{}", place(netns)),
                ),
                _ => refused(nack, format!("cannot look up interface {link}{}", place(netns))),
            })?;
        self.remember_index(netns, link, index);
        Ok(index)
    }

    /// Remembers the index of `link` in `netns` while a transaction is under way.
    fn remember_index(&mut self, netns: Option<&str>, link: &str, index: u32) {
        if self.in_transaction {
            if let Some(indexes) = self.indexes(netns) {
                indexes.insert(link.to_string(), index);
            }
        }
    }

    /// The link indexes remembered in `netns`, if it has a connection.
    fn indexes(&mut self, netns: Option<&str>) -> Option<&mut Indexes> {
        match netns {
            None => Some(&mut self.host_indexes),
            Some(netns) => self.spaces.get_mut(netns).map(|space| &mut space.indexes),
        }
    }

    /// Forgets the index of a link this backend is about to create or delete.
    fn forget_index(&mut self, netns: Option<&str>, link: &str) {
        if let Some(indexes) = self.indexes(netns) {
            indexes.remove(link);
        }
    }

    /// Sends the request `send` makes with the index of `link` in the namespace of
    /// `handle`: the remembered one, or one looked up now. When the kernel no longer
    /// knows a remembered index, the request goes again with the index looked up then
    /// (see [`Indexes`]). Fails with `ENODEV` when there is no such link.
    fn with_index<F, R, T>(
        &mut self,
        handle: &Handle,
        netns: Option<&str>,
        link: &str,
        send: F,
    ) -> Result<Result<T, Nack>, KernelError>
    where
        F: Fn(Handle, u32) -> R,
        R: Future<Output = Result<T, Nack>>,
    {
        let remembered = self.indexes(netns).and_then(|indexes| indexes.get(link).copied());
        if let Some(index) = remembered {
            let result = self.block(send(handle.clone(), index));
            if !no_such_index(&result) {
                return Ok(result);
            }
            self.forget_index(netns, link);
        }
        let index = self.index(handle, netns, link)?;
        Ok(self.block(send(handle.clone(), index)))
    }

    /// [`Self::with_index`] for an address or a route of `link` in `netns`. When
    /// removing, a missing namespace or link is `None`: there is nothing left to remove.
    fn on_link<F, R>(
        &mut self,
        netns: Option<&str>,
        link: &str,
        add: bool,
        send: F,
    ) -> Result<Option<Result<(), Nack>>, KernelError>
    where
        F: Fn(Handle, u32) -> R,
        R: Future<Output = Result<(), Nack>>,
    {
        let Some(handle) = self.handle_for(netns, add)? else {
            return Ok(None);
        };
        match self.with_index(&handle, netns, link, send) {
            Ok(result) => Ok(Some(result)),
            Err(error) if !add && error.errno == Some(libc::ENODEV) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn add_netns(&mut self, netns: &str) -> Result<(), KernelError> {
        check_name(netns)?;
        self.forget(netns);
        let path = self.netns_path(netns);
        let blank = self.blanks.as_mut().and_then(netns::Blanks::take);
        let create = |worker: &netns::Worker, blank: Option<netns::Blank>| match blank {
            Some(blank) => netns::attach(blank, &path),
            None => netns::create(worker, &path),
        };
        let mut created = create(&self.worker, blank);
        if created.as_ref().is_err_and(|error| error.errno == Errno::ENOENT) {
            // The directory went away since: make it again, as `ip netns add` would.
            self.prepare_dir()?;
            created = create(&self.worker, None);
        }
        let created = created.map_err(|error| match error.errno {
            Errno::EEXIST => KernelError::errno(libc::EEXIST, format!("namespace {netns} already exists")),
            _ => sys_refused(error, format!("cannot create namespace {netns}")),
        })?;
        self.keep(netns, created.socket, created.identity);
        Ok(())
    }

    fn del_netns(&mut self, netns: &str) -> Result<(), KernelError> {
        check_name(netns)?;
        self.forget(netns);
        netns::delete(&self.netns_path(netns))
            .map_err(|error| sys_refused(error, format!("cannot delete namespace {netns}")))
    }

    fn add_veth(
        &mut self,
        link: &str,
        peer: &str,
        netns: &str,
        mtu: u32,
        mac: Mac,
        master: Option<&str>,
    ) -> Result<(), KernelError> {
        let inside = self.space(netns)?;
        let host = self.host()?;
        let fd = self.open_netns(netns)?;
        let create = |host: Handle, master: Option<u32>| {
            let veth = rtnl::Veth {
                link,
                link_mac: derived_mac(link),
                peer,
                netns_fd: fd.as_raw_fd(),
                mac: mac.octets().to_vec(),
                mtu,
                master,
            };
            rtnl::add_veth(host, veth)
        };
        let created = match master {
            Some(master) => self.with_index(&host, None, master, |host, index| create(host, Some(index)))?,
            None => self.block(create(host.clone(), None)),
        };
        drop(fd);
        let peer_index = match created {
            Ok(index) => index,
            Err(nack) => {
                let attached = master.map(|master| format!(" on {master}")).unwrap_or_default();
                return Err(self
                    .name_taken(&nack, link, peer, netns, &host, &inside)
                    .unwrap_or_else(|| {
                        refused(
                            nack,
                            format!(
                                "cannot create veth {link}{attached} with peer {peer}{}",
                                place(Some(netns))
                            ),
                        )
                    }));
            }
        };
        let (outside, within) = self.block(async {
            futures::join!(
                rtnl::addrgenmode_none(host.clone(), link),
                rtnl::addrgenmode_none(inside.clone(), peer),
            )
        });
        let failed = match (outside, within) {
            (Err(nack), _) => Some(refused(nack, format!("cannot set addrgenmode none on {link}"))),
            (_, Err(nack)) => Some(refused(
                nack,
                format!("cannot set addrgenmode none on {peer}{}", place(Some(netns))),
            )),
            _ => None,
        };
        if let Some(error) = failed {
            // Leave nothing half-made: the step did not happen.
            // (Unless that socket failed: then the error says the effect is unknown, and
            // the executor undoes the step.)
            if let Ok(host) = self.host() {
                let _ = self.block(rtnl::del_link(host, link));
            }
            return Err(error);
        }
        // The address and the route that follow need it: no lookup.
        if let Some(index) = peer_index {
            self.remember_index(Some(netns), peer, index);
        }
        Ok(())
    }

    /// For a veth creation refused with `EEXIST`: which of the two names is taken.
    fn name_taken(
        &self,
        nack: &Nack,
        link: &str,
        peer: &str,
        netns: &str,
        host: &Handle,
        inside: &Handle,
    ) -> Option<KernelError> {
        if nack.errno != Errno::EEXIST || nack.unanswered {
            return None;
        }
        if self.block(rtnl::link_index(host.clone(), link)).is_ok() {
            return Some(KernelError::errno(
                libc::EEXIST,
                format!("an interface named {link} already exists"),
            ));
        }
        if self.block(rtnl::link_index(inside.clone(), peer)).is_ok() {
            return Some(KernelError::errno(
                libc::EEXIST,
                format!("an interface named {peer} already exists{}", place(Some(netns))),
            ));
        }
        None
    }

    fn add_macvlan(
        &mut self,
        link: &str,
        parent: &str,
        netns: &str,
        mtu: u32,
        mac: Mac,
    ) -> Result<(), KernelError> {
        let inside = self.space(netns)?;
        let host = self.host()?;
        let fd = self.open_netns(netns)?;
        let created = self.with_index(&host, None, parent, |host, parent| {
            rtnl::add_macvlan(host, link, parent, fd.as_raw_fd(), mtu, mac.octets().to_vec())
        })?;
        drop(fd);
        created.map_err(|nack| {
            if nack.errno == Errno::EEXIST && self.block(rtnl::link_index(inside, link)).is_ok() {
                return KernelError::errno(
                    libc::EEXIST,
                    format!("an interface named {link} already exists{}", place(Some(netns))),
                );
            }
            refused(
                nack,
                format!("cannot create macvlan {link} on {parent}{}", place(Some(netns))),
            )
        })
    }

    fn del_link(&mut self, netns: Option<&str>, link: &str) -> Result<(), KernelError> {
        let Some(handle) = self.handle_if_there(netns)? else {
            return Ok(());
        };
        let deleted = self.block(rtnl::del_link(handle, link));
        gone_ok(deleted, &[Errno::ENODEV])
            .map_err(|nack| refused(nack, format!("cannot delete interface {link}{}", place(netns))))
    }

    fn set_master(&mut self, link: &str, master: &str) -> Result<(), KernelError> {
        let host = self.host()?;
        self.with_index(&host, None, master, |host, index| {
            rtnl::set_master(host, link, index)
        })?
        .map_err(|nack| refused(nack, format!("cannot attach {link} to {master}")))
    }

    fn no_master(&mut self, link: &str) -> Result<(), KernelError> {
        // An undo: a link that is gone is attached to nothing.
        let host = self.host()?;
        let detached = self.block(rtnl::set_master(host, link, 0));
        gone_ok(detached, &[Errno::ENODEV]).map_err(|nack| refused(nack, format!("cannot detach {link}")))
    }

    fn set_up(&mut self, netns: Option<&str>, link: &str, up: bool) -> Result<(), KernelError> {
        // Down is an undo: a link (or namespace) that is gone is down.
        let Some(handle) = self.handle_for(netns, up)? else {
            return Ok(());
        };
        let result = self.block(rtnl::set_up(handle, link, up));
        let result = if up {
            result
        } else {
            gone_ok(result, &[Errno::ENODEV])
        };
        let state = if up { "up" } else { "down" };
        result.map_err(|nack| match nack.errno {
            Errno::ENODEV => KernelError::errno(
                libc::ENODEV,
                format!("there is no interface named {link}{}", place(netns)),
            ),
            _ => refused(nack, format!("cannot set {link} {state}{}", place(netns))),
        })
    }

    fn address(
        &mut self,
        netns: Option<&str>,
        link: &str,
        address: IpNetwork,
        add: bool,
    ) -> Result<(), KernelError> {
        let sent = self.on_link(netns, link, add, |handle, index| {
            rtnl::address(handle, index, address, add)
        })?;
        let Some(result) = sent else {
            return Ok(());
        };
        if add {
            result.map_err(|nack| match nack.errno {
                Errno::EEXIST => KernelError::errno(
                    libc::EEXIST,
                    format!("{link}{} already has address {address}", place(netns)),
                ),
                _ => refused(
                    nack,
                    format!("cannot add address {address} to {link}{}", place(netns)),
                ),
            })
        } else {
            gone_ok(result, &[Errno::EADDRNOTAVAIL, Errno::ENODEV, Errno::ESRCH]).map_err(|nack| {
                refused(
                    nack,
                    format!("cannot delete address {address} from {link}{}", place(netns)),
                )
            })
        }
    }

    fn route(&mut self, name: &str, gateway: IpAddr, link: &str, add: bool) -> Result<(), KernelError> {
        let netns = Some(name);
        let sent = self.on_link(netns, link, add, |handle, index| {
            rtnl::default_route(handle, gateway, index, add)
        })?;
        let Some(result) = sent else {
            return Ok(());
        };
        if add {
            result.map_err(|nack| match nack.errno {
                Errno::EEXIST => KernelError::errno(
                    libc::EEXIST,
                    format!("namespace {name} already has a default route"),
                ),
                _ => refused(
                    nack,
                    format!(
                        "cannot add default route via {gateway} dev {link}{}",
                        place(netns)
                    ),
                ),
            })
        } else {
            gone_ok(result, &[Errno::ESRCH, Errno::ENODEV]).map_err(|nack| {
                refused(
                    nack,
                    format!(
                        "cannot delete default route via {gateway} dev {link}{}",
                        place(netns)
                    ),
                )
            })
        }
    }

    fn remove_file(&mut self, netns: &str, file: EtcFile) -> Result<(), KernelError> {
        check_name(netns)?;
        let dir = self.etc_dir.join(netns);
        self.unsynced.store(true, Ordering::SeqCst);
        etc::remove(&dir, &file.to_string()).map_err(|error| {
            KernelError::errno(
                error.raw_os_error().unwrap_or(libc::EIO),
                format!("cannot remove {}: {error}", dir.join(file.to_string()).display()),
            )
        })
    }
}

/// Writes a sandbox's file under `etc_dir`, and says so in `unsynced`.
fn write_file(
    etc_dir: &Path,
    unsynced: &AtomicBool,
    netns: &str,
    file: EtcFile,
    content: &FileText,
) -> Result<(), KernelError> {
    check_name(netns)?;
    let dir = etc_dir.join(netns);
    unsynced.store(true, Ordering::SeqCst);
    etc::write(&dir, &file.to_string(), content).map_err(|error| {
        KernelError::errno(
            error.raw_os_error().unwrap_or(libc::EIO),
            format!("cannot write {}: {error}", dir.join(file.to_string()).display()),
        )
    })
}

/// Whether `netns_dir/netns` is a mounted network namespace. Needs no privilege, so
/// that commands which only read (`cnm plan`) can tell a dead sandbox too.
pub fn netns_exists(netns_dir: &std::path::Path, netns: &str) -> bool {
    check_name(netns).is_ok() && netns::is_netns(&netns_dir.join(netns))
}

/// A netlink socket in the namespace cnm runs in (the main thread never leaves it).
fn host_socket() -> Result<Socket, KernelError> {
    Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE).map_err(|error| {
        let errno = match error.raw_os_error() {
            Some(libc::EACCES) | None => libc::EPERM,
            Some(errno) => errno,
        };
        KernelError::errno(errno, format!("cannot open a netlink socket: {error}"))
    })
}

/// Drives `socket` with a netlink connection task on `runtime`. The task ends when the
/// socket fails (to send or to receive), and with it every request still waiting.
fn connect(runtime: &Runtime, socket: Socket) -> (Handle, JoinHandle<()>) {
    // Errors carry the kernel's explanation, and not a copy of the request.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    let _inside = runtime.enter();
    // SAFETY: the descriptor comes from `into_raw_fd`, so this is its only owner.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (mut connection, handle, _) = rtnetlink::from_socket(socket);
    // Acknowledgements reach the request: only they say that it was carried out.
    connection.set_forward_ack(true);
    // And the end of a dump: only it says that the listing is whole.
    connection.set_forward_done(true);
    (handle, runtime.spawn(connection))
}

impl Backend for NetlinkBackend {
    fn apply(&mut self, op: &Op) -> Result<(), KernelError> {
        // A link made or deleted here gets a new index, or none.
        match op {
            Op::AddBridge { bridge: link, .. } => self.forget_index(None, link),
            Op::DelLink { netns, link } => self.forget_index(netns.as_deref(), link),
            Op::AddVeth {
                link, peer, netns, ..
            } => {
                self.forget_index(None, link);
                self.forget_index(Some(netns), peer);
            }
            Op::AddMacvlan { link, netns, .. } => self.forget_index(Some(netns), link),
            _ => {}
        }
        match op {
            Op::AddNetns { netns } => self.add_netns(netns),
            Op::DelNetns { netns, .. } => self.del_netns(netns),
            Op::AddBridge { bridge, mtu } => {
                let host = self.host()?;
                self.block(rtnl::add_bridge(host, bridge, *mtu, derived_mac(bridge)))
                    .map_err(|nack| match nack.errno {
                        Errno::EEXIST => KernelError::errno(
                            libc::EEXIST,
                            format!("an interface named {bridge} already exists"),
                        ),
                        _ => refused(nack, format!("cannot create bridge {bridge} (mtu {mtu})")),
                    })
            }
            Op::AddVeth {
                link,
                peer,
                netns,
                mtu,
                mac,
                master,
            } => self.add_veth(link, peer, netns, *mtu, *mac, master.as_deref()),
            Op::AddMacvlan {
                link,
                parent,
                netns,
                mtu,
                mac,
            } => self.add_macvlan(link, parent, netns, *mtu, *mac),
            Op::DelLink { netns, link } => self.del_link(netns.as_deref(), link),
            Op::SetMaster { link, master } => self.set_master(link, master),
            Op::NoMaster { link } => self.no_master(link),
            Op::LinkUp { netns, link } => self.set_up(netns.as_deref(), link, true),
            Op::LinkDown { netns, link } => self.set_up(netns.as_deref(), link, false),
            Op::AddAddress { netns, link, address } => self.address(netns.as_deref(), link, *address, true),
            Op::DelAddress { netns, link, address } => self.address(netns.as_deref(), link, *address, false),
            Op::AddRoute { netns, gateway, link } => self.route(netns, *gateway, link, true),
            Op::DelRoute { netns, gateway, link } => self.route(netns, *gateway, link, false),
            Op::WriteFile { netns, file, content } => {
                write_file(&self.etc_dir, &self.unsynced, netns, *file, content)
            }
            Op::RemoveFile { netns, file } => self.remove_file(netns, *file),
            Op::SetForwarding { on } => nft::set_ip_forward(*on),
            Op::RouteLocalnet { link, on } => nft::set_route_localnet(link, *on),
            firewall => nft::apply_batch(std::slice::from_ref(firewall)),
        }
    }

    fn firewall(&mut self, batch: &[Op]) -> Result<(), KernelError> {
        nft::apply_batch(batch)
    }

    fn ip_forward(&mut self) -> Result<bool, KernelError> {
        nft::ip_forward()
    }

    fn sync_files(&mut self) -> Result<(), KernelError> {
        if !self.unsynced.load(Ordering::SeqCst) {
            return Ok(());
        }
        etc::sync(&self.etc_dir).map_err(|error| {
            KernelError::errno(
                error.raw_os_error().unwrap_or(libc::EIO),
                format!(
                    "cannot flush the files under {} to disk: {error}",
                    self.etc_dir.display()
                ),
            )
        })?;
        self.unsynced.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn begin_transaction(&mut self, namespaces: usize) {
        self.end_transaction();
        self.in_transaction = true;
        if namespaces > 0 {
            self.blanks = Some(netns::Blanks::start(namespaces));
        }
    }

    fn end_transaction(&mut self) {
        self.in_transaction = false;
        self.blanks = None;
        self.host_indexes.clear();
        for space in self.spaces.values_mut() {
            space.indexes.clear();
        }
    }

    fn file_writer(&mut self) -> Option<FileWriter> {
        let (etc_dir, unsynced) = (self.etc_dir.clone(), Arc::clone(&self.unsynced));
        Some(Box::new(move |op| match op {
            Op::WriteFile { netns, file, content } => write_file(&etc_dir, &unsynced, netns, *file, content),
            other => Err(KernelError::other(format!("not a file to write: {other:?}"))),
        }))
    }

    fn settle(&mut self, links: &[Name]) -> Result<(), KernelError> {
        let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
        let mut left: Vec<&str> = links.iter().map(|link| &**link).collect();
        while !left.is_empty() {
            let host = self.host()?;
            // One name: one lookup. More: one listing of all links rather than a lookup
            // each (the 500 veths of a destroy: 16 ms of lookups, traced). A listing
            // that failed or was interrupted tells nothing: the next try asks again.
            if let [link] = left[..] {
                if let Err(nack) = self.block(rtnl::link_index(host, link)) {
                    if nack.errno == Errno::ENODEV {
                        left.clear();
                    }
                }
            } else if let Ok(names) = self.block(rtnl::link_names(host)) {
                left.retain(|link| names.contains(*link));
            }
            if left.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(KernelError::other(format!(
                    "the kernel has not removed {} of deleted namespaces after {} s: {}",
                    if left.len() == 1 {
                        "an interface"
                    } else {
                        "interfaces"
                    },
                    SETTLE_TIMEOUT.as_secs(),
                    left.join(", ")
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    fn netns_exists(&mut self, netns: &str) -> bool {
        netns_exists(&self.netns_dir, netns)
    }
}
