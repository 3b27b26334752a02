//! Declarations are idempotent: an object that exists already with the options given is
//! left alone; one whose options differ is an error that says what differs.

use crate::error::ErrorKind;
use crate::model::ObjectKind;

/// Accumulates "field X (this script says Y)" for a declaration that meets an object
/// that exists already.
#[derive(Default)]
pub(super) struct Differences(Vec<String>);

impl Differences {
    pub(super) fn compare<T: PartialEq + std::fmt::Display>(
        &mut self,
        field: &str,
        existing: T,
        wanted: Option<T>,
    ) {
        if let Some(wanted) = wanted {
            if wanted != existing {
                self.0
                    .push(format!("{field} {existing} (this script says {wanted})"));
            }
        }
    }

    pub(super) fn into_error(self, kind: ObjectKind, name: &str) -> Option<ErrorKind> {
        (!self.0.is_empty()).then(|| ErrorKind::ConfigConflict {
            kind,
            name: name.to_string(),
            differences: self.0.join(", "),
        })
    }
}

/// The items separated by blanks, or `none`.
pub(super) fn list_or_none<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
    }
}
