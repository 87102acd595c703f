//! Escaping of text that came from the cluster (pod messages, event
//! messages, log lines, image names) for each sink. Such text is hostile by
//! assumption: it must not break the Markdown or HTML around it, issue
//! GitHub workflow commands, mention people in Slack or on GitHub, or inject
//! HTML.

/// U+2060 WORD JOINER: invisible, not whitespace, breaks `::` and `@name`.
const JOINER: char = '\u{2060}';

/// Neutralise GitHub workflow commands: a line whose first non-blank
/// characters are `::` gets an invisible joiner between the colons, so the
/// runner no longer sees a command. Everything else is unchanged.
pub fn neutralise_commands(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("::") {
            out.push_str(&line[..line.len() - trimmed.len()]);
            out.push(':');
            out.push(JOINER);
            out.push(':');
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// A workflow command's message (`::error::MESSAGE`): `%`, `\r`, `\n`.
pub fn command_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (`title=VALUE`): also `:` and `,`.
pub fn command_property(s: &str) -> String {
    command_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Break `@name` mentions (GitHub users/teams, Slack's `@channel`) with an
/// invisible joiner after the `@` when a name character follows.
fn break_mentions(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '@'
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_')
        {
            out.push(JOINER);
        }
    }
    out
}

/// Plain Markdown/HTML text (a paragraph, a list item, a `<summary>`):
/// HTML-significant characters become entities, Markdown-active characters
/// are backslash-escaped, line breaks become spaces, mentions are broken
/// and workflow commands neutralised.
pub fn md_text(s: &str) -> String {
    entities_on_one_line(s, true)
}

/// Text inside raw HTML (`<summary>…</summary>`), where Markdown escapes
/// are not processed: entities only, one line, mentions broken.
pub fn html_text(s: &str) -> String {
    entities_on_one_line(s, false)
}

/// One line with HTML-significant characters as entities (and the
/// Markdown-active ones backslash-escaped when `markdown`), mentions broken
/// and workflow commands neutralised.
fn entities_on_one_line(s: &str, markdown: bool) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    let mut out = String::with_capacity(one_line.len() + 8);
    for c in one_line.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' if markdown => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    neutralise_commands(&break_mentions(&out))
}

/// Longest run of `ch` in `s`.
fn longest_run(s: &str, ch: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for c in s.chars() {
        if c == ch {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// An inline code span holding `s` verbatim, on one line; `|` escaped so
/// it also fits in a GFM table cell. The fence is one backtick longer than
/// any backtick run inside; padding keeps edge backticks apart.
pub fn md_code(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ").replace('|', "\\|");
    let fence = "`".repeat(longest_run(&one_line, '`') + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') || one_line.is_empty() {
        " "
    } else {
        ""
    };
    neutralise_commands(&format!("{fence}{pad}{one_line}{pad}{fence}"))
}

/// An inline code span outside a table (a `|` stays as it is).
pub fn md_code_span(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    let fence = "`".repeat(longest_run(&one_line, '`') + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') || one_line.is_empty() {
        " "
    } else {
        ""
    };
    neutralise_commands(&format!("{fence}{pad}{one_line}{pad}{fence}"))
}

/// A fenced code block holding `body` verbatim (a log tail, evidence).
/// The fence is longer than any backtick run inside, so nothing inside can
/// close it; inside a code block neither HTML (`</details>`) nor mentions
/// are interpreted. Lines starting with `::` are still neutralised.
pub fn md_fence(body: &str, info: &str) -> String {
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    let fence = "`".repeat((longest_run(&body, '`') + 1).max(3));
    let body = neutralise_commands(&body);
    let nl = if body.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{info}\n{body}{nl}{fence}\n")
}

/// Slack mrkdwn text: only `&`, `<`, `>` are control characters
/// (`<!channel>`, `<@U123>`, `<url|label>`); mentions written `@channel`
/// are broken too, formatting characters are made inert with the joiner.
pub fn slack_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Formatting marks: a joiner before them keeps them literal
            // enough (Slack requires word boundaries around them).
            '*' | '_' | '~' | '`' => {
                out.push(JOINER);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    break_mentions(&out)
}

/// Slack text for a ``` code block: entities as in [`slack_text`], and
/// backticks replaced by a look-alike so the block cannot be closed.
pub fn slack_code(s: &str) -> String {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "\u{02CB}");
    break_mentions(&escaped)
}

/// Cut `s` to at most `max` bytes on a char boundary, with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Cut `s` to at most `max` characters (Slack counts characters).
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_neutralised() {
        let s = neutralise_commands("ok\n::error::pwned\n  ::add-mask::x");
        assert!(!s.lines().any(|l| l.trim_start().starts_with("::")));
        assert!(s.contains("error"));
        assert_eq!(command_data("50%\r\nx"), "50%25%0D%0Ax");
        assert_eq!(command_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn markdown_text_is_inert() {
        let s = md_text("</details><script>x</script> & @here | `a`\n::error::y");
        assert!(!s.contains('<'));
        assert!(!s.contains('\n'));
        assert!(s.contains("&lt;/details&gt;"));
        assert!(s.contains("\\|"));
        assert!(!s.contains("@here"));
        assert!(!md_text("::error::y").starts_with("::"));
    }

    #[test]
    fn code_spans_and_fences_cannot_be_closed() {
        assert_eq!(md_code("a"), "`a`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x`"), "`` `x` ``");
        assert_eq!(md_code("a|b"), "`a\\|b`");
        let f = md_fence("x\n````\n</details>", "text");
        assert!(f.starts_with("`````text\n"));
        assert!(f.ends_with("\n`````\n"));
        let f = md_fence("plain", "");
        assert_eq!(f, "```\nplain\n```\n");
    }

    #[test]
    fn slack_mentions_are_escaped() {
        let s = slack_text("<!channel> <!here> <@U123> @channel a&b");
        assert!(!s.contains('<'));
        assert!(!s.contains("@channel"));
        assert!(s.contains("&lt;!channel&gt;"));
        assert!(s.contains("a&amp;b"));
        let c = slack_code("```\n<!here>");
        assert!(!c.contains('`'));
        assert!(!c.contains("<!here>"));
    }

    /// Cheap deterministic fuzzing over a hostile alphabet.
    #[test]
    fn hostile_strings_keep_their_invariants() {
        let alphabet: Vec<char> = "`<>&|:@!\n\r*_~#[]\\ ahere channel/details"
            .chars()
            .collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3_000 {
            let len = (seed % 40) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            for out in [md_text(&s), html_text(&s), md_code(&s)] {
                assert!(!out.contains(['\n', '\r']), "{s:?} -> {out:?}");
                assert!(!out.trim_start().starts_with("::"), "{s:?} -> {out:?}");
            }
            for out in [md_text(&s), html_text(&s), slack_text(&s), slack_code(&s)] {
                assert!(!out.contains('<'), "{s:?} -> {out:?}");
                assert!(!out.contains("@channel") && !out.contains("@here"));
            }
            // A code span: the fence run opens and closes it, and no
            // longer-or-equal run appears inside.
            let code = md_code(&s);
            let fence = code.chars().take_while(|c| *c == '`').count();
            let inner = &code[fence..code.len() - fence];
            assert!(longest_run(inner, '`') < fence, "{s:?} -> {code:?}");
            assert!(!inner.replace("\\|", "").contains('|'));
            // A fenced block: no inside line closes it.
            let block = md_fence(&s, "text");
            let fence = block.chars().take_while(|c| *c == '`').count();
            let lines: Vec<&str> = block.lines().collect();
            for l in &lines[1..lines.len() - 1] {
                assert!(longest_run(l, '`') < fence);
                assert!(!l.trim_start().starts_with("::"));
            }
            assert!(!slack_code(&s).contains('`'));
        }
    }

    #[test]
    fn truncation_respects_boundaries() {
        assert_eq!(truncate("héllo", 4), "h…");
        assert_eq!(truncate("hello", 10), "hello");
        assert!(truncate(&"é".repeat(100), 51).len() <= 51);
        assert_eq!(truncate_chars("abcdef", 4), "abc…");
    }
}
