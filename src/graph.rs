//! The committed topology as a diagram, for `cnm graph` and the REPL's `graph`:
//! networks and sandboxes are nodes, each joined endpoint an edge between its sandbox and
//! its network labelled with the interface and its addresses; an endpoint not joined
//! hangs off its network alone. Mermaid (for a ```` ```mermaid ```` fence) or Graphviz
//! DOT, in the model's order, so the same state always draws the same text.

use std::fmt::Write;

use crate::model::{Driver, Endpoint, Mode, Model, Network, Sandbox, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

pub fn render(model: &Model, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(model),
        Format::Dot => dot(model),
    }
}

/// The lines of a network's label: name, subnets, and its bridge or parent.
fn network_label(n: &Network) -> Vec<String> {
    let mut subnets = n.subnet.to_string();
    if let Some(v6) = n.ipv6 {
        let _ = write!(subnets, " {}", v6.subnet);
    }
    let mut kernel = match (n.driver, &n.bridge, &n.parent) {
        (Driver::Bridge, Some(bridge), _) => format!("bridge {bridge}"),
        (_, _, Some(parent)) => format!("{} on {parent}", n.driver),
        _ => n.driver.to_string(),
    };
    if n.internal {
        kernel.push_str(", internal");
    }
    vec![format!("network {}", n.name), subnets, kernel]
}

fn sandbox_label(s: &Sandbox) -> Vec<String> {
    let mut mode = s.mode.to_string();
    if s.status == Status::Stopped {
        mode.push_str(", stopped");
    }
    vec![format!("sandbox {}", s.name), mode]
}

/// An edge's label: the interface inside the sandbox and the endpoint's addresses.
fn endpoint_label(e: &Endpoint) -> String {
    let mut label = e.ifname.clone().map(|i| format!("{i} ")).unwrap_or_default();
    let _ = write!(label, "{}", e.ip);
    if let Some(ip) = e.ipv6 {
        let _ = write!(label, " {ip}");
    }
    label
}

fn unjoined_label(e: &Endpoint) -> Vec<String> {
    vec![
        format!("endpoint {}", e.name),
        "not joined".into(),
        endpoint_label(e),
    ]
}

/// A Mermaid node id: a prefix for the kind, then the name with every byte other than a
/// letter or digit written as `_` and two hex digits (so `a-b`, `a.b` and `a_b` differ).
fn mermaid_id(prefix: &str, name: &str) -> String {
    let mut id = prefix.to_string();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            id.push(char::from(b));
        } else {
            let _ = write!(id, "_{b:02x}");
        }
    }
    id
}

/// A `graph LR` block, without the fence.
pub fn mermaid(model: &Model) -> String {
    let mut out = String::from("graph LR\n");
    for n in model.networks.values() {
        let id = mermaid_id("net_", &n.name);
        let _ = writeln!(out, "    {id}[\"{}\"]", network_label(n).join("<br/>"));
    }
    for s in model.sandboxes.values() {
        let id = mermaid_id("sbx_", &s.name);
        let _ = writeln!(out, "    {id}([\"{}\"])", sandbox_label(s).join("<br/>"));
    }
    for e in model.endpoints.values() {
        let network = mermaid_id("net_", &e.network);
        match &e.sandbox {
            Some(s) => {
                let sandbox = mermaid_id("sbx_", s);
                let _ = writeln!(out, "    {sandbox} ---|\"{}\"| {network}", endpoint_label(e));
            }
            None => {
                let id = mermaid_id("ep_", &e.name);
                let _ = writeln!(out, "    {id}{{{{\"{}\"}}}}", unjoined_label(e).join("<br/>"));
                let _ = writeln!(out, "    {id} -.- {network}");
            }
        }
    }
    for s in model.sandboxes.values() {
        if let Mode::Container(other) = &s.mode {
            let (from, to) = (mermaid_id("sbx_", &s.name), mermaid_id("sbx_", other));
            let _ = writeln!(out, "    {from} -.->|\"shares the namespace of\"| {to}");
        }
    }
    let stopped: Vec<String> = model
        .sandboxes
        .values()
        .filter(|s| s.status == Status::Stopped)
        .map(|s| mermaid_id("sbx_", &s.name))
        .collect();
    if !stopped.is_empty() {
        out.push_str("    classDef stopped stroke-dasharray: 5 5\n");
        let _ = writeln!(out, "    class {} stopped", stopped.join(","));
    }
    out
}

/// An undirected Graphviz graph; `dot -Tsvg` draws it.
pub fn dot(model: &Model) -> String {
    // Names never hold `"` or `\`; node ids are quoted kind-and-name pairs.
    let mut out = String::from("graph cnm {\n    rankdir=LR;\n");
    for n in model.networks.values() {
        let label = network_label(n).join("\\n");
        let _ = writeln!(out, "    \"network {}\" [shape=box, label=\"{label}\"];", n.name);
    }
    for s in model.sandboxes.values() {
        let label = sandbox_label(s).join("\\n");
        let style = if s.status == Status::Stopped {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    \"sandbox {}\" [shape=ellipse, label=\"{label}\"{style}];",
            s.name
        );
    }
    for e in model.endpoints.values() {
        match &e.sandbox {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "    \"sandbox {s}\" -- \"network {}\" [label=\"{}\"];",
                    e.network,
                    endpoint_label(e)
                );
            }
            None => {
                let label = unjoined_label(e).join("\\n");
                let _ = writeln!(
                    out,
                    "    \"endpoint {}\" [shape=hexagon, label=\"{label}\"];",
                    e.name
                );
                let _ = writeln!(
                    out,
                    "    \"endpoint {}\" -- \"network {}\" [style=dashed];",
                    e.name, e.network
                );
            }
        }
    }
    for s in model.sandboxes.values() {
        if let Mode::Container(other) = &s.mode {
            let _ = writeln!(
                out,
                "    \"sandbox {}\" -- \"sandbox {other}\" [style=dotted, dir=forward, label=\"shares the namespace of\"];",
                s.name
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::Sources;

    fn model_of(name: &str, text: &str) -> Model {
        let mut sources = Sources::default();
        let file = sources.add(name, text);
        match crate::check::check(&mut sources, &[file], &Model::empty()) {
            Ok(checked) => checked.model,
            Err(errors) => panic!("{name}: {errors:?}"),
        }
    }

    fn example(name: &str) -> Model {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name);
        model_of(name, &std::fs::read_to_string(path).unwrap())
    }

    const EDGES: &str = "\
network lab subnet 10.6.0.0/24 ipv6 fd06::/64 internal
network mv driver macvlan parent eth0 subnet 10.7.0.0/24
endpoint spare on lab ip 10.6.0.200
sandbox web-1
sandbox side.car mode container:web-1
sandbox web_1 mode none
connect web_1 to lab
connect web_1 to mv
stop web_1
";

    #[test]
    fn seed_draws_as_this_mermaid() {
        assert_eq!(
            render(&example("seed.cnm"), Format::Mermaid),
            r#"graph LR
    net_backend["network backend<br/>10.1.0.0/24<br/>bridge cnm-backend"]
    net_frontend["network frontend<br/>10.2.0.0/24<br/>bridge cnm-frontend"]
    net_bridge["network bridge<br/>172.30.0.0/16<br/>bridge cnm0"]
    sbx_A(["sandbox A<br/>none"])
    sbx_B(["sandbox B<br/>none"])
    sbx_C(["sandbox C<br/>none"])
    sbx_web1(["sandbox web1<br/>bridge"])
    sbx_web2(["sandbox web2<br/>bridge"])
    sbx_web3(["sandbox web3<br/>bridge"])
    sbx_A ---|"eth0 10.1.0.2"| net_backend
    sbx_B ---|"eth0 10.1.0.3"| net_backend
    sbx_B ---|"eth1 10.2.0.1"| net_frontend
    sbx_C ---|"eth0 10.2.0.50"| net_frontend
    sbx_web1 ---|"eth0 172.30.0.2"| net_bridge
    sbx_web1 ---|"eth1 10.2.0.2"| net_frontend
    sbx_web2 ---|"eth0 172.30.0.3"| net_bridge
    sbx_web2 ---|"eth1 10.2.0.3"| net_frontend
    sbx_web3 ---|"eth0 172.30.0.4"| net_bridge
    sbx_web3 ---|"eth1 10.2.0.4"| net_frontend
"#
        );
    }

    #[test]
    fn seed_draws_as_this_dot() {
        assert_eq!(
            render(&example("seed.cnm"), Format::Dot),
            r#"graph cnm {
    rankdir=LR;
    "network backend" [shape=box, label="network backend\n10.1.0.0/24\nbridge cnm-backend"];
    "network frontend" [shape=box, label="network frontend\n10.2.0.0/24\nbridge cnm-frontend"];
    "network bridge" [shape=box, label="network bridge\n172.30.0.0/16\nbridge cnm0"];
    "sandbox A" [shape=ellipse, label="sandbox A\nnone"];
    "sandbox B" [shape=ellipse, label="sandbox B\nnone"];
    "sandbox C" [shape=ellipse, label="sandbox C\nnone"];
    "sandbox web1" [shape=ellipse, label="sandbox web1\nbridge"];
    "sandbox web2" [shape=ellipse, label="sandbox web2\nbridge"];
    "sandbox web3" [shape=ellipse, label="sandbox web3\nbridge"];
    "sandbox A" -- "network backend" [label="eth0 10.1.0.2"];
    "sandbox B" -- "network backend" [label="eth0 10.1.0.3"];
    "sandbox B" -- "network frontend" [label="eth1 10.2.0.1"];
    "sandbox C" -- "network frontend" [label="eth0 10.2.0.50"];
    "sandbox web1" -- "network bridge" [label="eth0 172.30.0.2"];
    "sandbox web1" -- "network frontend" [label="eth1 10.2.0.2"];
    "sandbox web2" -- "network bridge" [label="eth0 172.30.0.3"];
    "sandbox web2" -- "network frontend" [label="eth1 10.2.0.3"];
    "sandbox web3" -- "network bridge" [label="eth0 172.30.0.4"];
    "sandbox web3" -- "network frontend" [label="eth1 10.2.0.4"];
}
"#
        );
    }

    /// Stopped sandboxes, an unjoined endpoint, a shared namespace, macvlan, dual stack,
    /// and names that differ only in `-`, `.` and `_`.
    #[test]
    fn every_kind_of_object_draws() {
        let text = mermaid(&model_of("edges", EDGES));
        for line in [
            "    net_lab[\"network lab<br/>10.6.0.0/24 fd06::/64<br/>bridge cnm-lab, internal\"]\n",
            "    net_mv[\"network mv<br/>10.7.0.0/24<br/>macvlan on eth0\"]\n",
            "    sbx_web_2d1([\"sandbox web-1<br/>bridge\"])\n",
            "    sbx_web_5f1([\"sandbox web_1<br/>none, stopped\"])\n",
            "    ep_spare{{\"endpoint spare<br/>not joined<br/>10.6.0.200 fd06::2\"}}\n    ep_spare -.- net_lab\n",
            "    sbx_web_5f1 ---|\"eth0 10.6.0.2 fd06::3\"| net_lab\n",
            "    sbx_side_2ecar -.->|\"shares the namespace of\"| sbx_web_2d1\n",
            "    classDef stopped stroke-dasharray: 5 5\n    class sbx_web_5f1 stopped\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        // Node ids are letters, digits and `_` only.
        for line in text
            .lines()
            .skip(1)
            .filter(|l| !l.trim_start().starts_with("class"))
        {
            let id = line.trim_start().split(['[', '(', '{', ' ']).next().unwrap();
            assert!(
                id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{line}"
            );
        }
        let text = dot(&model_of("edges", EDGES));
        assert!(
            text.contains(
                "\"sandbox web_1\" [shape=ellipse, label=\"sandbox web_1\\nnone, stopped\", style=dashed];"
            ),
            "{text}"
        );
        assert!(
            text.contains("\"endpoint spare\" -- \"network lab\" [style=dashed];"),
            "{text}"
        );
    }

    /// Graphviz accepts the DOT of every example script. Without `dot` on the PATH the
    /// test is skipped, except in CI (`CI` set), where that is a failure.
    #[test]
    fn graphviz_draws_every_example() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        if Command::new("dot").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but Graphviz's `dot` is not on the PATH"
            );
            eprintln!("skipped: Graphviz's `dot` is not on the PATH");
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
        let mut models: Vec<(String, Model)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|name| (name.clone(), example(&name)))
            .collect();
        models.sort_by(|a, b| a.0.cmp(&b.0));
        models.push(("edges".into(), model_of("edges", EDGES)));
        models.push(("empty".into(), Model::empty()));
        for (name, model) in models {
            let mut child = Command::new("dot")
                .arg("-Tsvg")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(dot(&model).as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.is_empty(), "{name}: {stderr}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"), "{name}");
        }
    }
}
