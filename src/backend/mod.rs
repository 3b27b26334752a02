//! The one seam to the kernel. A [`Backend`] interprets plan operations; everything
//! above it (checker, planner, executor, journal) is testable without root.
//!
//! - [`netlink`]: the real kernel, over rtnetlink and nix.
//! - [`memory`]: a model of the kernel's objects, for tests, fault injection and
//!   `apply --dry-run`.

pub mod memory;
pub mod netlink;

use crate::plan::{Name, Op};

/// Performs kernel operations, one at a time.
pub trait Backend {
    /// Performs one operation. Deleting what is already gone (a link, an address, a
    /// route, a namespace, a file) is success, so that undoing can run twice.
    fn apply(&mut self, op: &Op) -> Result<(), KernelError>;

    /// Whether the named namespace exists (a sandbox whose namespace vanished outside
    /// cnm is dead).
    fn netns_exists(&mut self, netns: &str) -> bool;

    /// Waits until the host links named, which belonged to veth pairs of namespaces
    /// deleted earlier, are gone: the kernel removes them in the background, and their
    /// names stay taken until it has.
    fn settle(&mut self, links: &[Name]) -> Result<(), KernelError>;

    /// Performs firewall operations ([`Op::is_firewall`]) as one atomic batch: all of
    /// them take effect, or none does.
    fn firewall(&mut self, batch: &[Op]) -> Result<(), KernelError>;

    /// The host's `net.ipv4.ip_forward`.
    fn ip_forward(&mut self) -> Result<bool, KernelError>;

    /// Makes the files written or removed since the last call durable: the executor
    /// calls it once a transaction's steps are done (or undone), so that one flush of
    /// the filesystem serves every file of the transaction.
    fn sync_files(&mut self) -> Result<(), KernelError>;

    /// Something that performs [`Op::WriteFile`] from another thread, as `apply` would,
    /// if this backend has it: the executor writes a transaction's files with it ahead
    /// of their turn, while the kernel works on links. What it writes, the next
    /// `sync_files` flushes.
    fn file_writer(&mut self) -> Option<FileWriter> {
        None
    }

    /// Told before a transaction's steps, with how many namespaces they create
    /// ([`Op::AddNetns`]): a backend may make that many ahead, on a thread of its own,
    /// while the kernel works on the steps before. What it makes ahead shows nowhere
    /// before its `AddNetns` names it. Until [`end_transaction`](Self::end_transaction),
    /// it may also remember what it looked up in the kernel (link indexes).
    fn begin_transaction(&mut self, _namespaces: usize) {}

    /// Told after a transaction's steps, done or undone: what was made ahead and not
    /// used is freed, and what was remembered is forgotten.
    fn end_transaction(&mut self) {}
}

/// See [`Backend::file_writer`].
pub type FileWriter = Box<dyn FnMut(&Op) -> Result<(), KernelError> + Send>;

/// A refused operation: the kernel's errno, if it gave one, and what happened in words.
///
/// A refusal means the operation had no effect, unless `effect_unknown` says that the
/// request may have been carried out all the same (it went out, and no answer came).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KernelError {
    pub errno: Option<i32>,
    pub message: String,
    pub effect_unknown: bool,
}

impl KernelError {
    pub fn errno(errno: i32, message: impl Into<String>) -> KernelError {
        KernelError {
            errno: Some(errno),
            message: message.into(),
            effect_unknown: false,
        }
    }

    pub fn other(message: impl Into<String>) -> KernelError {
        KernelError {
            errno: None,
            message: message.into(),
            effect_unknown: false,
        }
    }

    /// A request that went out and got no answer: it may or may not have taken effect.
    pub fn unanswered(errno: i32, message: impl Into<String>) -> KernelError {
        KernelError {
            effect_unknown: true,
            ..KernelError::errno(errno, message)
        }
    }
}
