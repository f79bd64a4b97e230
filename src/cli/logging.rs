//! Logging to stderr with every control character written as a visible escape: a file
//! name, a header or an error text from outside cannot move the cursor, recolour or
//! rewrite lines on an operator's terminal, nor forge lines in the journal (only the
//! newline that ends an event, and tabs, pass through).

use std::io::Write;

/// The writer the subscriber logs through.
pub struct EscapedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapedStderr {
    type Writer = Escaped<std::io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaped(std::io::stderr().lock())
    }
}

/// Escapes control characters (C0 but tab and newline, DEL, C1) as `\xNN` / `\u{NN}`.
pub struct Escaped<W: Write>(pub W);

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '\n' | '\t' => out.push(c),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if (0x80..0xa0).contains(&(c as u32)) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_as_escapes() {
        let mut e = Escaped(Vec::new());
        e.write_all("file=a\u{1b}[2J\rb\u{0}.ndjson\u{9b}31m\tok\n".as_bytes()).unwrap();
        let text = String::from_utf8(e.0).unwrap();
        assert_eq!(text, "file=a\\x1b[2J\\x0db\\x00.ndjson\\u{9b}31m\tok\n");
    }
}
