//! The committed state: `state.json` in the state directory, the model as last applied.
//! An absent file is an empty state; a file cnm cannot read is an error that names it,
//! and is never overwritten. So is a file that parses but does not hold together
//! (see [`consistency`]).

mod consistency;
pub mod files;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::{Model, STATE_FORMAT_VERSION};

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is corrupt at line {line}, column {column}: {reason}; cnm leaves it as it is (`cnm recover --from-journal` rebuilds it from the journal)")]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path} has format version {found}; this cnm reads version {STATE_FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is inconsistent: {problem}")]
    Inconsistent { path: PathBuf, problem: String },
}

/// The committed model in `dir`, or an empty one if nothing was ever applied there.
/// `state.json` is read only if it is a regular file (not a link, not a FIFO) of at
/// most [`files::MAX_STATE_BYTES`].
pub fn load(dir: &Path) -> Result<Model, StateError> {
    let path = dir.join(STATE_FILE);
    let unreadable = |reason: String| StateError::Unreadable {
        path: path.clone(),
        reason,
    };
    let bytes = match files::read_bounded(&path, files::MAX_STATE_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Model::empty()),
        Err(e) => return Err(unreadable(files::describe(&e))),
    };
    let mut last = LAST_READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, model)) = last
        .as_ref()
        .filter(|(read, _)| read.path == path && read.bytes == bytes)
    {
        return Ok(model.clone());
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    let model = parse(&path, &text)?;
    let bytes = text.into_bytes();
    *last = Some((Read { path, bytes }, model.clone()));
    Ok(model)
}

/// A `state.json` as this process last read it.
struct Read {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// The state this process read last, and the model it holds. A command reads the state
/// before it takes the lock and again once it holds it; when the file is byte for byte
/// what it was, the second read costs a comparison, not a parse (a fifth of a no-op
/// apply of 1,000 sandboxes).
static LAST_READ: Mutex<Option<(Read, Model)>> = Mutex::new(None);

/// The model that `text`, read from `path`, holds.
pub fn parse(path: &Path, text: &str) -> Result<Model, StateError> {
    let path = path.to_path_buf();
    let model: Model = serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        line: e.line(),
        column: e.column(),
        reason: strip_position(&e.to_string()),
        path: path.clone(),
    })?;
    if model.format_version != STATE_FORMAT_VERSION {
        return Err(StateError::Version {
            path,
            found: model.format_version,
        });
    }
    if let Some(problem) = consistency::problem(&model) {
        return Err(StateError::Inconsistent { path, problem });
    }
    Ok(model)
}

/// serde_json's message without its own " at line L column C", which we say already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// The model as `state.json` holds it: pretty, with a final newline, stable order.
pub fn to_json(model: &Model) -> String {
    serde_json::to_string_pretty(model).expect("a model serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state read again is the file as it is now: the same bytes give the same model
    /// without a parse, other bytes are parsed (and checked) anew.
    #[test]
    fn a_state_read_again_is_what_the_file_holds_now() {
        let dir = std::env::temp_dir().join(format!("cnm-state-again-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut model = Model::empty();
        std::fs::write(dir.join(STATE_FILE), to_json(&model)).unwrap();
        assert_eq!(load(&dir).unwrap(), model);
        assert_eq!(load(&dir).unwrap(), model);
        model.ip_forward_enabled = true;
        std::fs::write(dir.join(STATE_FILE), to_json(&model)).unwrap();
        assert_eq!(load(&dir).unwrap(), model);
        std::fs::write(dir.join(STATE_FILE), "{").unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn absent_state_is_empty_and_corrupt_state_names_its_line() {
        let dir = std::env::temp_dir().join(format!("cnm-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), Model::empty());
        std::fs::write(
            dir.join(STATE_FILE),
            "{\n  \"format_version\": 1,\n  \"networks\": [\n",
        )
        .unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("state.json is corrupt at line 3"), "{err}");
        std::fs::write(
            dir.join(STATE_FILE),
            to_json(&Model {
                format_version: 9,
                ..Model::empty()
            }),
        )
        .unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(
            err.ends_with("has format version 9; this cnm reads version 1"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The model `scripts/seed.cnm` commits.
    fn seed() -> Model {
        let mut sources = crate::syntax::Sources::default();
        let text = include_str!("../scripts/seed.cnm");
        let id = sources.add("seed.cnm", text);
        crate::check::check(&mut sources, &[id], &Model::empty())
            .expect("the seed checks")
            .model
    }

    /// What `load` says of `model` written to state.json, which it leaves as it was.
    fn inconsistency(test: &str, model: &Model) -> String {
        let dir = std::env::temp_dir().join(format!("cnm-state-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = to_json(model);
        std::fs::write(dir.join(STATE_FILE), &text).unwrap();
        let err = load(&dir)
            .expect_err("an inconsistent state is refused")
            .to_string();
        assert_eq!(std::fs::read_to_string(dir.join(STATE_FILE)).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
        let prefix = format!("{} is inconsistent: ", dir.join(STATE_FILE).display());
        err.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{err}"))
            .to_string()
    }

    #[test]
    fn a_consistent_state_loads() {
        let dir = std::env::temp_dir().join(format!("cnm-state-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(STATE_FILE), to_json(&seed())).unwrap();
        assert_eq!(load(&dir).unwrap(), seed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_inconsistent_state_is_refused_with_what_is_wrong() {
        type Mutation = fn(&mut Model);
        let cases: &[(&str, Mutation, &str)] = &[
            (
                "missing-network",
                |m| m.endpoints["A.backend"].network = "nowhere".into(),
                "endpoint `A.backend` names network `nowhere`, which the state does not hold",
            ),
            (
                "missing-sandbox",
                |m| {
                    m.sandboxes.shift_remove("A");
                },
                "endpoint `A.backend` names sandbox `A`, which the state does not hold",
            ),
            (
                "no-ifname",
                |m| m.endpoints["B.frontend"].ifname = None,
                "endpoint `B.frontend` is joined to sandbox `B` without an interface name",
            ),
            (
                "no-bridge",
                |m| m.networks["backend"].bridge = None,
                "bridge network `backend` has no bridge",
            ),
            (
                "no-parent",
                |m| m.networks["backend"].driver = crate::model::Driver::Macvlan,
                "macvlan network `backend` has no parent",
            ),
            (
                "same-address",
                |m| m.endpoints["B.backend"].ip = m.endpoints["A.backend"].ip,
                "endpoints `A.backend` and `B.backend` both have address 10.1.0.2",
            ),
            (
                "same-mac",
                |m| m.endpoints["B.backend"].mac = m.endpoints["A.backend"].mac,
                "endpoints `A.backend` and `B.backend` on network `backend` both have MAC 02:42:0a:01:00:02",
            ),
            (
                "same-host-ifname",
                |m| m.endpoints["B.backend"].host_ifname = m.endpoints["A.backend"].host_ifname.clone(),
                "endpoints `A.backend` and `B.backend` both have host interface `HOST`",
            ),
            (
                "key-is-not-name",
                |m| m.sandboxes["C"].name = "D".into(),
                "the sandbox recorded as `C` is named `D`",
            ),
            (
                "shares-a-missing-sandbox",
                |m| m.sandboxes["C"].mode = crate::model::Mode::Container("ghost".into()),
                "sandbox `C` shares the namespace of `ghost`, which the state does not hold",
            ),
            (
                "gateway-outside",
                |m| m.networks["frontend"].gateway = "10.9.0.1".parse().unwrap(),
                "gateway 10.9.0.1 of network `frontend` is outside its subnet 10.2.0.0/24",
            ),
            (
                "zero-mtu",
                |m| m.networks["frontend"].mtu = 0,
                "network `frontend` has MTU 0, outside 68..65535",
            ),
            (
                "huge-mtu",
                |m| m.networks["frontend"].mtu = u32::MAX,
                "network `frontend` has MTU 4294967295, outside 68..65535",
            ),
            (
                "tiny-subnet",
                |m| m.networks["backend"].subnet = "255.255.255.255/32".parse().unwrap(),
                "network `backend` has subnet 255.255.255.255/32, too small for a gateway and an endpoint",
            ),
            (
                "address-outside",
                |m| m.endpoints["C.frontend"].ip = "10.1.0.50".parse().unwrap(),
                "address 10.1.0.50 of endpoint `C.frontend` is outside its subnet 10.2.0.0/24",
            ),
            (
                "name-is-a-path",
                |m| {
                    let mut a = m.sandboxes.shift_remove("A").unwrap();
                    a.name = "../../etc".into();
                    m.sandboxes.insert(a.name.clone(), a);
                },
                "sandbox `../../etc` has an invalid name: a name starts with a letter or a digit",
            ),
            (
                "two-default-routes",
                |m| m.endpoints["B.frontend"].default_route = true,
                "sandbox `B` has two default routes, through endpoints `B.backend` and `B.frontend`",
            ),
        ];
        for (test, mutate, expected) in cases {
            let mut model = seed();
            mutate(&mut model);
            let expected = expected.replace("HOST", &model.endpoints["A.backend"].host_ifname);
            assert_eq!(inconsistency(test, &model), expected, "{test}");
        }
    }
}
