//! One way out for `check` and `audit`: a report rendered as text, JSON or
//! SARIF and written to standard output, or a [`RenderError`] that says why
//! not (the commands then exit 2: a CI job must not read a missing or cut
//! report as a clean one).

use std::io::{self, Write};

use serde::Serialize;

use crate::report::audit::{self, AuditReport};
use crate::report::check::CheckReport;
use crate::report::model::Finding;
use crate::report::sarif;
use crate::report::summary::Paint;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "JSON",
            Format::Sarif => "SARIF",
        }
    }
}

/// What `check` and `audit` reports have in common for output. As JSON a
/// report is itself (`Serialize`).
pub trait Report: Serialize {
    /// Every finding, in the order SARIF lists them.
    fn all_findings(&self) -> impl Iterator<Item = &Finding>;
    /// Objects that could not be judged.
    fn errors(&self) -> &[String];
    /// What the reader should know besides findings and errors. Text and
    /// JSON carry them; with SARIF they go to standard error, so that
    /// standard output stays one JSON document.
    fn notes(&self) -> &[String] {
        &[]
    }
    /// The report for people.
    fn text(&self, paint: Paint) -> String;
}

impl Report for CheckReport {
    fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter()
    }

    fn errors(&self) -> &[String] {
        &self.errors
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }

    fn text(&self, paint: Paint) -> String {
        self.to_text_painted(paint)
    }
}

impl Report for AuditReport {
    fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings()
    }

    fn errors(&self) -> &[String] {
        &self.errors
    }

    fn text(&self, paint: Paint) -> String {
        audit::to_text(self, paint)
    }
}

/// Why a report was not (all) written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render {format}: {source}")]
    Serialize {
        format: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot write the {format} output to standard output: {source}")]
    Write {
        format: &'static str,
        source: io::Error,
    },
}

/// A rendered report: what goes to standard output, and the lines for
/// standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub format: Format,
    pub stdout: String,
    pub stderr: Vec<String>,
}

impl Rendered {
    /// Writes `stdout` to `out`, and flushes it.
    pub fn write_to(&self, out: &mut impl Write) -> Result<(), RenderError> {
        out.write_all(self.stdout.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|source| RenderError::Write {
                format: self.format.name(),
                source,
            })
    }
}

/// The report as `format` (`paint` colours text only).
pub fn render(report: &impl Report, format: Format, paint: Paint) -> Result<Rendered, RenderError> {
    let (stdout, stderr) = match format {
        Format::Text => (report.text(paint), vec![]),
        Format::Json => (pretty(report, format)?, vec![]),
        Format::Sarif => (
            pretty(
                &sarif::render(report.all_findings(), report.errors()),
                format,
            )?,
            report
                .notes()
                .iter()
                .map(|n| format!("note: {n}"))
                .collect(),
        ),
    };
    Ok(Rendered {
        format,
        stdout,
        stderr,
    })
}

/// Pretty JSON and a final newline.
fn pretty(value: &impl Serialize, format: Format) -> Result<String, RenderError> {
    match serde_json::to_string_pretty(value) {
        Ok(json) => Ok(json + "\n"),
        Err(source) => Err(RenderError::Serialize {
            format: format.name(),
            source,
        }),
    }
}

/// Renders the report and writes it to standard output, then its standard
/// error lines. (A standard output the caller closed is no error: Rust's
/// runtime opens `/dev/null` in its place at start-up.)
pub fn print(report: &impl Report, format: Format, paint: Paint) -> Result<(), RenderError> {
    let rendered = render(report, format, paint)?;
    rendered.write_to(&mut io::stdout().lock())?;
    for line in &rendered.stderr {
        eprintln!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{ExitCode, ObjectRef, Severity, SourceLine};
    use crate::vocab::{Action, RuleId};

    fn report() -> CheckReport {
        CheckReport {
            findings: vec![Finding {
                object: ObjectRef {
                    api_version: "networking.k8s.io/v1".into(),
                    kind: "NetworkPolicy".into(),
                    namespace: "shop".into(),
                    name: "open".into(),
                    uid: None,
                },
                source: Some(SourceLine {
                    file: "a.yaml".into(),
                    line: 3,
                }),
                rule: RuleId::WorldCidr,
                action: Action::Deny,
                severity: Severity::High,
                message: "world-cidr: too wide".into(),
                detail: None,
            }],
            errors: vec![],
            notes: vec!["namespace shop is not among the inputs".into()],
            judged: 1,
            namespaces: vec![],
        }
    }

    #[test]
    fn every_format_from_one_report_and_notes_on_stderr_only_with_sarif() {
        let r = report();
        assert_eq!(r.exit_code(), ExitCode::Denied);
        let text = render(&r, Format::Text, Paint::NEVER).unwrap();
        assert_eq!(text.stdout, r.to_text());
        assert!(
            text.stdout.contains("note: namespace shop"),
            "{}",
            text.stdout
        );
        assert!(text.stderr.is_empty());

        let json = render(&r, Format::Json, Paint::ALWAYS).unwrap();
        assert_eq!(
            json.stdout,
            format!("{}\n", serde_json::to_string_pretty(&r).unwrap())
        );
        assert!(json.stderr.is_empty());
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["findings"][0]["action"], "deny");
        assert_eq!(v["notes"][0], "namespace shop is not among the inputs");

        let log = render(&r, Format::Sarif, Paint::NEVER).unwrap();
        let v: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
        assert_eq!(v["runs"][0]["results"][0]["ruleId"], "world-cidr");
        assert_eq!(v["runs"][0]["results"][0]["level"], "error");
        assert!(log.stdout.ends_with("}\n"));
        assert_eq!(log.stderr, ["note: namespace shop is not among the inputs"]);
    }

    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_an_error_that_names_the_format() {
        let rendered = render(&report(), Format::Sarif, Paint::NEVER).unwrap();
        let e = rendered.write_to(&mut Full).unwrap_err();
        assert!(matches!(
            e,
            RenderError::Write {
                format: "SARIF",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "cannot write the SARIF output to standard output: No space left on device (os error 28)"
        );
        let mut ok = Vec::new();
        rendered.write_to(&mut ok).unwrap();
        assert_eq!(ok, rendered.stdout.as_bytes());
    }
}
