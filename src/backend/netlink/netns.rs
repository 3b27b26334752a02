//! Named network namespaces, the iproute2 way, and the threads that enter them.
//!
//! Namespaces are per thread: every `unshare` and `setns` here runs on a dedicated
//! thread, never on the caller's thread nor inside an async task. A netlink
//! socket opened on such a thread stays bound to that thread's namespace for its life.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::statfs::{statfs, NSFS_MAGIC};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::Socket;

/// The namespace of the thread that opens this, seen from any other thread.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

type Job = Box<dyn FnOnce() + Send>;

/// A long-lived dedicated thread for the work that changes namespaces (spawning a
/// thread per namespace costs more than making the namespace). After each job it goes
/// back to the namespace it started in, so it holds none of the namespaces it visited.
pub struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub fn start() -> Worker {
        let (jobs, inbox) = mpsc::channel::<Job>();
        // Home: the namespace of the thread that starts the worker, which it inherits.
        let thread = File::open(THREAD_NETNS).ok().and_then(|home| {
            std::thread::Builder::new()
                .name("cnm-netns".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    for job in inbox {
                        job();
                        if setns(&home, CloneFlags::CLONE_NEWNET).is_err() {
                            // Stuck elsewhere: end; the next jobs run on threads of
                            // their own.
                            return;
                        }
                    }
                })
                .ok()
        });
        Worker {
            jobs: thread.is_some().then_some(jobs),
            thread,
        }
    }

    /// Runs `work` on the worker thread (or, if it is gone, on a fresh thread) and waits
    /// for it. `work` may change the thread's network namespace.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, SysError> + Send + 'static,
    ) -> Result<T, SysError> {
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => None,
                Err(mpsc::SendError(job)) => Some(job),
            },
            None => Some(job),
        };
        if let Some(job) = job {
            on_thread(job);
        }
        // No answer: the worker ended with the job unrun, or the job panicked.
        result.recv().unwrap_or(Err(SysError {
            errno: Errno::EIO,
            doing: "run the namespace thread",
        }))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `work` on a fresh thread and waits for it: the thread may change its own
/// namespace, and takes that change with it when it ends.
fn on_thread(job: Job) {
    let thread = std::thread::Builder::new()
        .name("cnm-netns".into())
        .stack_size(256 * 1024)
        .spawn(job);
    // A thread that cannot start, or that panics, gives no answer: `run` says so.
    if let Ok(thread) = thread {
        let _ = thread.join();
    }
}

/// A failed system call: what was being done, and the errno.
pub struct SysError {
    pub errno: Errno,
    pub doing: &'static str,
}

trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, SysError>;
}

impl<T> Doing<T> for Result<T, Errno> {
    fn doing(self, doing: &'static str) -> Result<T, SysError> {
        self.map_err(|errno| SysError { errno, doing })
    }
}

impl<T> Doing<T> for std::io::Result<T> {
    fn doing(self, doing: &'static str) -> Result<T, SysError> {
        self.map_err(|error| SysError {
            errno: Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO)),
            doing,
        })
    }
}

/// Makes `dir` a shared mount point, as `ip netns add` does, so that the namespace
/// mounts made under it propagate to every mount namespace that sees it.
pub fn make_shared(dir: &Path) -> Result<(), SysError> {
    let shared = || {
        mount(
            Some(""),
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it on itself, then share it.
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .doing("bind-mount the namespace directory on itself")?;
            shared().doing("make the namespace directory a shared mount")
        }
        Err(errno) => Err(errno).doing("make the namespace directory a shared mount"),
    }
}

/// Whether this process may create network namespaces: tries, on the worker.
pub fn can_unshare(worker: &Worker) -> Result<(), SysError> {
    worker.run(|| unshare(CloneFlags::CLONE_NEWNET).doing("create a network namespace"))
}

/// Which namespace a namespace file shows: the device and inode it stats as.
pub type Identity = (u64, u64);

fn identity_of(metadata: &std::fs::Metadata) -> Identity {
    (metadata.dev(), metadata.ino())
}

/// Which namespace is mounted on `path` now; `None` if there is no such file.
pub fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path)
        .ok()
        .map(|metadata| identity_of(&metadata))
}

/// A namespace just made: a netlink socket opened inside it, and which namespace it is.
pub struct Created {
    pub socket: Socket,
    pub identity: Identity,
}

/// Creates the namespace `path` names: an empty file, then, on the worker thread, a new
/// network namespace bind-mounted onto it. Nothing is left behind on failure. An empty
/// file already there that no namespace is mounted on is what a kill between making
/// the file and mounting on it (or between unmounting and removing it) left: it is
/// removed and made again.
pub fn create(worker: &Worker, path: &Path) -> Result<Created, SysError> {
    make_file(path)?;
    let target = path.to_path_buf();
    let made = worker.run(move || {
        unshare(CloneFlags::CLONE_NEWNET).doing("create a network namespace")?;
        mount(
            Some(THREAD_NETNS),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .doing("bind-mount the namespace")?;
        let identity = std::fs::metadata(&target).doing("look at the namespace")?;
        let socket = Socket::new(NETLINK_ROUTE).doing("open a netlink socket in the namespace")?;
        Ok(Created {
            socket,
            identity: identity_of(&identity),
        })
    });
    if made.is_err() {
        unmake(path);
    }
    made
}

/// Gives the name `path` to a namespace made ahead ([`Blanks`]): the same file and bind
/// mount as [`create`], made from this thread. Nothing is left behind on failure; the
/// blank is freed then.
pub fn attach(blank: Blank, path: &Path) -> Result<Created, SysError> {
    let identity = identity_of(&blank.netns.metadata().doing("look at the namespace")?);
    make_file(path)?;
    // The descriptor's magic link leads to the namespace itself, as /proc/PID/ns/net
    // does for `ip netns attach`.
    let source = format!("/proc/self/fd/{}", blank.netns.as_raw_fd());
    let mounted = mount(
        Some(source.as_str()),
        path,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .doing("bind-mount the namespace");
    if let Err(error) = mounted {
        unmake(path);
        return Err(error);
    }
    Ok(Created {
        socket: blank.socket,
        identity,
    })
}

/// Makes the empty file a namespace is mounted on (see [`create`] for a stale one).
fn make_file(path: &Path) -> Result<(), SysError> {
    let make = || {
        nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    let file = match make() {
        Err(Errno::EEXIST) if is_stale(path) => {
            std::fs::remove_file(path).doing("remove a stale namespace file")?;
            make()
        }
        made => made,
    }
    .doing("create the namespace file")?;
    drop(file);
    Ok(())
}

/// Removes what a failed [`create`] or [`attach`] left of `path`.
fn unmake(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// A network namespace made ahead of its name: held by a descriptor alone, so that it
/// shows nowhere and goes when dropped; with a netlink socket opened inside it.
pub struct Blank {
    netns: File,
    socket: Socket,
}

/// Namespaces made ahead, on a thread of their own, while the caller does other work:
/// creating one costs the kernel a few hundred microseconds. At most [`BLANKS_AHEAD`]
/// wait at a time; those never taken are freed with the `Blanks`.
pub struct Blanks {
    made: Option<mpsc::Receiver<Result<Blank, SysError>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How many namespaces [`Blanks`] makes before the first is taken.
const BLANKS_AHEAD: usize = 8;

impl Blanks {
    /// Starts making `count` namespaces. The thread goes back to its first namespace
    /// after each, so that it never holds one (a deleted namespace's veths go only when
    /// nothing holds it).
    pub fn start(count: usize) -> Blanks {
        let (send, made) = mpsc::sync_channel(BLANKS_AHEAD);
        let thread = File::open(THREAD_NETNS).ok().and_then(|home| {
            std::thread::Builder::new()
                .name("cnm-netns-ahead".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    for _ in 0..count {
                        let blank = make_blank(&home);
                        let failed = blank.is_err();
                        if send.send(blank).is_err() || failed {
                            return;
                        }
                    }
                })
                .ok()
        });
        Blanks {
            made: thread.is_some().then_some(made),
            thread,
        }
    }

    /// The next namespace made ahead, once it is made; `None` when there is none left,
    /// or making one failed (the caller then makes its namespace as if none were
    /// made ahead, and meets the failure itself).
    pub fn take(&mut self) -> Option<Blank> {
        match self.made.as_ref()?.recv() {
            Ok(Ok(blank)) => Some(blank),
            Ok(Err(_)) | Err(_) => {
                self.made = None;
                None
            }
        }
    }
}

impl Drop for Blanks {
    fn drop(&mut self) {
        // Closing the channel frees the namespaces waiting in it and ends the thread.
        drop(self.made.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A new namespace, with a socket in it; the calling thread is back `home` after.
fn make_blank(home: &File) -> Result<Blank, SysError> {
    unshare(CloneFlags::CLONE_NEWNET).doing("create a network namespace")?;
    let made = File::open(THREAD_NETNS)
        .doing("open the namespace")
        .and_then(|netns| {
            let socket = Socket::new(NETLINK_ROUTE).doing("open a netlink socket in the namespace")?;
            Ok(Blank { netns, socket })
        });
    setns(home, CloneFlags::CLONE_NEWNET).doing("leave the namespace")?;
    made
}

/// Opens the namespace file `path`: `ENOENT` if it is missing, `EINVAL` if it is a file
/// that no namespace is mounted on.
pub fn open(path: &Path) -> Result<File, SysError> {
    if !is_netns(path) {
        let errno = if path.exists() {
            Errno::EINVAL
        } else {
            Errno::ENOENT
        };
        return Err(SysError {
            errno,
            doing: "open the namespace",
        });
    }
    File::open(path).doing("open the namespace")
}

/// A netlink socket inside the namespace `netns` refers to, opened on the worker thread
/// once it entered that namespace; and which namespace it is.
pub fn socket_in(worker: &Worker, netns: File) -> Result<(Socket, Identity), SysError> {
    let identity = identity_of(&netns.metadata().doing("look at the namespace")?);
    let socket = worker.run(move || {
        setns(&netns, CloneFlags::CLONE_NEWNET).doing("enter the namespace")?;
        Socket::new(NETLINK_ROUTE).doing("open a netlink socket in the namespace")
    })?;
    Ok((socket, identity))
}

/// Unmounts and removes the namespace file `path`; the namespace itself goes when the
/// last socket or file that holds it is closed. Missing is success.
pub fn delete(path: &Path) -> Result<(), SysError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a half-made or already unmounted namespace).
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(errno).doing("unmount the namespace"),
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        result => result.doing("remove the namespace file"),
    }
}

/// Whether `path` is an empty regular file that no namespace is mounted on: one that
/// cnm made and a kill left (a file with content is someone else's).
fn is_stale(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.len() == 0) && !is_netns(path)
}

/// Whether `path` is a network namespace mount (not merely a file).
pub fn is_netns(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}
