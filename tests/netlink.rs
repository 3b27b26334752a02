//! The netlink backend against the real kernel, read back with iproute2.
//!
//! Each test re-executes this test binary inside a fresh user + network + mount
//! namespace (`unshare --user --map-root-user --net --mount`), with a tmpfs over `/run`:
//! no root needed, tests run in parallel, and nothing outside changes. The inner run
//! refuses to do anything while it still sees the outer network namespace.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cnm::backend::netlink::NetlinkBackend;
use cnm::backend::{Backend, KernelError};
use cnm::plan::firewall::NftSet;
use cnm::plan::{EtcFile, Name, Op};
use serde_json::Value;

/// Set in the inner run: the outer run's network namespace (`net:[…]`).
const INNER: &str = "CNM_NETLINK_TEST_OUTER_NETNS";
const NETNS_DIR: &str = "/run/netns";
const ETC_DIR: &str = "/run/etc-netns";

/// Runs `body` inside a fresh user + network + mount namespace: re-executes this test
/// binary there for the single test `test`.
fn isolated(test: &str, body: impl FnOnce()) {
    let here = fs::read_link("/proc/self/ns/net").expect("cannot read /proc/self/ns/net");
    if let Ok(outer) = std::env::var(INNER) {
        assert_ne!(
            here.to_string_lossy(),
            outer,
            "refusing to run: still in the outer network namespace"
        );
        // Our own /run: the namespace directory and the files go to a tmpfs of this
        // mount namespace, so `ip -n NAME` finds the namespaces and nothing is left.
        nix::mount::mount(
            Some("tmpfs"),
            "/run",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("cannot mount a tmpfs on /run");
        body();
        return;
    }
    let exe = std::env::current_exe().expect("no test binary path");
    let output = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--propagation",
            "private",
        ])
        .arg(&exe)
        .args([
            test,
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(INNER, here.as_os_str())
        .output()
        .expect("cannot run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(output.status.success(), "the isolated run of {test} failed");
    assert!(stdout.contains("1 passed"), "the isolated run did not run {test}");
}

fn backend() -> NetlinkBackend {
    NetlinkBackend::new(NETNS_DIR.into(), ETC_DIR.into()).expect("cannot make the netlink backend")
}

fn apply(kernel: &mut NetlinkBackend, ops: &[Op]) {
    for op in ops {
        if let Err(error) = kernel.apply(op) {
            panic!("{op:?}: {error} (errno {:?})", error.errno);
        }
    }
}

/// `ip -j ARGS…` (in namespace `netns`, if given), parsed.
fn ip(netns: Option<&str>, args: &str) -> Value {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    let output = command
        .arg("-j")
        .args(args.split_whitespace())
        .output()
        .expect("cannot run ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("ip -j {args}: {error}: {text}"))
}

/// The one link `ip -j -d link show NAME` describes; `None` if there is no such link.
fn link(netns: Option<&str>, name: &str) -> Option<Value> {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    let output = command
        .args(["-j", "-d", "link", "show", "dev", name])
        .output()
        .expect("cannot run ip (iproute2)");
    if !output.status.success() {
        return None;
    }
    let links: Value = serde_json::from_slice(&output.stdout).expect("ip -j link");
    links.as_array().and_then(|links| links.first()).cloned()
}

fn link_names(netns: Option<&str>) -> Vec<String> {
    let links = ip(netns, "link show");
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The addresses (`ADDRESS/PREFIX`) of the link `name`, of every family.
fn addresses(netns: Option<&str>, name: &str) -> Vec<String> {
    let links = ip(netns, &format!("addr show dev {name}"));
    links[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == flag)
}

/// Waits (up to 5 s) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether one ping from inside `netns` to `target` gets an answer (three tries).
fn ping(netns: &str, target: &str) -> bool {
    (0..3).any(|_| {
        Command::new("nsenter")
            .arg(format!("--net={NETNS_DIR}/{netns}"))
            .args(["ping", "-c1", "-W1", "-n", "-q", target])
            .output()
            .expect("cannot run nsenter ping (util-linux, iputils-ping)")
            .status
            .success()
    })
}

fn s(text: &str) -> Name {
    text.into()
}

fn some(text: &str) -> Option<Name> {
    Some(text.into())
}

fn net(text: &str) -> ipnetwork::IpNetwork {
    text.parse().unwrap()
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const BRIDGE: &str = "cnmbr0";
const MTU: u32 = 1450;

fn network_ops() -> Vec<Op> {
    vec![
        Op::AddBridge {
            bridge: s(BRIDGE),
            mtu: MTU,
        },
        Op::AddAddress {
            netns: None,
            link: s(BRIDGE),
            address: net("10.77.0.1/24"),
        },
        Op::AddAddress {
            netns: None,
            link: s(BRIDGE),
            address: net("fd77::1/64"),
        },
        Op::LinkUp {
            netns: None,
            link: s(BRIDGE),
        },
    ]
}

/// A sandbox: namespace `netns`, veth `vh-NETNS` ↔ `eth0` on the bridge, IPv4 (and
/// IPv6) address, default route, hosts file.
fn sandbox_ops(netns: &str, host: u8, mac: &str) -> Vec<Op> {
    let link = s(&format!("vh-{netns}"));
    vec![
        Op::AddNetns { netns: s(netns) },
        Op::LinkUp {
            netns: some(netns),
            link: s("lo"),
        },
        Op::AddVeth {
            link: link.clone(),
            peer: s("eth0"),
            netns: s(netns),
            mtu: MTU,
            mac: mac.parse().unwrap(),
            master: None,
        },
        Op::SetMaster {
            link: link.clone(),
            master: s(BRIDGE),
        },
        Op::LinkUp { netns: None, link },
        Op::AddAddress {
            netns: some(netns),
            link: s("eth0"),
            address: net(&format!("10.77.0.{host}/24")),
        },
        Op::AddAddress {
            netns: some(netns),
            link: s("eth0"),
            address: net(&format!("fd77::{host}/64")),
        },
        Op::LinkUp {
            netns: some(netns),
            link: s("eth0"),
        },
        Op::AddRoute {
            netns: s(netns),
            gateway: addr("10.77.0.1"),
            link: s("eth0"),
        },
        Op::WriteFile {
            netns: s(netns),
            file: EtcFile::Hosts,
            content: format!("127.0.0.1\tlocalhost\n10.77.0.{host}\t{netns}\n").into(),
        },
    ]
}

fn errno_of(result: Result<(), KernelError>) -> (i32, String) {
    let error = result.expect_err("the kernel should refuse");
    println!("refused: {error} (errno {:?})", error.errno);
    (error.errno.expect("an errno"), error.message)
}

#[test]
fn topology_reads_back_with_iproute2_and_passes_packets() {
    isolated("topology_reads_back_with_iproute2_and_passes_packets", || {
        let mut kernel = backend();
        apply(&mut kernel, &network_ops());
        let mac = link(None, BRIDGE).expect("the bridge exists")["address"].clone();
        apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
        apply(&mut kernel, &sandbox_ops("sb", 3, "02:42:0a:4d:00:03"));

        // The bridge, with its gateway addresses, and a MAC its ports do not change.
        let bridge = link(None, BRIDGE).expect("the bridge exists");
        assert_eq!(bridge["address"], mac);
        assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
        assert_eq!(bridge["linkinfo"]["info_data"]["mcast_snooping"], 0);
        assert_eq!(bridge["mtu"], MTU);
        assert!(has_flag(&bridge, "UP"));
        let gateway = addresses(None, BRIDGE);
        assert!(gateway.iter().any(|a| a == "10.77.0.1/24"), "{gateway:?}");
        assert!(gateway.iter().any(|a| a == "fd77::1/64"), "{gateway:?}");

        // The namespaces, as iproute2 lists them.
        let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("sa") && listed.contains("sb"), "{listed}");

        for (netns, host, mac) in [("sa", 2, "02:42:0a:4d:00:02"), ("sb", 3, "02:42:0a:4d:00:03")] {
            let host_end = format!("vh-{netns}");
            // The host end: on the bridge, up, no IPv6 link-local.
            let outside = link(None, &host_end).expect("the host end exists");
            assert_eq!(outside["linkinfo"]["info_kind"], "veth");
            assert_eq!(outside["master"], BRIDGE);
            assert_eq!(outside["mtu"], MTU);
            assert_eq!(outside["inet6_addr_gen_mode"], "none");
            assert!(has_flag(&outside, "UP"));
            eventually("the host end is operationally up", || {
                link(None, &host_end).unwrap()["operstate"] == "UP"
            });
            assert!(addresses(None, &host_end).is_empty());

            // The inner end: named eth0, its MAC, MTU, addresses, up, default route.
            let inside = link(Some(netns), "eth0").expect("eth0 exists in the namespace");
            assert_eq!(inside["linkinfo"]["info_kind"], "veth");
            assert_eq!(inside["address"], mac);
            assert_eq!(inside["mtu"], MTU);
            assert_eq!(inside["inet6_addr_gen_mode"], "none");
            assert_eq!(inside["operstate"], "UP");
            assert_eq!(
                addresses(Some(netns), "eth0"),
                vec![format!("10.77.0.{host}/24"), format!("fd77::{host}/64")]
            );
            let lo = link(Some(netns), "lo").unwrap();
            assert!(has_flag(&lo, "UP"));
            assert_eq!(link_names(Some(netns)), ["lo", "eth0"]);
            let routes = ip(Some(netns), "route show default");
            assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
            assert_eq!(routes[0]["gateway"], "10.77.0.1");
            assert_eq!(routes[0]["dev"], "eth0");

            let hosts = fs::read_to_string(format!("{ETC_DIR}/{netns}/hosts")).unwrap();
            assert_eq!(hosts, format!("127.0.0.1\tlocalhost\n10.77.0.{host}\t{netns}\n"));
            assert!(kernel.netns_exists(netns));
        }

        // Real packets, both ways, and to the gateway; IPv6 too (no DAD to wait for).
        assert!(ping("sa", "10.77.0.3"), "sa cannot reach sb");
        assert!(ping("sb", "10.77.0.2"), "sb cannot reach sa");
        assert!(ping("sa", "10.77.0.1"), "sa cannot reach the gateway");
        assert!(ping("sb", "fd77::2"), "sb cannot reach sa over IPv6");
        // Multicast reaches every sandbox on the bridge: sb, told to answer pings to a
        // group, answers sa's ping to all hosts.
        let answer_groups = Command::new("nsenter")
            .arg(format!("--net={NETNS_DIR}/sb"))
            .args([
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts",
            ])
            .status()
            .unwrap();
        assert!(answer_groups.success());
        let group_ping = Command::new("nsenter")
            .arg(format!("--net={NETNS_DIR}/sa"))
            .args(["ping", "-c1", "-W2", "-n", "-I", "eth0", "224.0.0.1"])
            .output()
            .unwrap();
        let replies = String::from_utf8_lossy(&group_ping.stdout);
        assert!(replies.contains("from 10.77.0.3:"), "{replies}");

        // Teardown leaves nothing.
        for netns in ["sa", "sb"] {
            apply(
                &mut kernel,
                &[
                    Op::RemoveFile {
                        netns: s(netns),
                        file: EtcFile::Hosts,
                    },
                    Op::DelNetns {
                        netns: s(netns),
                        links: Vec::new(),
                    },
                ],
            );
        }
        apply(
            &mut kernel,
            &[Op::DelLink {
                netns: None,
                link: s(BRIDGE),
            }],
        );
        eventually("only lo is left", || link_names(None) == ["lo"]);
        assert_eq!(fs::read_dir(NETNS_DIR).unwrap().count(), 0);
        assert_eq!(fs::read_dir(ETC_DIR).unwrap().count(), 0);
    });
}

#[test]
fn deletions_are_idempotent() {
    isolated("deletions_are_idempotent", || {
        let mut kernel = backend();
        apply(&mut kernel, &network_ops());
        apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
        let resolv = Op::WriteFile {
            netns: s("sa"),
            file: EtcFile::ResolvConf,
            content: "nameserver 10.77.0.1\n".to_string().into(),
        };
        apply(&mut kernel, &[resolv]);

        let route = Op::DelRoute {
            netns: s("sa"),
            gateway: addr("10.77.0.1"),
            link: s("eth0"),
        };
        let address = Op::DelAddress {
            netns: some("sa"),
            link: s("eth0"),
            address: net("10.77.0.2/24"),
        };
        let gateway = Op::DelAddress {
            netns: None,
            link: s(BRIDGE),
            address: net("fd77::1/64"),
        };
        let hosts = Op::RemoveFile {
            netns: s("sa"),
            file: EtcFile::Hosts,
        };
        let resolv = Op::RemoveFile {
            netns: s("sa"),
            file: EtcFile::ResolvConf,
        };
        for op in [&route, &address, &gateway, &hosts] {
            apply(&mut kernel, &[op.clone(), op.clone()]);
        }
        assert!(ip(Some("sa"), "route show default")
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(addresses(Some("sa"), "eth0"), ["fd77::2/64"]);
        let gateway = addresses(None, BRIDGE);
        let gateway: Vec<_> = gateway.iter().filter(|a| !a.starts_with("fe80:")).collect();
        assert_eq!(gateway, vec!["10.77.0.1/24"]);
        // One file left: the directory stays; then it goes with the last file.
        assert!(Path::new(&format!("{ETC_DIR}/sa/resolv.conf")).exists());
        apply(&mut kernel, &[resolv.clone(), resolv]);
        assert!(!Path::new(&format!("{ETC_DIR}/sa")).exists());

        // Undoing on a link that is gone: down, detached, no address, no route.
        let inner = Op::DelLink {
            netns: some("sa"),
            link: s("eth0"),
        };
        apply(&mut kernel, &[inner.clone(), inner]);
        assert!(
            link(None, "vh-sa").is_none(),
            "deleting one veth end deletes both"
        );
        apply(
            &mut kernel,
            &[
                Op::LinkDown {
                    netns: some("sa"),
                    link: s("eth0"),
                },
                Op::NoMaster { link: s("vh-sa") },
                address.clone(),
                route.clone(),
                Op::DelLink {
                    netns: None,
                    link: s("vh-sa"),
                },
            ],
        );

        // A namespace twice, then everything inside a namespace that is gone.
        let netns = Op::DelNetns {
            netns: s("sa"),
            links: Vec::new(),
        };
        apply(&mut kernel, &[netns.clone(), netns]);
        assert!(!kernel.netns_exists("sa"));
        apply(
            &mut kernel,
            &[
                address,
                route,
                Op::LinkDown {
                    netns: some("sa"),
                    link: s("eth0"),
                },
                Op::DelLink {
                    netns: some("sa"),
                    link: s("eth0"),
                },
            ],
        );
        let bridge = Op::DelLink {
            netns: None,
            link: s(BRIDGE),
        };
        apply(&mut kernel, &[bridge.clone(), bridge]);
        assert_eq!(link_names(None), ["lo"]);
    });
}

#[test]
fn existing_names_are_refused_with_eexist() {
    isolated("existing_names_are_refused_with_eexist", || {
        let mut kernel = backend();
        apply(&mut kernel, &network_ops());
        apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));

        let (errno, message) = errno_of(kernel.apply(&Op::AddBridge {
            bridge: s(BRIDGE),
            mtu: 1500,
        }));
        assert_eq!(errno, libc::EEXIST, "{message}");
        assert!(message.contains(BRIDGE), "{message}");

        // The host end's name is taken.
        let (errno, message) = errno_of(kernel.apply(&Op::AddVeth {
            link: s(BRIDGE),
            peer: s("eth1"),
            netns: s("sa"),
            mtu: MTU,
            mac: "02:42:0a:4d:00:09".parse().unwrap(),
            master: None,
        }));
        assert_eq!(errno, libc::EEXIST, "{message}");
        assert!(message.contains(BRIDGE), "{message}");
        assert!(link(Some("sa"), "eth1").is_none(), "nothing half-made");

        // The peer's name is taken inside the namespace.
        let (errno, message) = errno_of(kernel.apply(&Op::AddVeth {
            link: s("vh-other"),
            peer: s("eth0"),
            netns: s("sa"),
            mtu: MTU,
            mac: "02:42:0a:4d:00:09".parse().unwrap(),
            master: None,
        }));
        assert_eq!(errno, libc::EEXIST, "{message}");
        assert!(message.contains("eth0") && message.contains("sa"), "{message}");
        assert!(link(None, "vh-other").is_none(), "nothing half-made");

        let (errno, message) = errno_of(kernel.apply(&Op::AddNetns { netns: s("sa") }));
        assert_eq!(errno, libc::EEXIST, "{message}");
        assert!(kernel.netns_exists("sa"), "the existing namespace is untouched");
        assert!(link(Some("sa"), "eth0").is_some());

        let (errno, message) = errno_of(kernel.apply(&Op::AddAddress {
            netns: some("sa"),
            link: s("eth0"),
            address: net("10.77.0.2/24"),
        }));
        assert_eq!(errno, libc::EEXIST, "{message}");

        let (errno, message) = errno_of(kernel.apply(&Op::AddRoute {
            netns: s("sa"),
            gateway: addr("10.77.0.1"),
            link: s("eth0"),
        }));
        assert_eq!(errno, libc::EEXIST, "{message}");

        // Other refusals carry the kernel's errno too.
        let (errno, message) = errno_of(kernel.apply(&Op::LinkUp {
            netns: some("sa"),
            link: s("eth9"),
        }));
        assert_eq!(errno, libc::ENODEV, "{message}");
        assert!(message.contains("eth9"), "{message}");
        let (errno, message) = errno_of(kernel.apply(&Op::SetMaster {
            link: s("vh-sa"),
            master: s("nobridge"),
        }));
        assert_eq!(errno, libc::ENODEV, "{message}");
        assert!(message.contains("nobridge"), "{message}");
        // A veth made on its master in one request: when the master is missing, or is
        // no bridge, the kernel makes nothing of it.
        let on = |master: &str| Op::AddVeth {
            link: s("vh-on"),
            peer: s("eth7"),
            netns: s("sa"),
            mtu: MTU,
            mac: "02:42:0a:4d:00:0b".parse().unwrap(),
            master: Some(s(master)),
        };
        let (errno, message) = errno_of(kernel.apply(&on("nobridge")));
        assert_eq!(errno, libc::ENODEV, "{message}");
        assert!(message.contains("nobridge"), "{message}");
        let (errno, message) = errno_of(kernel.apply(&on("lo")));
        assert_eq!(errno, libc::EOPNOTSUPP, "{message}");
        assert!(message.contains("vh-on on lo"), "{message}");
        assert!(link(None, "vh-on").is_none(), "nothing half-made");
        assert!(link(Some("sa"), "eth7").is_none(), "nothing half-made");
        kernel.apply(&on(BRIDGE)).unwrap();
        assert_eq!(link(None, "vh-on").unwrap()["master"], BRIDGE);
        assert!(link(Some("sa"), "eth7").is_some());
        let (errno, message) = errno_of(kernel.apply(&Op::AddVeth {
            link: s("vh-nowhere"),
            peer: s("eth0"),
            netns: s("nowhere"),
            mtu: MTU,
            mac: "02:42:0a:4d:00:09".parse().unwrap(),
            master: None,
        }));
        assert_eq!(errno, libc::ENOENT, "{message}");
        assert!(message.contains("nowhere"), "{message}");
        let (errno, message) = errno_of(kernel.apply(&Op::AddBridge {
            bridge: s("toobig"),
            mtu: 1_000_000,
        }));
        assert!(
            errno == libc::EINVAL || errno == libc::ERANGE,
            "{errno}: {message}"
        );
        assert!(link(None, "toobig").is_none());

        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("sa"),
                links: Vec::new(),
            }],
        );
        apply(
            &mut kernel,
            &[Op::DelLink {
                netns: None,
                link: s(BRIDGE),
            }],
        );
    });
}

#[test]
fn deleting_a_namespace_frees_it() {
    isolated("deleting_a_namespace_frees_it", || {
        let mut kernel = backend();
        apply(&mut kernel, &network_ops());
        apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
        assert!(kernel.netns_exists("sa"));
        assert!(link(None, "vh-sa").is_some());

        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("sa"),
                links: Vec::new(),
            }],
        );
        assert!(!kernel.netns_exists("sa"));
        assert!(!Path::new(&format!("{NETNS_DIR}/sa")).exists());
        // Nothing holds the namespace any more, so the kernel destroys it, and the veth
        // whose end was inside goes with it.
        eventually("the host end of the veth disappears", || {
            link(None, "vh-sa").is_none()
        });

        // Working inside a namespace that is gone is an error that names it.
        let (errno, message) = errno_of(kernel.apply(&Op::LinkUp {
            netns: some("sa"),
            link: s("lo"),
        }));
        assert_eq!(errno, libc::ENOENT, "{message}");
        assert!(message.contains("sa"), "{message}");

        // The same name again is a new, empty namespace.
        apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
        assert!(ping("sa", "10.77.0.1"));
        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("sa"),
                links: Vec::new(),
            }],
        );
        eventually("the host end of the veth disappears", || {
            link(None, "vh-sa").is_none()
        });
        apply(
            &mut kernel,
            &[Op::DelLink {
                netns: None,
                link: s(BRIDGE),
            }],
        );
    });
}

#[test]
fn a_namespace_replaced_outside_cnm_is_not_confused_with_the_old_one() {
    isolated(
        "a_namespace_replaced_outside_cnm_is_not_confused_with_the_old_one",
        || {
            let mut kernel = backend();
            apply(&mut kernel, &network_ops());
            apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
            for args in [["netns", "del", "sa"], ["netns", "add", "sa"]] {
                assert!(Command::new("ip").args(args).status().unwrap().success());
            }
            // The next operation there reaches the new namespace, and lets the old one go.
            apply(
                &mut kernel,
                &[Op::LinkUp {
                    netns: some("sa"),
                    link: s("lo"),
                }],
            );
            assert!(has_flag(&link(Some("sa"), "lo").unwrap(), "UP"));
            eventually("the old namespace is freed, and its veth", || {
                link(None, "vh-sa").is_none()
            });
            let (errno, message) = errno_of(kernel.apply(&Op::LinkUp {
                netns: some("sa"),
                link: s("eth0"),
            }));
            assert_eq!(errno, libc::ENODEV, "{message}");
            apply(
                &mut kernel,
                &[
                    Op::DelNetns {
                        netns: s("sa"),
                        links: Vec::new(),
                    },
                    Op::DelLink {
                        netns: None,
                        link: s(BRIDGE),
                    },
                ],
            );
        },
    );
}

/// An interface deleted and made again outside cnm gets a new index, which the next
/// operation finds: a bridge's for its new port, eth0's for an address. (A backend that
/// remembered indexes would use the old ones here, and reach another interface or none.)
#[test]
fn an_interface_made_again_outside_cnm_is_found_by_its_new_index() {
    isolated(
        "an_interface_made_again_outside_cnm_is_found_by_its_new_index",
        || made_again_outside_cnm(false),
    );
}

/// Within a transaction the backend remembers the indexes it looked up: one that a link
/// made again outside cnm left stale is looked up anew, for additions and removals.
#[test]
fn an_interface_made_again_during_a_transaction_is_found_by_its_new_index() {
    isolated(
        "an_interface_made_again_during_a_transaction_is_found_by_its_new_index",
        || made_again_outside_cnm(true),
    );
}

fn made_again_outside_cnm(in_transaction: bool) {
    let mut kernel = backend();
    if in_transaction {
        kernel.begin_transaction(0);
    }
    apply(&mut kernel, &network_ops());
    apply(&mut kernel, &sandbox_ops("sa", 2, "02:42:0a:4d:00:02"));
    let before = link(None, BRIDGE).unwrap()["ifindex"].as_u64().unwrap();
    for args in [
        vec!["link", "del", BRIDGE],
        vec!["link", "add", BRIDGE, "type", "bridge"],
        vec!["link", "set", BRIDGE, "up"],
        vec!["-n", "sa", "link", "del", "eth0"],
        vec![
            "-n", "sa", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
        ],
        vec!["-n", "sa", "address", "add", "10.77.0.8/24", "dev", "eth0"],
    ] {
        assert!(
            Command::new("ip").args(&args).status().unwrap().success(),
            "{args:?}"
        );
    }
    let after = link(None, BRIDGE).unwrap()["ifindex"].as_u64().unwrap();
    assert_ne!(before, after);
    apply(&mut kernel, &sandbox_ops("sb", 3, "02:42:0a:4d:00:03"));
    assert_eq!(link(None, "vh-sb").unwrap()["master"], BRIDGE);
    // The addresses of the new eth0 in sa: removed there, and added there, not nowhere.
    apply(
        &mut kernel,
        &[
            Op::DelAddress {
                netns: some("sa"),
                link: s("eth0"),
                address: net("10.77.0.8/24"),
            },
            Op::AddAddress {
                netns: some("sa"),
                link: s("eth0"),
                address: net("10.77.0.9/24"),
            },
        ],
    );
    assert_eq!(addresses(Some("sa"), "eth0"), ["10.77.0.9/24"]);
    kernel.end_transaction();
}

#[test]
fn netns_exists_wants_a_namespace_mount() {
    isolated("netns_exists_wants_a_namespace_mount", || {
        let mut kernel = backend();
        assert!(!kernel.netns_exists("sa"));
        apply(&mut kernel, &[Op::AddNetns { netns: s("sa") }]);
        assert!(kernel.netns_exists("sa"));
        // A plain file in the directory is not a namespace.
        fs::write(format!("{NETNS_DIR}/plain"), "").unwrap();
        assert!(!kernel.netns_exists("plain"));
        // Names that would leave the directory are not namespaces either.
        assert!(!kernel.netns_exists("../netns/sa"));
        assert!(!kernel.netns_exists(""));
        let (errno, _) = errno_of(kernel.apply(&Op::AddNetns { netns: s("../x") }));
        assert_eq!(errno, libc::EINVAL);
        // iproute2 sees it as a namespace of its own.
        let inside = Command::new("ip")
            .args(["netns", "exec", "sa", "readlink", "/proc/self/ns/net"])
            .output()
            .unwrap();
        assert!(
            inside.status.success(),
            "{}",
            String::from_utf8_lossy(&inside.stderr)
        );
        let outside = fs::read_link("/proc/self/ns/net").unwrap();
        assert_ne!(
            String::from_utf8_lossy(&inside.stdout).trim(),
            outside.to_string_lossy()
        );

        // Deleting the plain file: a namespace that is not there is deleted already.
        apply(
            &mut kernel,
            &[
                Op::DelNetns {
                    netns: s("plain"),
                    links: Vec::new(),
                },
                Op::DelNetns {
                    netns: s("sa"),
                    links: Vec::new(),
                },
            ],
        );
        assert_eq!(fs::read_dir(NETNS_DIR).unwrap().count(), 0);
    });
}

#[test]
fn namespace_directory_is_made_as_iproute2_makes_it() {
    isolated("namespace_directory_is_made_as_iproute2_makes_it", || {
        fs::write("/run/not-a-dir", "").unwrap();
        let error = NetlinkBackend::new("/run/not-a-dir".into(), ETC_DIR.into())
            .err()
            .expect("a file is no namespace directory");
        println!("refused: {error}");
        assert_eq!(error.errno, Some(libc::ENOTDIR), "{error}");
        assert!(error.message.contains("/run/not-a-dir"), "{error}");

        let mut kernel = backend();
        // A shared mount point, as `ip netns add` leaves it.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mounts
            .lines()
            .rfind(|line| line.split(' ').nth(4) == Some(NETNS_DIR))
            .expect("the namespace directory is a mount point");
        assert!(line.contains("shared:"), "{line}");

        // Gone since: made again.
        nix::mount::umount2(NETNS_DIR, nix::mount::MntFlags::MNT_DETACH).unwrap();
        fs::remove_dir(NETNS_DIR).unwrap();
        apply(&mut kernel, &[Op::AddNetns { netns: s("sa") }]);
        assert!(kernel.netns_exists("sa"));
        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("sa"),
                links: Vec::new(),
            }],
        );
    });
}

#[test]
fn files_are_replaced_whole() {
    isolated("files_are_replaced_whole", || {
        let mut kernel = backend();
        for content in ["first\n", "second\n"] {
            apply(
                &mut kernel,
                &[Op::WriteFile {
                    netns: s("sa"),
                    file: EtcFile::ResolvConf,
                    content: content.to_string().into(),
                }],
            );
        }
        let path = format!("{ETC_DIR}/sa/resolv.conf");
        assert_eq!(fs::read_to_string(&path).unwrap(), "second\n");
        let names: Vec<_> = fs::read_dir(format!("{ETC_DIR}/sa"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["resolv.conf"], "no temporary file left");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        apply(
            &mut kernel,
            &[Op::RemoveFile {
                netns: s("sa"),
                file: EtcFile::ResolvConf,
            }],
        );
        assert_eq!(fs::read_dir(ETC_DIR).unwrap().count(), 0);
    });
}

#[test]
fn macvlan_is_created_inside_its_namespace() {
    isolated("macvlan_is_created_inside_its_namespace", || {
        let mut kernel = backend();
        // No dummy interface here: a veth end serves as the parent.
        apply(
            &mut kernel,
            &[
                Op::AddNetns { netns: s("spare") },
                Op::AddVeth {
                    link: s("parent0"),
                    peer: s("p0"),
                    netns: s("spare"),
                    mtu: 1500,
                    mac: "02:42:0a:4e:00:01".parse().unwrap(),
                    master: None,
                },
                Op::LinkUp {
                    netns: None,
                    link: s("parent0"),
                },
                Op::AddNetns { netns: s("sa") },
                Op::AddMacvlan {
                    link: s("eth0"),
                    parent: s("parent0"),
                    netns: s("sa"),
                    mtu: 1400,
                    mac: "02:42:0a:4e:00:02".parse().unwrap(),
                },
                Op::AddAddress {
                    netns: some("sa"),
                    link: s("eth0"),
                    address: net("10.78.0.2/24"),
                },
                Op::LinkUp {
                    netns: some("sa"),
                    link: s("eth0"),
                },
            ],
        );
        let inside = link(Some("sa"), "eth0").expect("the macvlan is inside the namespace");
        assert_eq!(inside["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(inside["linkinfo"]["info_data"]["mode"], "bridge");
        assert_eq!(inside["address"], "02:42:0a:4e:00:02");
        assert_eq!(inside["mtu"], 1400);
        assert_eq!(addresses(Some("sa"), "eth0"), ["10.78.0.2/24"]);
        assert!(link(None, "eth0").is_none(), "never in the host's namespace");

        let (errno, message) = errno_of(kernel.apply(&Op::AddMacvlan {
            link: s("eth1"),
            parent: s("noparent"),
            netns: s("sa"),
            mtu: 1400,
            mac: "02:42:0a:4e:00:03".parse().unwrap(),
        }));
        assert_eq!(errno, libc::ENODEV, "{message}");
        assert!(message.contains("noparent"), "{message}");

        apply(
            &mut kernel,
            &[
                Op::DelNetns {
                    netns: s("sa"),
                    links: Vec::new(),
                },
                Op::DelNetns {
                    netns: s("spare"),
                    links: Vec::new(),
                },
            ],
        );
        eventually("the parent disappears with its peer's namespace", || {
            link(None, "parent0").is_none()
        });
    });
}

#[test]
fn new_refuses_without_privilege() {
    if std::env::var_os("CNM_NETLINK_TEST_UNPRIVILEGED").is_some() {
        // Two levels down: a user namespace of our own, inside the isolated one, whose
        // network namespace belongs to the level above: no CAP_NET_ADMIN over it.
        let outer = std::env::var(INNER).expect("started by the isolated run");
        let here = fs::read_link("/proc/self/ns/net").unwrap();
        assert_ne!(here.to_string_lossy(), outer, "refusing: in the outer namespace");
        let error = NetlinkBackend::new("/run/netns".into(), "/run/etc-netns".into())
            .err()
            .expect("new must refuse");
        println!("refused: {error}");
        assert_eq!(error.errno, Some(libc::EPERM), "{error}");
        assert!(error.message.contains("CAP_NET_ADMIN"), "{}", error.message);
        return;
    }
    isolated("new_refuses_without_privilege", || {
        let exe = std::env::current_exe().unwrap();
        let output = Command::new("unshare")
            .arg("--user")
            .arg(&exe)
            .args([
                "new_refuses_without_privilege",
                "--exact",
                "--nocapture",
                "--include-ignored",
            ])
            .env("CNM_NETLINK_TEST_UNPRIVILEGED", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Applies `ops`, and says how long each kind of operation took.
fn timed(kernel: &mut NetlinkBackend, ops: &[Op]) -> String {
    let mut by_kind: std::collections::BTreeMap<String, (u32, Duration)> = Default::default();
    for op in ops {
        let began = Instant::now();
        apply(kernel, std::slice::from_ref(op));
        let kind = format!("{op:?}");
        let kind = kind.split([' ', '{']).next().unwrap().to_string();
        let entry = by_kind.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += began.elapsed();
    }
    by_kind
        .iter()
        .map(|(kind, (count, time))| {
            format!(
                "  {kind:<12} {count:>5} x {:>7.1} us = {:>7.1} ms\n",
                time.as_secs_f64() * 1e6 / f64::from(*count),
                time.as_secs_f64() * 1e3
            )
        })
        .collect()
}

/// How long N sandboxes take through the backend (each: namespace, lo up, veth on the
/// bridge, address, up, default route, hosts file), and their teardown (namespaces, then
/// the bridge). `CNM_NETLINK_N=500 cargo test --release --test netlink -- --ignored
/// --nocapture timing`
#[test]
#[ignore = "a measurement, not a test"]
fn timing() {
    isolated("timing", || {
        let n: u32 = std::env::var("CNM_NETLINK_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(100);
        let mut ops = vec![
            Op::AddBridge {
                bridge: s(BRIDGE),
                mtu: 1500,
            },
            Op::AddAddress {
                netns: None,
                link: s(BRIDGE),
                address: net("10.88.0.1/16"),
            },
            Op::LinkUp {
                netns: None,
                link: s(BRIDGE),
            },
        ];
        let names: Vec<Name> = (1..=n).map(|i| s(&format!("s{i}"))).collect();
        // In plan order: every namespace, then every endpoint, then the files.
        for netns in &names {
            ops.push(Op::AddNetns { netns: netns.clone() });
            ops.push(Op::LinkUp {
                netns: Some(netns.clone()),
                link: s("lo"),
            });
        }
        for (i, netns) in (1..=n).zip(&names) {
            let link = s(&format!("vh{i}"));
            let ip = i + 1;
            ops.extend([
                Op::AddVeth {
                    link: link.clone(),
                    peer: s("eth0"),
                    netns: netns.clone(),
                    mtu: 1500,
                    mac: format!("02:42:0a:58:{:02x}:{:02x}", ip / 256, ip % 256)
                        .parse()
                        .unwrap(),
                    master: Some(s(BRIDGE)),
                },
                Op::LinkUp { netns: None, link },
                Op::AddAddress {
                    netns: Some(netns.clone()),
                    link: s("eth0"),
                    address: net(&format!("10.88.{}.{}/16", ip / 256, ip % 256)),
                },
                Op::LinkUp {
                    netns: Some(netns.clone()),
                    link: s("eth0"),
                },
                Op::AddRoute {
                    netns: netns.clone(),
                    gateway: addr("10.88.0.1"),
                    link: s("eth0"),
                },
            ]);
        }
        for netns in &names {
            ops.push(Op::WriteFile {
                netns: netns.clone(),
                file: EtcFile::Hosts,
                content: format!("127.0.0.1\tlocalhost\n{netns}\n").into(),
            });
        }
        let start = Instant::now();
        let mut kernel = backend();
        let made = start.elapsed();
        let start = Instant::now();
        let setup = timed(&mut kernel, &ops);
        let applied = start.elapsed();
        assert!(ping("s1", &format!("10.88.{}.{}", (n + 1) / 256, (n + 1) % 256)));
        // One request that the kernel answers at once: what a round trip costs.
        let trip = Instant::now();
        let lo_up = Op::LinkUp {
            netns: None,
            link: s("lo"),
        };
        for _ in 0..1000 {
            apply(&mut kernel, std::slice::from_ref(&lo_up));
        }
        let trip = trip.elapsed();

        let mut teardown: Vec<Op> = names
            .iter()
            .map(|netns| Op::RemoveFile {
                netns: netns.clone(),
                file: EtcFile::Hosts,
            })
            .collect();
        teardown.extend(names.iter().map(|netns| Op::DelNetns {
            netns: netns.clone(),
            links: Vec::new(),
        }));
        teardown.push(Op::DelLink {
            netns: None,
            link: s(BRIDGE),
        });
        let start = Instant::now();
        let down = timed(&mut kernel, &teardown);
        let torn = start.elapsed();
        eventually("every veth is gone", || link_names(None) == ["lo"]);
        let settled = start.elapsed();
        println!("round trip: {:.1} us", trip.as_secs_f64() * 1e3);
        println!("setup:\n{setup}teardown:\n{down}");
        println!(
            "N={n}: new {:.1} ms, apply {} ops {:.1} ms ({:.2} ms per sandbox), teardown {:.1} ms, \
             settled {:.1} ms",
            made.as_secs_f64() * 1e3,
            ops.len(),
            applied.as_secs_f64() * 1e3,
            applied.as_secs_f64() * 1e3 / f64::from(n),
            torn.as_secs_f64() * 1e3,
            settled.as_secs_f64() * 1e3,
        );
    });
}

/// One thing asked of a backend, in a differential sequence.
enum Ask {
    Op(Op),
    Settle(Vec<Name>),
    /// Firewall operations as one batch.
    Batch(Vec<Op>),
    /// Reads `ip_forward`: 1 is an answer of Ok, 0 one of Err(0).
    Forwarding,
}

/// Firewall and forwarding asks: elements without a table, a table made twice, keys
/// that hold one value, overlapping intervals, idempotent deletions, atomic batches,
/// `ip_forward` and `route_localnet`.
fn firewall_asks(asks: &mut Vec<Ask>) {
    let add = |set, element: &str| Op::AddNftElement {
        set,
        element: element.to_string(),
    };
    let del = |set, element: &str| Op::DelNftElement {
        set,
        element: element.to_string(),
    };
    let mut op = |op: Op| asks.push(Ask::Op(op));
    op(add(NftSet::Bridges, "\"cnm-a\""));
    op(del(NftSet::Bridges, "\"cnm-a\""));
    op(Op::DelFirewall);
    op(Op::DelFirewall);
    op(Op::AddFirewall);
    op(add(NftSet::Bridges, "\"cnm-a\""));
    op(Op::AddFirewall);
    op(del(NftSet::Bridges, "\"cnm-a\""));
    op(add(NftSet::Bridges, "\"cnm-a\""));
    op(add(NftSet::Bridges, "\"cnm-a\""));
    op(add(NftSet::SameBridge, "\"cnm-a\" . \"cnm-a\""));
    op(add(NftSet::PublishAny, "tcp . 8080 : 10.1.0.2 . 80"));
    op(add(NftSet::PublishAny, "tcp . 8080 : 10.1.0.2 . 80"));
    op(add(NftSet::PublishAny, "tcp . 8080 : 10.1.0.3 . 80"));
    op(del(NftSet::PublishAny, "tcp . 8080 : 10.1.0.9 . 80"));
    op(add(NftSet::PublishAt, "127.0.0.1 . udp . 53 : 10.1.0.2 . 53"));
    op(add(NftSet::Subnets4, "10.1.0.0/24"));
    op(add(NftSet::Subnets4, "10.1.0.0/16"));
    op(add(NftSet::Subnets4, "10.1.0.128/25"));
    op(add(NftSet::Subnets4, "10.2.0.0/24"));
    op(add(NftSet::Masquerade6, "fd00:1::/64"));
    op(del(NftSet::Subnets4, "10.2.0.0/24"));
    op(del(NftSet::Subnets4, "10.2.0.0/24"));
    // A batch is taken whole or not at all: its first element is not there after.
    asks.push(Ask::Batch(vec![
        add(NftSet::PublishAny, "udp . 1 : 10.1.0.2 . 1"),
        add(NftSet::PublishAny, "tcp . 8080 : 10.1.0.3 . 80"),
    ]));
    asks.push(Ask::Op(add(NftSet::PublishAny, "udp . 1 : 10.1.0.5 . 1")));
    asks.push(Ask::Batch(vec![
        del(NftSet::PublishAny, "udp . 1 : 10.1.0.5 . 1"),
        add(NftSet::PublishAny, "udp . 1 : 10.1.0.6 . 1"),
    ]));
    asks.push(Ask::Op(add(NftSet::PublishAny, "udp . 1 : 10.1.0.5 . 1")));
    asks.push(Ask::Forwarding);
    for on in [true, true, false, true] {
        asks.push(Ask::Op(Op::SetForwarding { on }));
        asks.push(Ask::Forwarding);
    }
    let mut op = |op: Op| asks.push(Ask::Op(op));
    for (link, on) in [
        (BRIDGE, true),
        (BRIDGE, false),
        ("no-link", true),
        ("no-link", false),
    ] {
        op(Op::RouteLocalnet { link: s(link), on });
    }
    op(Op::DelFirewall);
}

/// The same sequence, failures included, on the in-memory backend and on the kernel:
/// each answer (success, or the errno of the refusal) must be the same. The in-memory
/// backend stands in for the kernel in the executor's tests; this keeps it honest.
#[test]
fn the_in_memory_backend_answers_as_the_kernel_does() {
    isolated("the_in_memory_backend_answers_as_the_kernel_does", || {
        use cnm::backend::memory::MemoryBackend;
        let mut asks: Vec<Ask> = Vec::new();
        let mut op = |op: Op| asks.push(Ask::Op(op));
        let veth_on = |link: &str, peer: &str, netns: &str, master: &str| Op::AddVeth {
            link: s(link),
            peer: s(peer),
            netns: s(netns),
            mtu: MTU,
            mac: "02:42:0a:4d:00:09".parse().unwrap(),
            master: (!master.is_empty()).then(|| s(master)),
        };
        let veth = |link: &str, peer: &str, netns: &str| veth_on(link, peer, netns, "");
        network_ops().into_iter().for_each(&mut op);
        sandbox_ops("a", 2, "02:42:0a:4d:00:02")
            .into_iter()
            .for_each(&mut op);
        // Names taken: a bridge, a namespace, a veth host end, a peer inside.
        op(network_ops().remove(0));
        op(Op::AddNetns { netns: s("a") });
        op(veth("vh-a", "eth1", "a"));
        op(veth("vh-x", "eth0", "a"));
        // Missing things: a namespace, a master, a link, a macvlan parent.
        op(veth("vh-y", "eth0", "nowhere"));
        op(veth_on("vh-y", "eth5", "a", "no-bridge"));
        // A master that is no bridge, at creation: nothing is made.
        op(veth_on("vh-y", "eth5", "a", "lo"));
        op(veth_on("vh-y", "eth5", "a", BRIDGE));
        op(Op::DelLink {
            netns: None,
            link: s("vh-y"),
        });
        op(Op::SetMaster {
            link: s("vh-a"),
            master: s("no-bridge"),
        });
        op(Op::SetMaster {
            link: s("no-link"),
            master: s(BRIDGE),
        });
        op(Op::LinkUp {
            netns: some("a"),
            link: s("eth9"),
        });
        // A master that is no bridge: refused, and the port has left its old master.
        op(Op::SetMaster {
            link: s("vh-a"),
            master: s("lo"),
        });
        op(sandbox_ops("a", 2, "02:42:0a:4d:00:02").remove(3));
        op(sandbox_ops("a", 2, "02:42:0a:4d:00:02").remove(3));
        op(Op::AddMacvlan {
            link: s("mv0"),
            parent: s("no-parent"),
            netns: s("a"),
            mtu: MTU,
            mac: "02:42:0a:4d:00:0a".parse().unwrap(),
        });
        // An address and a default route twice; a route through a link that is down.
        op(sandbox_ops("a", 2, "02:42:0a:4d:00:02").remove(5));
        op(sandbox_ops("a", 2, "02:42:0a:4d:00:02").remove(8));
        op(Op::AddNetns { netns: s("b") });
        op(veth("vh-b", "eth0", "b"));
        op(Op::AddAddress {
            netns: some("b"),
            link: s("eth0"),
            address: net("10.77.0.3/24"),
        });
        op(Op::AddRoute {
            netns: s("b"),
            gateway: addr("10.77.0.1"),
            link: s("eth0"),
        });
        // Deleting what is gone is success, everywhere.
        op(Op::DelLink {
            netns: None,
            link: s("no-link"),
        });
        op(Op::DelLink {
            netns: some("nowhere"),
            link: s("eth0"),
        });
        op(Op::DelAddress {
            netns: some("a"),
            link: s("eth0"),
            address: net("10.99.0.1/24"),
        });
        op(Op::DelRoute {
            netns: s("b"),
            gateway: addr("10.77.0.1"),
            link: s("eth0"),
        });
        op(Op::NoMaster { link: s("no-link") });
        op(Op::LinkDown {
            netns: some("nowhere"),
            link: s("eth0"),
        });
        op(Op::RemoveFile {
            netns: s("b"),
            file: EtcFile::Hosts,
        });
        // A namespace deleted takes its veths; once settled, their names are free again.
        op(Op::DelNetns {
            netns: s("b"),
            links: vec![s("vh-b")],
        });
        op(Op::DelNetns {
            netns: s("b"),
            links: vec![s("vh-b")],
        });
        asks.push(Ask::Settle(vec![s("vh-b")]));
        firewall_asks(&mut asks);
        let mut op = |op: Op| asks.push(Ask::Op(op));
        op(Op::AddNetns { netns: s("b") });
        op(veth("vh-b", "eth0", "b"));
        // A bridge holds 1,023 ports; the 1,024th is refused, attached after its
        // creation or in it (then nothing is made: the names are free again).
        for i in 0..1023u32 {
            let link = s(&format!("vp-{i}"));
            let veth = |master: Option<Name>| Op::AddVeth {
                link: link.clone(),
                peer: s(&format!("p{i}")),
                netns: s("b"),
                mtu: MTU,
                mac: format!("02:42:0b:00:{:02x}:{:02x}", i >> 8, i & 0xff)
                    .parse()
                    .unwrap(),
                master,
            };
            if i % 2 == 0 {
                op(veth(None));
                op(Op::SetMaster {
                    link,
                    master: s(BRIDGE),
                });
            } else {
                op(veth(Some(s(BRIDGE))));
            }
        }
        op(Op::SetMaster {
            link: s("vh-b"),
            master: s(BRIDGE),
        });
        op(veth_on("vh-full", "eth1", "b", BRIDGE));
        op(veth("vh-full", "eth1", "b"));

        let mut kernel = backend();
        let mut memory = MemoryBackend::new();
        let answer = |result: Result<(), KernelError>| result.map_err(|e| e.errno);
        for (i, ask) in asks.iter().enumerate() {
            let (real, simulated, what) = match ask {
                Ask::Op(op) => (
                    answer(kernel.apply(op)),
                    answer(memory.apply(op)),
                    format!("{op:?}"),
                ),
                Ask::Settle(links) => (
                    answer(kernel.settle(links)),
                    answer(memory.settle(links)),
                    format!("settle {links:?}"),
                ),
                Ask::Batch(ops) => (
                    answer(kernel.firewall(ops)),
                    answer(memory.firewall(ops)),
                    format!("batch {ops:?}"),
                ),
                Ask::Forwarding => {
                    let read = |on: Result<bool, KernelError>| match on {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(Some(0)),
                        Err(e) => Err(e.errno),
                    };
                    (
                        read(kernel.ip_forward()),
                        read(memory.ip_forward()),
                        "ip_forward".into(),
                    )
                }
            };
            assert_eq!(simulated, real, "ask {i}: {what}");
        }
        for netns in ["a", "b", "nowhere"] {
            assert_eq!(memory.netns_exists(netns), kernel.netns_exists(netns), "{netns}");
        }
    });
}

/// A namespace file that is no longer a mount — an empty file that a kill left between
/// creating it and mounting on it, or between unmounting and removing it — is a
/// namespace that is gone: not there for `netns_exists`, removed by DelNetns, and made
/// anew by AddNetns over it. A file that is not empty is not cnm's to remove.
#[test]
fn a_stale_namespace_file_is_a_namespace_that_is_gone() {
    isolated("a_stale_namespace_file_is_a_namespace_that_is_gone", || {
        let mut kernel = backend();
        fs::write(format!("{NETNS_DIR}/stale"), "").unwrap();
        assert!(!kernel.netns_exists("stale"));
        apply(&mut kernel, &sandbox_ops_without_bridge("stale"));
        assert!(kernel.netns_exists("stale"));
        assert_eq!(link_names(Some("stale")), ["lo", "eth0"]);
        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("stale"),
                links: vec![s("vh-stale")],
            }],
        );
        assert!(!Path::new(&format!("{NETNS_DIR}/stale")).exists());
        fs::write(format!("{NETNS_DIR}/stale"), "").unwrap();
        apply(
            &mut kernel,
            &[Op::DelNetns {
                netns: s("stale"),
                links: Vec::new(),
            }],
        );
        assert!(!Path::new(&format!("{NETNS_DIR}/stale")).exists());
        // Someone's file with content: refused, and kept.
        fs::write(format!("{NETNS_DIR}/kept"), "mine\n").unwrap();
        let (errno, _) = errno_of(kernel.apply(&Op::AddNetns { netns: s("kept") }));
        assert_eq!(errno, libc::EEXIST);
        assert_eq!(fs::read_to_string(format!("{NETNS_DIR}/kept")).unwrap(), "mine\n");
    });
}

/// A namespace with a veth, `vh-NETNS` ↔ `eth0`, and nothing else.
fn sandbox_ops_without_bridge(netns: &str) -> Vec<Op> {
    vec![
        Op::AddNetns { netns: s(netns) },
        Op::AddVeth {
            link: s(&format!("vh-{netns}")),
            peer: s("eth0"),
            netns: s(netns),
            mtu: MTU,
            mac: "02:42:0a:4d:00:02".parse().unwrap(),
            master: None,
        },
    ]
}
