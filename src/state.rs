//! The committed state: `state.json` in the state directory, the model as last applied.
//! An absent file is an empty state; a file cnm cannot read is an error that names it,
//! and is never overwritten.

use std::path::{Path, PathBuf};

use crate::io_reason::io_reason;
use crate::model::{Model, STATE_FORMAT_VERSION};

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is corrupt at line {line}, column {column}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path} has format version {found}; this cnm reads version {STATE_FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// The committed model in `dir`, or an empty one if nothing was ever applied there.
pub fn load(dir: &Path) -> Result<Model, StateError> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Model::empty()),
        Err(e) => {
            return Err(StateError::Unreadable {
                reason: io_reason(&e),
                path,
            })
        }
    };
    let model: Model = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
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
}
