//! Where each key and value of a YAML document sits, by path (`rules[0].match.grade`).
//!
//! serde reports *which* field failed (through serde_path_to_error); this index says
//! *where* it is, so every rule error can point at `file:line:col`.

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<String, (usize, usize)>,
    values: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Positions {
    /// Indexes a document; a syntax error simply ends the index (serde reports it).
    pub fn index(src: &str) -> Self {
        let mut out = Positions::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(src) {
            let Ok((event, span)) = item else { break };
            let at = (span.start.line(), span.start.col() + 1);
            // The path of the node that starts here, if it is a value (not a map key).
            let value_path = |stack: &Vec<Frame>| -> Option<String> {
                match stack.last() {
                    None => Some(String::new()),
                    Some(Frame::Map { path, key: Some(k) }) => Some(child(path, k)),
                    Some(Frame::Map { key: None, .. }) => None,
                    Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
                }
            };
            match event {
                Event::Scalar(text, ..) => match value_path(&stack) {
                    Some(p) => {
                        out.values.insert(p, at);
                        advance(&mut stack);
                    }
                    None => {
                        if let Some(Frame::Map { path, key }) = stack.last_mut() {
                            out.keys.insert(child(path, &text), at);
                            *key = Some(text.to_string());
                        }
                    }
                },
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let p = value_path(&stack).unwrap_or_default();
                    out.values.insert(p.clone(), at);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { path: p, key: None }
                    } else {
                        Frame::Seq { path: p, index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(&mut stack);
                }
                Event::Alias(_) => advance(&mut stack),
                _ => {}
            }
        }
        out
    }

    /// Position of a key (for unknown or misplaced keys).
    pub fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys.get(path).copied()
    }

    /// Position of a value, else of its key, else of the nearest enclosing node.
    pub fn value(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path.to_string();
        loop {
            if let Some(at) = self.values.get(&p).or_else(|| self.keys.get(&p)) {
                return Some(*at);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { index, .. }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_at_lines_and_columns() {
        let src =
            "rules:\n  - id: a\n    match:\n      grade: {at_least: 3}\n      terms: [x, y]\n  - id: b\n";
        let p = Positions::index(src);
        assert_eq!(p.key("rules[0].match"), Some((3, 5)));
        assert_eq!(p.value("rules[0].match.grade.at_least"), Some((4, 25)));
        assert_eq!(p.value("rules[0].match.terms[1]"), Some((5, 18)));
        assert_eq!(p.value("rules[1].id"), Some((6, 9)));
        // Unknown paths fall back to the nearest enclosing node.
        assert_eq!(p.value("rules[1].nothing"), Some((6, 5)));
    }
}
