//! The parser on every statement form and on every malformed one, through the public API.
//! Assertions are on the tree's shape — statement kinds, option keys, the literal text of
//! words, spans — never on Debug dumps.

use cnm::error::{Diagnostic, ErrorKind};
use cnm::syntax::{Ident, Opt, Sources, Span, Statement, StatementKind, Word, WordPart};

// ---- helpers ----------------------------------------------------------------------

/// Parses `text` as one file; panics with the diagnostic if it does not parse.
fn parse(text: &str) -> Vec<Statement> {
    let mut sources = Sources::default();
    let id = sources.add("t.cnm", text);
    match cnm::syntax::parse(id, text) {
        Ok(script) => script.statements,
        Err(e) => panic!("{text:?} should parse, got {:?}", e.kind),
    }
}

/// Parses `text`, which holds exactly one statement.
fn one(text: &str) -> Statement {
    let mut statements = parse(text);
    assert_eq!(statements.len(), 1, "{text:?} should be one statement");
    statements.remove(0)
}

/// The syntax error `text` gives.
fn syntax_error(text: &str) -> Diagnostic {
    let mut sources = Sources::default();
    let id = sources.add("t.cnm", text);
    match cnm::syntax::parse(id, text) {
        Ok(script) => panic!(
            "{text:?} should not parse, got {} statements",
            script.statements.len()
        ),
        Err(e) => *e,
    }
}

/// The text a span covers.
fn at(text: &str, span: Span) -> &str {
    &text[span.start as usize..span.end as usize]
}

/// The literal text of a word without variables.
fn lit(word: &Word) -> String {
    word.literal()
        .unwrap_or_else(|| panic!("{:?} has variables", word.parts))
}

fn lits(words: &[Word]) -> Vec<String> {
    words.iter().map(lit).collect()
}

/// Options as `(key, literal values)`, in the order written.
fn opts(options: &[Opt]) -> Vec<(String, Vec<String>)> {
    options
        .iter()
        .map(|o| (o.key.name.clone(), lits(&o.values)))
        .collect()
}

/// The same, from string literals, for comparisons.
fn want(options: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    options
        .iter()
        .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

fn var(name: &str) -> String {
    name.to_string()
}

/// The parts of a word as (is a variable, text): `web$i` is `[(false, "web"), (true, "i")]`.
fn parts(word: &Word) -> Vec<(bool, String)> {
    word.parts
        .iter()
        .map(|p| match p {
            WordPart::Literal(s) => (false, s.clone()),
            WordPart::Var { name, .. } => (true, name.clone()),
        })
        .collect()
}

/// The keyword of a malformed statement, or a panic naming what it parsed as.
fn malformed_keyword(statement: &Statement) -> &Ident {
    match &statement.kind {
        StatementKind::Malformed { keyword } => keyword,
        other => panic!("expected a malformed statement, got {other:?}"),
    }
}

// ---- network ----------------------------------------------------------------------

#[test]
fn network_with_a_name_only() {
    let s = one("network backend");
    let StatementKind::Network { name, options } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(name), "backend");
    assert!(options.is_empty());
    assert!(s.tail.is_empty());
}

#[test]
fn network_with_every_option() {
    let text = "network backend driver bridge subnet 10.1.0.0/24 gateway 10.1.0.254 \
                ip-range 10.1.0.128/25 ipv6 fd00:1::/64 bridge br-back mtu 1400 internal parent eth0";
    let s = one(text);
    let StatementKind::Network { name, options } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(name), "backend");
    assert_eq!(
        opts(options),
        want(&[
            ("driver", &["bridge"]),
            ("subnet", &["10.1.0.0/24"]),
            ("gateway", &["10.1.0.254"]),
            ("ip-range", &["10.1.0.128/25"]),
            ("ipv6", &["fd00:1::/64"]),
            ("bridge", &["br-back"]),
            ("mtu", &["1400"]),
            ("internal", &[]),
            ("parent", &["eth0"]),
        ])
    );
    assert!(s.tail.is_empty());
    assert_eq!(at(text, s.span), text, "the statement's span covers it all");
    assert_eq!(at(text, options[0].key.span), "driver");
    assert_eq!(at(text, options[1].values[0].span), "10.1.0.0/24");
}

#[test]
fn network_options_in_any_order_and_repeated() {
    let s = one("network n mtu 1400 subnet 10.1.0.0/24 mtu 1500");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    // Repeats are the checker's business: the parser keeps both.
    assert_eq!(
        opts(options),
        want(&[
            ("mtu", &["1400"]),
            ("subnet", &["10.1.0.0/24"]),
            ("mtu", &["1500"])
        ])
    );
}

#[test]
fn driver_bridge_is_a_value_not_the_bridge_option() {
    let s = one("network n driver bridge bridge br0");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        opts(options),
        want(&[("driver", &["bridge"]), ("bridge", &["br0"])])
    );
}

#[test]
fn an_option_without_its_value_is_kept_empty() {
    let s = one("network n subnet");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("subnet", &[])]));
}

#[test]
fn an_option_key_is_not_taken_as_the_value_of_the_one_before() {
    let s = one("network n subnet gateway 10.1.0.1");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        opts(options),
        want(&[("subnet", &[]), ("gateway", &["10.1.0.1"])])
    );
    assert!(s.tail.is_empty());

    // Quoted, a key is an ordinary value.
    let s = one("network n bridge 'mtu'");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("bridge", &["mtu"])]));
}

#[test]
fn words_that_fit_no_option_are_the_tail() {
    let text = "network n subnet 10.1.0.0/24 subnt 10.2.0.0/24";
    let s = one(text);
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("subnet", &["10.1.0.0/24"])]));
    assert_eq!(lits(&s.tail), ["subnt", "10.2.0.0/24"]);
    assert_eq!(at(text, s.tail[0].span), "subnt");
}

#[test]
fn an_option_name_only_counts_as_a_whole_word() {
    // `mtux` is not `mtu` and `x`; `internals` is not the `internal` flag.
    let s = one("network n mtux 3 internals");
    let StatementKind::Network { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert!(options.is_empty());
    assert_eq!(lits(&s.tail), ["mtux", "3", "internals"]);
}

// ---- sandbox ----------------------------------------------------------------------

#[test]
fn sandbox_with_every_option() {
    let s = one("sandbox web mode container:db hostname web.local dns 1.1.1.1 8.8.8.8");
    let StatementKind::Sandbox { name, options } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(name), "web");
    assert_eq!(
        opts(options),
        want(&[
            ("mode", &["container:db"]),
            ("hostname", &["web.local"]),
            ("dns", &["1.1.1.1", "8.8.8.8"]),
        ])
    );
}

#[test]
fn a_list_option_ends_at_the_next_key() {
    let s = one("sandbox a dns 1.1.1.1 8.8.8.8 mode none");
    let StatementKind::Sandbox { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        opts(options),
        want(&[("dns", &["1.1.1.1", "8.8.8.8"]), ("mode", &["none"])])
    );
}

#[test]
fn sandbox_modes() {
    for mode in ["bridge", "none", "host", "container:other"] {
        let s = one(&format!("sandbox a mode {mode}"));
        let StatementKind::Sandbox { options, .. } = &s.kind else {
            panic!("{:?}", s.kind)
        };
        assert_eq!(opts(options), want(&[("mode", &[mode])]));
    }
}

// ---- endpoint, connect, disconnect -------------------------------------------------

#[test]
fn endpoint_with_every_option() {
    let s = one("endpoint ep on backend ip 10.1.0.5 ipv6 fd00::5 mac 02:42:0a:01:00:05 alias db cache");
    let StatementKind::Endpoint {
        name,
        network,
        options,
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(name), "ep");
    assert_eq!(lit(network), "backend");
    assert_eq!(
        opts(options),
        want(&[
            ("ip", &["10.1.0.5"]),
            ("ipv6", &["fd00::5"]),
            ("mac", &["02:42:0a:01:00:05"]),
            ("alias", &["db", "cache"]),
        ])
    );
}

#[test]
fn endpoint_alias_list_ends_at_the_next_key() {
    let s = one("endpoint ep on n alias a b ip 10.1.0.5");
    let StatementKind::Endpoint { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        opts(options),
        want(&[("alias", &["a", "b"]), ("ip", &["10.1.0.5"])])
    );
}

#[test]
fn connect_with_a_name_only() {
    let s = one("connect A to backend");
    let StatementKind::Connect {
        sandbox,
        network,
        options,
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!((lit(sandbox), lit(network)), ("A".into(), "backend".into()));
    assert!(options.is_empty());
}

#[test]
fn connect_with_every_option() {
    let s = one(
        "connect A to backend endpoint ep ip 10.1.0.5 ipv6 fd00::5 mac 02:42:0a:01:00:05 \
         alias db web ifname eth1",
    );
    let StatementKind::Connect {
        sandbox,
        network,
        options,
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!((lit(sandbox), lit(network)), ("A".into(), "backend".into()));
    assert_eq!(
        opts(options),
        want(&[
            ("endpoint", &["ep"]),
            ("ip", &["10.1.0.5"]),
            ("ipv6", &["fd00::5"]),
            ("mac", &["02:42:0a:01:00:05"]),
            ("alias", &["db", "web"]),
            ("ifname", &["eth1"]),
        ])
    );
}

#[test]
fn connect_alias_list_ends_at_the_next_key() {
    let s = one("connect A to n alias db web ifname eth3");
    let StatementKind::Connect { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        opts(options),
        want(&[("alias", &["db", "web"]), ("ifname", &["eth3"])])
    );
}

#[test]
fn disconnect() {
    let s = one("disconnect B from frontend");
    let StatementKind::Disconnect { sandbox, network } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!((lit(sandbox), lit(network)), ("B".into(), "frontend".into()));
}

// ---- remove, stop, start, publish --------------------------------------------------

#[test]
fn remove_each_kind() {
    for kind in ["network", "sandbox", "endpoint"] {
        let s = one(&format!("remove {kind} thing"));
        let StatementKind::Remove { kind: k, name } = &s.kind else {
            panic!("{:?}", s.kind)
        };
        assert_eq!((lit(k), lit(name)), (kind.to_string(), "thing".into()));
    }
    // Which kinds exist is the checker's business.
    let s = one("remove netwrk thing");
    assert!(matches!(&s.kind, StatementKind::Remove { kind, .. } if lit(kind) == "netwrk"));
}

#[test]
fn stop_and_start() {
    let s = one("stop web");
    assert!(matches!(&s.kind, StatementKind::Stop { sandbox } if lit(sandbox) == "web"));
    let s = one("start web");
    assert!(matches!(&s.kind, StatementKind::Start { sandbox } if lit(sandbox) == "web"));
}

#[test]
fn publish_with_and_without_host_ip() {
    let s = one("publish web 8080:80");
    let StatementKind::Publish {
        sandbox,
        ports,
        options,
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!((lit(sandbox), lit(ports)), ("web".into(), "8080:80".into()));
    assert!(options.is_empty());

    let s = one("publish web 5353:53/udp host-ip 127.0.0.1");
    let StatementKind::Publish { ports, options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(ports), "5353:53/udp");
    assert_eq!(opts(options), want(&[("host-ip", &["127.0.0.1"])]));
}

// ---- exec, expect, serve -----------------------------------------------------------

#[test]
fn exec_takes_every_word_after_the_dashes() {
    let s = one("exec B -- ip -br addr");
    let StatementKind::Exec { sandbox, command } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(sandbox), "B");
    assert_eq!(lits(command), ["ip", "-br", "addr"]);
    assert!(s.tail.is_empty());
}

#[test]
fn exec_command_words_may_look_like_keywords_options_or_dashes() {
    let s = one("exec B -- sh -c 'echo a; b' -- network port udp");
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        lits(command),
        ["sh", "-c", "echo a; b", "--", "network", "port", "udp"]
    );
}

#[test]
fn exec_with_an_empty_command_parses() {
    // An empty command is the checker's error: it knows the usage.
    let s = one("exec B --");
    assert!(matches!(&s.kind, StatementKind::Exec { command, .. } if command.is_empty()));
}

#[test]
fn expect_reaches() {
    let s = one("expect A reaches B");
    let StatementKind::Expect {
        sandbox,
        reaches,
        target,
        options,
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        (lit(sandbox), *reaches, lit(target)),
        ("A".into(), true, "B".into())
    );
    assert!(options.is_empty());
}

#[test]
fn expect_cannot_reach() {
    let s = one("expect A cannot reach C");
    let StatementKind::Expect {
        sandbox,
        reaches,
        target,
        ..
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        (lit(sandbox), *reaches, lit(target)),
        ("A".into(), false, "C".into())
    );
}

#[test]
fn expect_with_port_protocol_and_timeout() {
    let s = one("expect A reaches 10.1.0.3 port 53 udp timeout 500ms");
    let StatementKind::Expect { target, options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(target), "10.1.0.3");
    assert_eq!(
        opts(options),
        want(&[("port", &["53"]), ("udp", &[]), ("timeout", &["500ms"])])
    );

    let s = one("expect A cannot reach host port 80 tcp");
    let StatementKind::Expect {
        reaches,
        target,
        options,
        ..
    } = &s.kind
    else {
        panic!("{:?}", s.kind)
    };
    assert!(!*reaches);
    assert_eq!(lit(target), "host");
    assert_eq!(opts(options), want(&[("port", &["80"]), ("tcp", &[])]));
}

#[test]
fn serve() {
    let s = one("serve B port 8080");
    let StatementKind::Serve { sandbox, options } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(sandbox), "B");
    assert_eq!(opts(options), want(&[("port", &["8080"])]));

    let s = one("serve B port 53 udp");
    let StatementKind::Serve { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("port", &["53"]), ("udp", &[])]));

    // Without a port it still parses: the checker says a port is needed.
    let s = one("serve B");
    assert!(matches!(&s.kind, StatementKind::Serve { options, .. } if options.is_empty()));
}

// ---- let, for, include -------------------------------------------------------------

#[test]
fn let_binds_a_name_to_a_word() {
    let text = "let n = 3";
    let s = one(text);
    let StatementKind::Let { name, value } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(name.name, "n");
    assert_eq!(at(text, name.span), "n");
    assert_eq!(lit(value), "3");

    // No blanks are needed around `=`, and the value may be quoted or hold variables.
    let s = one("let greeting=\"hello world\"");
    let StatementKind::Let { name, value } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        (name.name.as_str(), lit(value)),
        ("greeting", "hello world".into())
    );

    let s = one("let subnet = 10.$i.0.0/24");
    let StatementKind::Let { value, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        parts(value),
        [(false, "10.".into()), (true, var("i")), (false, ".0.0/24".into())]
    );
}

#[test]
fn for_with_a_block() {
    let text = "for i in 1..$n {\n    sandbox web$i\n    connect web$i to frontend\n}";
    let s = one(text);
    let StatementKind::For { var: v, range, body } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(v.name, "i");
    assert_eq!(parts(range), [(false, "1..".into()), (true, var("n"))]);
    assert_eq!(body.len(), 2);
    let StatementKind::Sandbox { name, .. } = &body[0].kind else {
        panic!("{:?}", body[0].kind)
    };
    assert_eq!(parts(name), [(false, "web".into()), (true, var("i"))]);
    assert!(matches!(body[1].kind, StatementKind::Connect { .. }));
    assert_eq!(at(text, body[1].span), "connect web$i to frontend");
    assert_eq!(at(text, s.span), text);
}

#[test]
fn for_on_one_line_and_nested() {
    let s = one("for i in 1..2 { for j in 1..3 { sandbox s$i-$j }; network n$i }");
    let StatementKind::For { body, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(body.len(), 2);
    let StatementKind::For {
        var: inner,
        body: inner_body,
        ..
    } = &body[0].kind
    else {
        panic!("{:?}", body[0].kind)
    };
    assert_eq!(inner.name, "j");
    assert_eq!(inner_body.len(), 1);
    let StatementKind::Sandbox { name, .. } = &inner_body[0].kind else {
        panic!("{:?}", inner_body[0].kind)
    };
    assert_eq!(
        parts(name),
        [
            (false, "s".into()),
            (true, var("i")),
            (false, "-".into()),
            (true, var("j"))
        ]
    );
    assert!(matches!(body[1].kind, StatementKind::Network { .. }));
}

#[test]
fn for_with_an_empty_block() {
    let s = one("for i in 1..3 {}");
    assert!(matches!(&s.kind, StatementKind::For { body, .. } if body.is_empty()));
    let s = one("for i in 1..3 {\n  # nothing yet\n}");
    assert!(matches!(&s.kind, StatementKind::For { body, .. } if body.is_empty()));
}

#[test]
fn include() {
    let s = one("include common/networks.cnm");
    let StatementKind::Include { path } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(path), "common/networks.cnm");

    let s = one("include \"my dir/$name.cnm\"");
    let StatementKind::Include { path } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        parts(path),
        [
            (false, "my dir/".into()),
            (true, var("name")),
            (false, ".cnm".into())
        ]
    );
}

// ---- the design's example ----------------------------------------------------------

#[test]
fn the_design_example_parses_as_written() {
    let text = r#"# the seed's picture: B sits on two networks, A and C cannot reach each other
network backend  subnet 10.1.0.0/24
network frontend subnet 10.2.0.0/24 gateway 10.2.0.254 mtu 1400

sandbox A mode none
sandbox B mode none
sandbox C mode none

connect A to backend alias db
connect B to backend
connect B to frontend
connect C to frontend ip 10.2.0.50 alias web

let n = 3
for i in 1..$n {
    sandbox web$i
    connect web$i to frontend
}

expect A reaches B
expect A cannot reach C
exec B -- ip -br addr
"#;
    let kinds: Vec<&str> = parse(text)
        .iter()
        .map(|s| match s.kind {
            StatementKind::Network { .. } => "network",
            StatementKind::Sandbox { .. } => "sandbox",
            StatementKind::Connect { .. } => "connect",
            StatementKind::Let { .. } => "let",
            StatementKind::For { .. } => "for",
            StatementKind::Expect { .. } => "expect",
            StatementKind::Exec { .. } => "exec",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "network", "network", "sandbox", "sandbox", "sandbox", "connect", "connect", "connect",
            "connect", "let", "for", "expect", "expect", "exec"
        ]
    );
    assert!(parse(text).iter().all(|s| s.tail.is_empty()));
}

// ---- comments, separators, continuation --------------------------------------------

#[test]
fn comments_are_skipped() {
    let text = "# a whole line\nnetwork a # after a statement\n   # indented\nsandbox b#no blank needed\n#";
    let statements = parse(text);
    assert_eq!(statements.len(), 2);
    let StatementKind::Network { name, options } = &statements[0].kind else {
        panic!("{:?}", statements[0].kind)
    };
    assert_eq!(lit(name), "a");
    assert!(options.is_empty());
    assert!(statements[0].tail.is_empty());
    let StatementKind::Sandbox { name, .. } = &statements[1].kind else {
        panic!("{:?}", statements[1].kind)
    };
    assert_eq!(lit(name), "b");
}

#[test]
fn a_hash_inside_quotes_is_text() {
    let s = one("sandbox a hostname \"x#y\" # but this is a comment");
    let StatementKind::Sandbox { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("hostname", &["x#y"])]));
    let s = one("sandbox a hostname 'x#y'");
    let StatementKind::Sandbox { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("hostname", &["x#y"])]));
}

#[test]
fn empty_and_comment_only_scripts_have_no_statements() {
    for text in ["", "\n\n", "# nothing\n", "  \t\n;;\n", "; ; ;"] {
        assert!(parse(text).is_empty(), "{text:?}");
    }
}

#[test]
fn semicolons_separate_statements() {
    let statements = parse("network a; sandbox b ;; sandbox c;");
    assert_eq!(statements.len(), 3);
    assert!(matches!(statements[0].kind, StatementKind::Network { .. }));
    assert!(matches!(&statements[1].kind, StatementKind::Sandbox { name, .. } if lit(name) == "b"));
    assert!(matches!(&statements[2].kind, StatementKind::Sandbox { name, .. } if lit(name) == "c"));
}

#[test]
fn a_semicolon_inside_quotes_is_text() {
    let s = one("exec a -- sh -c \"echo 1; echo 2\"");
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lits(command), ["sh", "-c", "echo 1; echo 2"]);
}

#[test]
fn a_trailing_backslash_continues_the_line() {
    let text = "network backend \\\n    subnet 10.1.0.0/24 \\\n    mtu 1400\nsandbox a";
    let statements = parse(text);
    assert_eq!(statements.len(), 2);
    let StatementKind::Network { options, .. } = &statements[0].kind else {
        panic!("{:?}", statements[0].kind)
    };
    assert_eq!(
        opts(options),
        want(&[("subnet", &["10.1.0.0/24"]), ("mtu", &["1400"])])
    );
    assert!(at(text, statements[0].span).ends_with("mtu 1400"));
}

#[test]
fn a_backslash_continues_the_line_with_crlf_too() {
    let statements = parse("network a \\\r\n subnet 10.1.0.0/24\r\nsandbox b\r\n");
    assert_eq!(statements.len(), 2);
    let StatementKind::Network { options, .. } = &statements[0].kind else {
        panic!("{:?}", statements[0].kind)
    };
    assert_eq!(opts(options), want(&[("subnet", &["10.1.0.0/24"])]));
    assert!(matches!(&statements[1].kind, StatementKind::Sandbox { name, .. } if lit(name) == "b"));
}

#[test]
fn blank_lines_and_indentation_are_ignored() {
    let statements = parse("\n\n   network a\n\t\tsandbox b\t\n\n");
    assert_eq!(statements.len(), 2);
}

// ---- quotes and variables ----------------------------------------------------------

#[test]
fn double_quotes_hold_blanks_and_escapes() {
    let s = one(r#"sandbox a hostname "a b \"c\" \\ d""#);
    let StatementKind::Sandbox { options, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(opts(options), want(&[("hostname", &[r#"a b "c" \ d"#])]));
}

#[test]
fn single_quotes_are_literal() {
    let s = one(r#"exec a -- echo '$HOME "x" \n'"#);
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lits(command), ["echo", r#"$HOME "x" \n"#]);
}

#[test]
fn quoted_strings_may_span_lines() {
    let s = one("exec a -- echo \"one\ntwo\" 'three\nfour'");
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lits(command), ["echo", "one\ntwo", "three\nfour"]);
}

#[test]
fn empty_quotes_are_an_empty_word() {
    let s = one("exec a -- echo \"\" ''");
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lits(command), ["echo", "", ""]);
}

#[test]
fn adjacent_parts_make_one_word() {
    let text = r#"sandbox "we b"'-x'y$i"z""#;
    let s = one(text);
    let StatementKind::Sandbox { name, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        parts(name),
        [(false, "we b-xy".into()), (true, var("i")), (false, "z".into())]
    );
    assert_eq!(at(text, name.span), &text["sandbox ".len()..]);
}

#[test]
fn variables_in_words() {
    let text = "connect web$i to ${net}-x";
    let s = one(text);
    let StatementKind::Connect { sandbox, network, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(parts(sandbox), [(false, "web".into()), (true, var("i"))]);
    assert_eq!(parts(network), [(true, var("net")), (false, "-x".into())]);
    assert_eq!(
        sandbox.literal(),
        None,
        "a word with a variable has no literal text"
    );
    // A variable's span covers `$name` or `${name}`.
    let WordPart::Var { span, .. } = &network.parts[0] else {
        panic!()
    };
    assert_eq!(at(text, *span), "${net}");
    let WordPart::Var { span, .. } = &sandbox.parts[1] else {
        panic!()
    };
    assert_eq!(at(text, *span), "$i");
}

#[test]
fn a_variable_name_ends_at_the_first_character_that_cannot_be_in_it() {
    let s = one("sandbox $a.$b_c-$d1x");
    let StatementKind::Sandbox { name, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        parts(name),
        [
            (true, var("a")),
            (false, ".".into()),
            (true, var("b_c")),
            (false, "-".into()),
            (true, var("d1x")),
        ]
    );
    // Braces end a name where a letter follows.
    let s = one("sandbox ${a}b");
    let StatementKind::Sandbox { name, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(parts(name), [(true, var("a")), (false, "b".into())]);
}

#[test]
fn variables_inside_double_quotes() {
    let text = r#"exec a -- echo "$greeting, ${name}!" '$not'"#;
    let s = one(text);
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(
        parts(&command[1]),
        [
            (true, var("greeting")),
            (false, ", ".into()),
            (true, var("name")),
            (false, "!".into()),
        ]
    );
    assert_eq!(lit(&command[2]), "$not");
}

#[test]
fn an_escaped_dollar_in_double_quotes_is_text() {
    let s = one(r#"exec a -- echo "\$x""#);
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(&command[1]), "$x");
}

#[test]
fn variables_in_option_values_and_names() {
    let s = one("network ${prefix}net subnet 10.$i.0.0/24 mtu $mtu");
    let StatementKind::Network { name, options } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(parts(name), [(true, var("prefix")), (false, "net".into())]);
    assert_eq!(options[0].key.name, "subnet");
    assert_eq!(
        parts(&options[0].values[0]),
        [(false, "10.".into()), (true, var("i")), (false, ".0.0/24".into())]
    );
    assert_eq!(parts(&options[1].values[0]), [(true, var("mtu"))]);
}

#[test]
fn non_ascii_text_keeps_its_bytes() {
    let text = "exec a -- echo \"héllo → wörld\"";
    let s = one(text);
    let StatementKind::Exec { command, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(&command[1]), "héllo → wörld");
    assert_eq!(at(text, command[1].span), "\"héllo → wörld\"");
}

// ---- unknown statements ------------------------------------------------------------

#[test]
fn a_line_that_starts_with_no_keyword_is_an_unknown_statement() {
    let text = "netwrk backend subnet 10.1.0.0/24";
    let s = one(text);
    let StatementKind::Unknown { word } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(lit(word), "netwrk");
    assert_eq!(at(text, s.span), text);
}

#[test]
fn a_keyword_must_be_a_whole_word() {
    // Keywords are case-sensitive, whole, and never quoted or joined to a variable.
    for (text, first) in [
        ("networks a", "networks"),
        ("network-x a", "network-x"),
        ("sandbox$x a", "sandbox$x"),
        ("\"network\" a", "\"network\""),
        ("Network a", "Network"),
    ] {
        let s = one(text);
        let StatementKind::Unknown { word } = &s.kind else {
            panic!("{text:?} parsed as {:?}", s.kind)
        };
        assert_eq!(at(text, word.span), first, "{text:?}");
    }
}

#[test]
fn an_unknown_statement_may_carry_a_block() {
    let s = one("forr i in 1..3 { sandbox a }");
    assert!(matches!(&s.kind, StatementKind::Unknown { word } if lit(word) == "forr"));
}

#[test]
fn unknown_statements_do_not_stop_the_parse() {
    let statements = parse("frobnicate x\nnetwork a\nwhatever\nsandbox b");
    let kinds: Vec<bool> = statements
        .iter()
        .map(|s| matches!(s.kind, StatementKind::Unknown { .. }))
        .collect();
    assert_eq!(kinds, [true, false, true, false]);
}

// ---- malformed statements ----------------------------------------------------------

/// Every keyword with words that do not fit its form parses as `Malformed`, with the
/// keyword and a span over the whole statement.
#[test]
fn a_keyword_with_the_wrong_words_is_malformed() {
    let cases = [
        ("network", "network"),
        ("sandbox", "sandbox"),
        ("sandbox a mode none {}", "sandbox"),
        ("endpoint", "endpoint"),
        ("endpoint ep", "endpoint"),
        ("endpoint ep backend", "endpoint"),
        ("endpoint ep on", "endpoint"),
        ("connect", "connect"),
        ("connect A", "connect"),
        ("connect A backend", "connect"),
        ("connect A to", "connect"),
        ("connect A from backend", "connect"),
        ("disconnect", "disconnect"),
        ("disconnect A", "disconnect"),
        ("disconnect A to backend", "disconnect"),
        ("disconnect A from", "disconnect"),
        ("remove", "remove"),
        ("remove network", "remove"),
        ("stop", "stop"),
        ("start", "start"),
        ("publish", "publish"),
        ("publish web", "publish"),
        ("exec", "exec"),
        ("exec web", "exec"),
        ("exec web ip addr", "exec"),
        ("exec -- ip addr", "exec"),
        ("expect", "expect"),
        ("expect A", "expect"),
        ("expect A reaches", "expect"),
        ("expect A cannot B", "expect"),
        ("expect A cannot reach", "expect"),
        ("expect A knows B", "expect"),
        ("serve", "serve"),
        ("let", "let"),
        ("let x", "let"),
        ("let x 3", "let"),
        ("let x =", "let"),
        ("let = 3", "let"),
        ("let 1x = 3", "let"),
        ("let $x = 3", "let"),
        ("for", "for"),
        ("for i", "for"),
        ("for i 1..3 { sandbox a }", "for"),
        ("for i in { sandbox a }", "for"),
        ("for i in 1..3", "for"),
        ("for i in 1..3 sandbox a", "for"),
        ("for i in 1..3 {} x", "for"),
        ("for 1 in 1..3 {}", "for"),
        ("include", "include"),
    ];
    for (text, keyword) in cases {
        let statements = parse(text);
        assert_eq!(statements.len(), 1, "{text:?} should be one statement");
        let k = malformed_keyword(&statements[0]);
        assert_eq!(k.name, keyword, "{text:?}");
        assert_eq!(at(text, k.span), keyword, "{text:?}");
        assert_eq!(at(text, statements[0].span), text, "{text:?}");
    }
}

#[test]
fn malformed_statements_do_not_stop_the_parse() {
    let text = "connect A\nnetwork a\nlet = 3\nsandbox b\nexpect A reaches";
    let statements = parse(text);
    assert_eq!(statements.len(), 5);
    assert_eq!(malformed_keyword(&statements[0]).name, "connect");
    assert!(matches!(statements[1].kind, StatementKind::Network { .. }));
    assert_eq!(malformed_keyword(&statements[2]).name, "let");
    assert!(matches!(statements[3].kind, StatementKind::Sandbox { .. }));
    assert_eq!(malformed_keyword(&statements[4]).name, "expect");
    assert_eq!(at(text, statements[2].span), "let = 3");
}

#[test]
fn a_malformed_statement_inside_a_block_stays_inside() {
    let s = one("for i in 1..3 {\n  connect web$i\n  sandbox x\n}");
    let StatementKind::For { body, .. } = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(body.len(), 2);
    assert_eq!(malformed_keyword(&body[0]).name, "connect");
}

// ---- syntax errors -----------------------------------------------------------------

#[test]
fn an_unclosed_double_quote_is_reported_where_it_opens() {
    let text = "network a\nsandbox \"web mode none\nsandbox b\n";
    let e = syntax_error(text);
    assert_eq!(
        e.kind,
        ErrorKind::Unclosed {
            opener: '"',
            closer: '"'
        }
    );
    assert_eq!(e.span.start as usize, text.find('"').unwrap());
    assert_eq!(at(text, e.span), "\"");
}

#[test]
fn an_unclosed_single_quote_is_reported_where_it_opens() {
    let text = "sandbox a hostname 'web\n";
    let e = syntax_error(text);
    assert_eq!(
        e.kind,
        ErrorKind::Unclosed {
            opener: '\'',
            closer: '\''
        }
    );
    assert_eq!(e.span.start as usize, text.find('\'').unwrap());
}

#[test]
fn an_escaped_quote_does_not_close_a_string() {
    let text = r#"sandbox a hostname "web\""#;
    let e = syntax_error(text);
    assert!(matches!(e.kind, ErrorKind::Unclosed { opener: '"', .. }));
    assert_eq!(e.span.start as usize, text.find('"').unwrap());
}

#[test]
fn an_unclosed_block_is_reported_where_it_opens() {
    let text = "for i in 1..3 {\n    sandbox web$i\n\nnetwork x\n";
    let e = syntax_error(text);
    assert_eq!(
        e.kind,
        ErrorKind::Unclosed {
            opener: '{',
            closer: '}'
        }
    );
    assert_eq!(e.span.start as usize, text.find('{').unwrap());
}

#[test]
fn the_block_left_open_is_reported() {
    // The `}` closes the inner block: the outer one is left open.
    let text = "for i in 1..3 {\n  for j in 1..3 {\n    sandbox a$i$j\n}\nnetwork n";
    let e = syntax_error(text);
    assert!(matches!(e.kind, ErrorKind::Unclosed { opener: '{', .. }));
    assert_eq!(e.span.start as usize, text.find('{').unwrap());

    // Both left open: the innermost is reported.
    let text = "for i in 1..3 {\n  for j in 1..3 {\n    sandbox a$i$j\n";
    let e = syntax_error(text);
    assert!(matches!(e.kind, ErrorKind::Unclosed { opener: '{', .. }));
    assert_eq!(e.span.start as usize, text.rfind('{').unwrap());
}

#[test]
fn quotes_and_braces_in_comments_do_not_count() {
    let text = "# don't { worry\nsandbox a # \"still a comment\nfor i in 1..2 { sandbox b$i\n";
    let e = syntax_error(text);
    assert!(matches!(e.kind, ErrorKind::Unclosed { opener: '{', .. }));
    assert_eq!(e.span.start as usize, text.rfind('{').unwrap());
}

#[test]
fn a_stray_closing_brace_is_a_syntax_error() {
    let text = "sandbox a\n}\nsandbox b";
    let e = syntax_error(text);
    let ErrorKind::Syntax { found, .. } = &e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(found, "`}`");
    assert_eq!(e.span.start as usize, text.find('}').unwrap());
    assert_eq!(at(text, e.span), "}");

    let e = syntax_error("network a }");
    assert!(matches!(&e.kind, ErrorKind::Syntax { found, .. } if found == "`}`"));

    let e = syntax_error("for i in 1..2 { sandbox a } }");
    assert!(matches!(&e.kind, ErrorKind::Syntax { found, .. } if found == "`}`"));
}

#[test]
fn a_stray_brace_before_an_unclosed_quote_is_reported_first() {
    let text = "sandbox a }\nsandbox \"b\n";
    let e = syntax_error(text);
    assert!(matches!(&e.kind, ErrorKind::Syntax { found, .. } if found == "`}`"));
}

#[test]
fn a_dollar_without_a_name_is_a_syntax_error() {
    for (text, found, at_char) in [
        ("sandbox ${} x", "`}`", '}'),
        ("sandbox $ x", "` `", ' '),
        ("sandbox a$-b", "`-`", '-'),
        ("exec a -- echo \"cost: $5\"", "`5`", '5'),
    ] {
        let e = syntax_error(text);
        let ErrorKind::Syntax { found: f, expected } = &e.kind else {
            panic!("{text:?}: {:?}", e.kind)
        };
        assert_eq!(f, found, "{text:?}");
        assert!(expected.contains("a variable name"), "{text:?}: {expected}");
        assert_eq!(e.span.start as usize, text.rfind(at_char).unwrap(), "{text:?}");
    }
}

#[test]
fn a_dollar_at_the_end_of_the_file_is_pointed_at() {
    let text = "sandbox web$";
    let e = syntax_error(text);
    assert!(matches!(&e.kind, ErrorKind::Syntax { found, .. } if found == "end of file"));
    // Not an empty span past the end, which no label could show.
    assert_eq!(at(text, e.span), "$");
}

#[test]
fn a_backslash_not_at_the_end_of_a_line_is_a_syntax_error() {
    let text = "network a \\ subnet 10.1.0.0/24";
    let e = syntax_error(text);
    let ErrorKind::Syntax { found, expected } = &e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(found, "`\\`");
    assert_eq!(expected, "a line break after it");
    assert_eq!(e.span.start as usize, text.find('\\').unwrap());
}

#[test]
fn a_syntax_error_anywhere_fails_the_whole_file() {
    // The parse stops at the first syntax error: later lines are not reported.
    let e = syntax_error("network a\nsandbox 'b\nconect c\n");
    assert!(matches!(e.kind, ErrorKind::Unclosed { opener: '\'', .. }));
}
