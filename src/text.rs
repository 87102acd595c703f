//! The output boundary for untrusted text: anything the cluster or the user
//! wrote (event and termination messages, probe output, log lines, input
//! values) on its way to a CI log, a terminal or a file.
//!
//! Three guarantees, for every sink:
//! - no terminal control survives: C0/C1 controls, DEL, and whole escape
//!   sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL/ST`, DCS/SOS/PM/APC
//!   `… ST`, two-byte `ESC x`) are removed; bidi overrides too;
//! - a line break in the text cannot start a new line: [`one_line`] folds
//!   every kind of line break into a space;
//! - no line can start a GitHub workflow command (`::name …::`) except the
//!   ones rollguard writes itself: [`SafeWriter`] neutralises every line
//!   whose first non-blank characters are `::` unless it carries this
//!   process's [`trusted`] tag, which untrusted text cannot know.

use std::io::Write;
use std::sync::OnceLock;

/// U+2060 WORD JOINER: invisible and not whitespace; put between the two
/// colons of `::` it stops the runner from seeing a command.
const JOINER: char = '\u{2060}';

/// Is `c` a character no sink may receive raw?
fn is_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional overrides and isolates ("Trojan Source").
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Remove every terminal escape sequence and control character from `s`;
/// line feeds are kept, tabs become spaces, CR and other line separators
/// become line feeds.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI / OSC / DCS / SOS / PM / APC introducers: same as ESC [ / ESC ] / …
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\r' => {
                // CRLF is one break.
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{0b}' | '\u{0c}' => out.push('\n'),
            '\t' => out.push(' '),
            c if is_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | 'X' | '^' | '_') => skip_string(chars),
        // ESC + one intermediate/final character (ESC c, ESC ( B, …).
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            chars.next();
        }
        _ => {}
    }
}

/// CSI: parameter and intermediate bytes, then one final byte (`@`–`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        chars.next();
        if ('\u{40}'..='\u{7e}').contains(&c) || !('\u{20}'..='\u{7e}').contains(&c) {
            return;
        }
    }
}

/// OSC / DCS / …: until BEL, ESC \ (ST) or the C1 ST; a line break also
/// ends it (so a stray introducer cannot swallow the rest of a log).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{07}' | '\u{9c}' | '\n' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// `s` cleaned and on one line (every line break becomes a space), with a
/// leading `::` neutralised: safe to embed anywhere in a line or as a line.
pub fn one_line(s: &str) -> String {
    let cleaned = clean(s);
    let folded: Vec<&str> = cleaned.split('\n').map(str::trim_end).collect();
    neutralise(&folded.join(" "))
}

/// A value to quote in an error message: cleaned, one line, and cut to
/// `max` characters.
pub fn quote(s: &str, max: usize) -> String {
    let v = one_line(s);
    if v.chars().count() <= max {
        v
    } else {
        let mut cut: String = v.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// One line: if its first non-blank characters are `::`, a joiner goes
/// between them.
pub fn neutralise(line: &str) -> String {
    let trimmed = line.trim_start();
    match trimmed.strip_prefix("::") {
        Some(rest) => format!("{}:{JOINER}:{rest}", &line[..line.len() - trimmed.len()]),
        None => line.to_string(),
    }
}

/// Every line of `s` cleaned and neutralised (line structure kept).
pub fn lines(s: &str) -> String {
    clean(s)
        .split('\n')
        .map(neutralise)
        .collect::<Vec<_>>()
        .join("\n")
}

/// This process's tag for its own workflow-command lines: random, so text
/// from the cluster cannot forge it.
fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("\u{0}rollguard-{:016x}\u{0}", rand::random::<u64>()))
}

/// Mark every line of `commands` (text rollguard built itself: workflow
/// commands whose data is already escaped, GitLab section markers) so a
/// [`SafeWriter`] lets it through.
pub fn trusted(commands: &str) -> String {
    let mut out = String::with_capacity(commands.len() + 32);
    for line in commands.split_inclusive('\n') {
        out.push_str(tag());
        out.push_str(line);
    }
    out
}

/// A line-buffered writer that applies the boundary rules to every line:
/// lines marked [`trusted`] go out as they are (minus the mark); every other
/// line is [`clean`]ed (with `keep_sgr`, colour sequences survive: for the
/// log formatter's own colours on a terminal) and [`neutralise`]d.
pub struct SafeWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    keep_sgr: bool,
}

impl<W: Write> SafeWriter<W> {
    pub fn new(inner: W) -> Self {
        SafeWriter {
            inner,
            buf: Vec::new(),
            keep_sgr: false,
        }
    }

    /// Keep `ESC [ … m` (colour) sequences: for a formatter that escapes
    /// the text it interpolates and colours on a terminal.
    pub fn keeping_colours(mut self, keep: bool) -> Self {
        self.keep_sgr = keep;
        self
    }

    fn emit(&mut self, line: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (&*text, ""),
        };
        let safe = match body.strip_prefix(tag()) {
            Some(own) => own.to_string(),
            None if self.keep_sgr => lines(&keep_colours(body)).replace(SGR_MARK, "\u{1b}["),
            None => lines(body),
        };
        self.inner.write_all(safe.as_bytes())?;
        self.inner.write_all(newline.as_bytes())
    }
}

/// A private-use stand-in for `ESC [` of a colour sequence while cleaning.
const SGR_MARK: &str = "\u{F8FF}\u{F8FE}";

/// Replace the `ESC [` of well-formed colour sequences (`ESC [ digits;… m`)
/// with [`SGR_MARK`]; anything else stays for [`clean`] to remove.
fn keep_colours(s: &str) -> String {
    let s = s.replace(SGR_MARK, "");
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("\u{1b}[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let params = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[params..].starts_with('m') {
            out.push_str(SGR_MARK);
            out.push_str(&after[..=params]);
            rest = &after[params + 1..];
        } else {
            out.push_str("\u{1b}[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

impl<W: Write> Write for SafeWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            self.emit(&line)?;
        }
        Ok(data.len())
    }

    /// A partial line is written out only once it has a non-blank
    /// character that is not a `:` (so its continuation cannot turn it
    /// into a command) — or when the writer is dropped.
    fn flush(&mut self) -> std::io::Result<()> {
        // Judged on the text as it will be written (controls removed), so a
        // removed escape cannot hide a leading `:`.
        let text = clean(&String::from_utf8_lossy(&self.buf));
        let decided = text
            .trim_start()
            .chars()
            .next()
            .is_some_and(|c| c != ':' && c != '\u{0}')
            && std::str::from_utf8(&self.buf).is_ok();
        if decided {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for SafeWriter<W> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            let _ = self.emit(&line);
        }
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_removed() {
        let hostile = "a\u{1b}]8;;https://evil/\u{7}link\u{1b}]8;;\u{7} \u{1b}[31;1mred\u{1b}[0m \u{9b}2J\u{7}\u{8}z\u{202E}x";
        let c = clean(hostile);
        assert_eq!(c, "alink red zx");
        assert!(!c.contains('\u{1b}'));
        assert_eq!(clean("a\r\nb\rc"), "a\nb\nc");
    }

    #[test]
    fn one_line_never_breaks_or_commands() {
        let s = one_line("::error::x\n::stop-commands::y\r\n\u{2028}z");
        assert!(!s.contains('\n'));
        assert!(!s.starts_with("::"));
        assert!(s.contains("stop-commands"));
    }

    #[test]
    fn writer_neutralises_untrusted_lines_only() {
        let mut out = Vec::new();
        {
            let mut w = SafeWriter::new(&mut out);
            write!(w, "{}", trusted("::group::rollout\n")).unwrap();
            writeln!(
                w,
                "progress\n::add-mask::rollguard\n  ::error title=PWNED::x"
            )
            .unwrap();
            write!(w, "{}", trusted("::endgroup::\n")).unwrap();
            // A forged tag without the secret part is not trusted.
            writeln!(w, "\u{0}rollguard-0000000000000000\u{0}::error::forged").unwrap();
            write!(w, "::").unwrap();
            w.flush().unwrap();
            writeln!(w, "warning::split").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let commands: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("::"))
            .collect();
        assert_eq!(commands, ["::group::rollout", "::endgroup::"], "{text}");
        assert!(!text.contains('\u{0}'));
    }

    #[test]
    fn trusted_lines_pass_byte_for_byte() {
        // A GitLab section marker: ESC [ 0 K and a carriage return are its syntax.
        let s = "\u{1b}[0Ksection_start:1:x[collapsed=true]\r\u{1b}[0Kx\n";
        let mut out = Vec::new();
        {
            let mut w = SafeWriter::new(&mut out);
            write!(w, "{}", trusted(s)).unwrap();
            writeln!(w, "{}", s.trim_end()).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let (own, untrusted) = text.split_at(s.len());
        assert_eq!(own, s);
        assert_eq!(untrusted, "section_start:1:x[collapsed=true]\nx\n");
    }

    #[test]
    fn colours_of_the_formatter_survive_only_when_asked() {
        let mut out = Vec::new();
        {
            let mut w = SafeWriter::new(&mut out).keeping_colours(true);
            writeln!(w, "\u{1b}[32mINFO\u{1b}[0m x \u{1b}]8;;u\u{7}l").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{1b}[32mINFO\u{1b}[0m x l\n"
        );
    }
}
