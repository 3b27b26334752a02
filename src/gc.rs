//! Leftovers: what cnm made that the committed state does not know (a lost state
//! directory, a crash in an older version). Only what carries cnm's mark counts:
//!
//! - a host link named as cnm names them (`cnm0`, `cnm-…`, `ve-` and 12 hex digits)
//!   whose MAC is the one cnm derives from that name ([`Mac::of_name`]);
//! - a namespace whose hosts file under the etc directory starts with cnm's mark for
//!   that very name ([`hosts_mark_owner`]), and that mark's files;
//! - cnm's own nftables table, when the state has no network that needs it.
//!
//! An interface or a namespace made by hand, however alike its name, is never touched.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use crate::backend::netlink::netns_exists;
use crate::model::{Mac, Model};
use crate::observe::Space;
use crate::plan::{firewall, hosts_mark_owner, EtcFile, Op};

/// What `cnm gc` removes: the operations, in order (links, then namespaces and their
/// files, then the firewall).
pub fn leftovers(model: &Model, netns_dir: &Path, etc_dir: &Path) -> io::Result<Vec<Op>> {
    let mut ops = Vec::new();
    let known_links: BTreeSet<&str> = model
        .networks
        .values()
        .filter_map(|n| n.bridge.as_deref())
        .chain(model.endpoints.values().map(|e| e.host_ifname.as_str()))
        .collect();
    for (name, link) in Space::read(None)?.links {
        let cnm_named = name == "cnm0" || name.starts_with("cnm-") || is_veth_host_end(&name);
        if cnm_named && link.mac == Some(Mac::of_name(&name)) && !known_links.contains(name.as_str()) {
            ops.push(Op::DelLink {
                netns: None,
                link: name.as_str().into(),
            });
        }
    }
    let known_netns: BTreeSet<&str> = model.sandboxes.values().filter_map(|s| s.netns()).collect();
    let mut names: Vec<String> = std::fs::read_dir(etc_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        if known_netns.contains(name.as_str()) || !marked(etc_dir, &name) {
            continue;
        }
        if netns_exists(netns_dir, &name) {
            ops.push(Op::DelNetns {
                netns: name.as_str().into(),
                links: Vec::new(),
            });
        }
        for file in [EtcFile::Hosts, EtcFile::ResolvConf] {
            if etc_dir.join(&name).join(file.to_string()).exists() {
                ops.push(Op::RemoveFile {
                    netns: name.as_str().into(),
                    file,
                });
            }
        }
    }
    if !firewall::needs_table(model) && crate::drift::firewall_table_exists() {
        ops.push(Op::DelFirewall);
    }
    Ok(ops)
}

/// Whether `ve-` and 12 lowercase hex digits, as cnm names a veth's host end.
fn is_veth_host_end(name: &str) -> bool {
    name.strip_prefix("ve-")
        .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether `etc_dir/name/hosts` starts with cnm's mark for `name`.
fn marked(etc_dir: &Path, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(etc_dir.join(name).join("hosts")) else {
        return false;
    };
    text.lines().next().and_then(hosts_mark_owner) == Some(name)
}
