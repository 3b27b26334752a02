//! The text of a file a sandbox shows in `/etc`, held as pieces that files share.
//!
//! A network of N sandboxes has N hosts files of about N lines each, and every one of
//! them lists the same peers. Each file holds its own lines and, for each of its
//! networks, ranges of one block of peer lines shared by every file of that network:
//! a plan of N files costs memory in N, not N². It reads as one string: it compares,
//! prints and serialises by its content.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default)]
pub struct FileText {
    pieces: Vec<Piece>,
}

#[derive(Clone)]
struct Piece {
    text: Arc<str>,
    range: Range<usize>,
    /// How many newlines the range holds.
    newlines: usize,
}

impl Piece {
    fn as_str(&self) -> &str {
        &self.text[self.range.clone()]
    }
}

impl FileText {
    /// Appends text of this file's own.
    pub fn push_str(&mut self, text: &str) {
        let newlines = newlines(text);
        self.push_shared(&Arc::from(text), 0..text.len(), newlines);
    }

    /// Appends `range` of a text that other files share, which holds `newlines`
    /// newlines (the caller knows: counting them would read every file whole).
    pub fn push_shared(&mut self, text: &Arc<str>, range: Range<usize>, newlines: usize) {
        debug_assert_eq!(newlines, self::newlines(&text[range.clone()]));
        if !range.is_empty() {
            self.pieces.push(Piece {
                text: Arc::clone(text),
                range,
                newlines,
            });
        }
    }

    /// The text, in order, as the slices it is made of.
    pub fn chunks(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().map(Piece::as_str)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.range.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// How many lines it has, as `str::lines` counts them.
    pub fn line_count(&self) -> usize {
        let newlines: usize = self.pieces.iter().map(|p| p.newlines).sum();
        let unterminated = self.chunks().last().is_some_and(|c| !c.ends_with('\n'));
        newlines + usize::from(unterminated)
    }
}

fn newlines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

impl From<&str> for FileText {
    fn from(text: &str) -> FileText {
        let mut file = FileText::default();
        file.push_str(text);
        file
    }
}

impl From<String> for FileText {
    fn from(text: String) -> FileText {
        let (range, newlines) = (0..text.len(), newlines(&text));
        let mut file = FileText::default();
        file.push_shared(&Arc::from(text), range, newlines);
        file
    }
}

impl PartialEq for FileText {
    fn eq(&self, other: &FileText) -> bool {
        self.len() == other.len() && same_bytes(self.chunks(), other.chunks())
    }
}

impl Eq for FileText {}

impl PartialEq<str> for FileText {
    fn eq(&self, other: &str) -> bool {
        self.len() == other.len() && same_bytes(self.chunks(), std::iter::once(other))
    }
}

/// Whether two texts of the same length, each in slices cut at different places, hold
/// the same bytes.
fn same_bytes<'a>(a: impl Iterator<Item = &'a str>, b: impl Iterator<Item = &'a str>) -> bool {
    let (mut a, mut b) = (a.map(str::as_bytes), b.map(str::as_bytes));
    let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
    loop {
        if x.is_empty() {
            x = match a.next() {
                Some(next) => next,
                None => return y.is_empty() && b.all(<[u8]>::is_empty),
            };
            continue;
        }
        if y.is_empty() {
            y = match b.next() {
                Some(next) => next,
                None => return false,
            };
            continue;
        }
        let n = x.len().min(y.len());
        if x[..n] != y[..n] {
            return false;
        }
        (x, y) = (&x[n..], &y[n..]);
    }
}

impl fmt::Display for FileText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chunks().try_for_each(|chunk| f.write_str(chunk))
    }
}

impl fmt::Debug for FileText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// As one string, written out piece by piece (never assembled in memory).
impl Serialize for FileText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FileText, D::Error> {
        String::deserialize(deserializer).map(FileText::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(parts: &[&str]) -> FileText {
        let shared: Arc<str> = Arc::from(parts.concat());
        let mut file = FileText::default();
        let mut at = 0;
        for part in parts {
            file.push_shared(&shared, at..at + part.len(), newlines(part));
            at += part.len();
        }
        file
    }

    #[test]
    fn texts_cut_differently_are_equal_by_their_bytes() {
        let a = pieces(&["127.0.0.1\tlocalhost\n", "10.0.0.2\tb\n", "10.0.0.3\tc\n"]);
        let b = pieces(&["127.0.0.1\tlocal", "host\n10.0.0.2\tb\n10", ".0.0.3\tc\n"]);
        assert_eq!(a, b);
        assert_eq!(a, *"127.0.0.1\tlocalhost\n10.0.0.2\tb\n10.0.0.3\tc\n");
        assert_ne!(
            a,
            pieces(&["127.0.0.1\tlocalhost\n", "10.0.0.2\tb\n", "10.0.0.4\tc\n"])
        );
        assert_ne!(a, pieces(&["127.0.0.1\tlocalhost\n", "10.0.0.2\tb\n"]));
        assert_eq!(FileText::default(), FileText::from(""));
    }

    #[test]
    fn it_reads_and_serialises_as_one_string() {
        let text = pieces(&["a\n", "", "b\nc"]);
        assert_eq!(text.to_string(), "a\nb\nc");
        assert_eq!((text.len(), text.line_count()), (5, 3));
        assert_eq!(pieces(&["a\n", "b\n"]).line_count(), 2);
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#""a\nb\nc""#);
        assert_eq!(serde_json::from_str::<FileText>(&json).unwrap(), text);
    }
}
