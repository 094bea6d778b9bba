//! Terminal output for people: aligned tables, findings as text, and colour
//! only when stdout is a terminal (never in pipes or files, where escape
//! codes are noise).

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::report::model::Finding;
use crate::vocab::Action;

/// What a cell's colour means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
    Bold,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("1;31"),
            Tone::Dim => Some("2"),
            Tone::Bold => Some("1"),
        }
    }
}

/// Whether to colour: decided once, from the flag and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

/// `--color`: `auto` colours only a terminal, and honours `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl Paint {
    pub const NEVER: Paint = Paint { on: false };
    pub const ALWAYS: Paint = Paint { on: true };

    /// For stdout, by the user's choice (see <https://no-color.org>).
    pub fn for_stdout(choice: ColorChoice) -> Paint {
        let on = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Paint { on }
    }

    pub fn apply(self, text: &str, tone: Tone) -> String {
        match tone.code() {
            Some(code) if self.on => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }
}

/// A finding's action as a label: `DENY` in red, `WARN` in yellow.
pub fn action_label(paint: Paint, action: Action) -> String {
    let tone = if action == Action::Deny {
        Tone::Bad
    } else {
        Tone::Warn
    };
    paint.apply(&action.to_string().to_uppercase(), tone)
}

/// A finding with everything about it, as `check` lists them: where it is
/// (`file:line: `, for an object read from a file), the object, the action
/// and rule, then the message and the detail indented.
pub fn finding_block(f: &Finding, paint: Paint) -> String {
    let mut out = String::new();
    if let Some(s) = &f.source {
        let _ = write!(out, "{}:{}: ", s.file, s.line);
    }
    let _ = writeln!(
        out,
        "{} {}/{}: {} {}",
        f.object.kind,
        f.object.namespace,
        f.object.name,
        action_label(paint, f.action),
        f.rule
    );
    let _ = writeln!(out, "  {}", f.message);
    if let Some(d) = &f.detail {
        for line in d.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// A finding on one indented line, as `audit` lists them under their
/// namespace: the action, the object and the message.
pub fn finding_line(f: &Finding, paint: Paint) -> String {
    format!(
        "  {} {} {}: {}\n",
        action_label(paint, f.action),
        f.object.kind,
        f.object.name,
        f.message
    )
}

/// One table cell: its text and what its colour means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn new(text: impl Into<String>, tone: Tone) -> Self {
        Self {
            text: text.into(),
            tone,
        }
    }

    pub fn plain(text: impl Into<String>) -> Self {
        Self::new(text, Tone::Plain)
    }
}

/// A table in `kubectl get` style: a header, columns padded to their widest
/// cell (measured before colouring, so colour never breaks alignment), and
/// numbers right-aligned.
pub fn render_table(header: &[&str], rows: &[Vec<Cell>], paint: Paint) -> String {
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|c| c.text.chars().count())
            .chain(std::iter::once(header[i].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_some_and(|c| c.text == "-" || c.text.parse::<u64>().is_ok())
                })
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<(String, Tone)>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, tone)) in cells.into_iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let painted = paint.apply(&cell, tone);
            if numeric[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(&painted);
            } else {
                text.push_str(&painted);
                if i != last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if i != last {
                text.push_str("  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| (h.to_string(), Tone::Bold)).collect());
    for r in rows {
        line(r.iter().map(|c| (c.text.clone(), c.tone)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_right_align() {
        let rows = vec![
            vec![Cell::plain("payments"), Cell::new("12", Tone::Bad)],
            vec![Cell::plain("web"), Cell::plain("3")],
        ];
        assert_eq!(
            render_table(&["NAMESPACE", "N"], &rows, Paint::NEVER),
            "NAMESPACE   N\npayments   12\nweb         3\n"
        );
    }

    #[test]
    fn colour_wraps_the_text_but_padding_counts_only_the_text() {
        let rows = vec![vec![Cell::new("a", Tone::Bad), Cell::plain("x")]];
        assert_eq!(
            render_table(&["AB", "C"], &rows, Paint::ALWAYS),
            "\x1b[1mAB\x1b[0m  \x1b[1mC\x1b[0m\n\x1b[1;31ma\x1b[0m   x\n"
        );
        assert_eq!(Paint::NEVER.apply("a", Tone::Bad), "a");
    }
}
