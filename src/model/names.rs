//! Ids and kernel names: derived from cnm's names, stable across runs, and within the
//! kernel's 15-byte limit for interface names.

use sha2::{Digest, Sha256};

use super::{ObjectKind, DEFAULT_BRIDGE, DEFAULT_NETWORK};

/// Longest interface name Linux accepts (IFNAMSIZ less the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// A 64-hex-digit id, like Docker's, derived from the object's kind and name so that the
/// same script always gives the same ids (and so the same plan).
pub fn object_id(kind: ObjectKind, name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::new()
        .chain_update(kind.as_str())
        .chain_update([0])
        .chain_update(name)
        .finalize();
    let hex = digest
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .collect();
    String::from_utf8(hex).expect("hex digits are ASCII")
}

/// The bridge of a network: `cnm0` for the default network, `cnm-NAME` when that fits,
/// else `cnm-` and the start of the network's id.
pub fn bridge_name(network: &str, id: &str) -> String {
    if network == DEFAULT_NETWORK {
        return DEFAULT_BRIDGE.to_string();
    }
    let readable = format!("cnm-{network}");
    if readable.len() <= IFNAME_MAX {
        readable
    } else {
        format!("cnm-{}", &id[..IFNAME_MAX - 4])
    }
}

/// The host end of an endpoint's veth pair: `ve-` and 12 hex digits of its id.
pub fn veth_name(id: &str) -> String {
    format!("ve-{}", &id[..IFNAME_MAX - 3])
}

/// The name of the endpoint `connect` makes when none is named: `SANDBOX.NETWORK`.
pub fn endpoint_name(sandbox: &str, network: &str) -> String {
    // Not format!: a script of 10,000 sandboxes names 10,000 endpoints.
    let mut name = String::with_capacity(sandbox.len() + 1 + network.len());
    name.push_str(sandbox);
    name.push('.');
    name.push_str(network);
    name
}
