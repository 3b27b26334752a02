//! The one seam to the kernel. A [`Backend`] interprets plan operations; everything
//! above it (checker, planner, executor, journal) is testable without root.
//!
//! - [`netlink`]: the real kernel, over rtnetlink and nix.
//! - [`memory`]: a model of the kernel's objects, for tests, fault injection and
//!   `apply --dry-run`.

pub mod memory;
pub mod netlink;

use crate::plan::Op;

/// Performs kernel operations, one at a time.
pub trait Backend {
    /// Performs one operation. Deleting what is already gone (a link, an address, a
    /// route, a namespace, a file) is success, so that undoing can run twice.
    fn apply(&mut self, op: &Op) -> Result<(), KernelError>;

    /// Whether the named namespace exists (a sandbox whose namespace vanished outside
    /// cnm is dead).
    fn netns_exists(&mut self, netns: &str) -> bool;

    /// Waits until the kernel has finished what earlier operations set going in the
    /// background (the removal of a deleted namespace's veths), so that the next
    /// transaction can use their names again.
    fn settle(&mut self) -> Result<(), KernelError> {
        Ok(())
    }
}

/// A refused operation: the kernel's errno, if it gave one, and what happened in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KernelError {
    pub errno: Option<i32>,
    pub message: String,
}

impl KernelError {
    pub fn errno(errno: i32, message: impl Into<String>) -> KernelError {
        KernelError {
            errno: Some(errno),
            message: message.into(),
        }
    }

    pub fn other(message: impl Into<String>) -> KernelError {
        KernelError {
            errno: None,
            message: message.into(),
        }
    }
}
