//! The firewall and forwarding of the host's namespace: nftables batches through
//! `nft -f -` (one process per batch, which the kernel applies atomically), and
//! `net.ipv4.ip_forward` through `/proc/sys`, which shows the namespace of the thread
//! that opens it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::backend::KernelError;
use crate::plan::Op;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Runs firewall operations as one `nft` batch: all of them take effect, or none.
pub fn apply_batch(batch: &[Op]) -> Result<(), KernelError> {
    let mut script = String::new();
    for line in batch.iter().flat_map(Op::nft_lines) {
        script.push_str(&line);
        script.push('\n');
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KernelError::errno(
                libc::ENOENT,
                "`nft` is not installed: the firewall needs nftables (apt-get install nftables)",
            ),
            _ => KernelError::other(format!("cannot run nft: {e}")),
        })?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes());
    let output = child
        .wait_with_output()
        .map_err(|e| KernelError::other(format!("nft did not finish: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    if let Err(e) = written {
        return Err(KernelError::other(format!("cannot send the batch to nft: {e}")));
    }
    Err(refusal(&String::from_utf8_lossy(&output.stderr)))
}

/// nft's complaint, its first `Error:` line, with the errno its words stand for.
fn refusal(stderr: &str) -> KernelError {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("Error: ").map(|(_, e)| e))
        .unwrap_or(stderr.trim());
    let errno = [
        ("No such file or directory", libc::ENOENT),
        ("File exists", libc::EEXIST),
        ("overlaps with an existing one", libc::EEXIST),
        ("Operation not permitted", libc::EPERM),
        ("Permission denied", libc::EACCES),
        ("Device or resource busy", libc::EBUSY),
        ("Protocol not supported", libc::EPROTONOSUPPORT),
    ]
    .into_iter()
    .find(|(words, _)| line.contains(words))
    .map(|(_, errno)| errno);
    let message = format!("nft: {line}");
    match errno {
        Some(errno) => KernelError::errno(errno, message),
        None => KernelError::other(message),
    }
}

/// The namespace's `net.ipv4.ip_forward`. Reading it needs no privilege.
pub fn ip_forward() -> Result<bool, KernelError> {
    let text = std::fs::read_to_string(IP_FORWARD).map_err(|e| io_error(e, "read"))?;
    Ok(text.trim() != "0")
}

pub fn set_ip_forward(on: bool) -> Result<(), KernelError> {
    std::fs::write(IP_FORWARD, if on { "1\n" } else { "0\n" }).map_err(|e| io_error(e, "write"))
}

/// A host interface's `route_localnet`; turning it off where the interface is gone is
/// success.
pub fn set_route_localnet(link: &str, on: bool) -> Result<(), KernelError> {
    if link.is_empty() || link.contains(['/', '\0']) || link.starts_with('.') {
        return Err(KernelError::errno(
            libc::EINVAL,
            format!("invalid interface name {link:?}"),
        ));
    }
    let path = format!("/proc/sys/net/ipv4/conf/{link}/route_localnet");
    match std::fs::write(&path, if on { "1\n" } else { "0\n" }) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !on => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KernelError::errno(
            libc::ENODEV,
            format!("no interface named {link}"),
        )),
        Err(e) => Err(KernelError::errno(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("cannot write {path}: {e}"),
        )),
    }
}

fn io_error(error: std::io::Error, what: &str) -> KernelError {
    KernelError::errno(
        error.raw_os_error().unwrap_or(libc::EIO),
        format!("cannot {what} {IP_FORWARD}: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_complaints_keep_their_words_and_errno() {
        let stderr =
            "/dev/stdin:1:18-20: Error: No such file or directory\nadd element inet cnm x { \"y\" }\n";
        let error = refusal(stderr);
        assert_eq!(error.errno, Some(libc::ENOENT));
        assert_eq!(error.message, "nft: No such file or directory");
        assert_eq!(
            refusal("Error: Could not process rule: File exists").errno,
            Some(libc::EEXIST)
        );
        assert_eq!(refusal("syntax error, unexpected junk").errno, None);
    }
}
