//! The report: one result per check, a summary per group and overall, as text and JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// How binding the sentence a check enforces is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    /// MUST / MUST NOT / SHALL (NOT).
    #[serde(rename = "MUST")]
    Must,
    /// SHOULD / SHOULD NOT.
    #[serde(rename = "SHOULD")]
    Should,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server did what the sentence asks.
    Pass,
    /// It did not (a MUST, or a SHOULD under `--strict`).
    Fail,
    /// A SHOULD it did not do, without `--strict`: reported, not counted as a failure.
    Warn,
    /// Not applicable: extension not advertised, or the bytes could not be read back.
    Skip,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
        })
    }
}

/// One request sent and what came back.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Request line and headers as sent.
    pub request: String,
    /// Body bytes written (as sent, before any cut).
    pub body_bytes: u64,
    /// Status line and headers as received; `None` if there was no response.
    pub response: Option<String>,
    /// Response body length.
    pub response_body_bytes: u64,
    /// Transport error, if any (timeout, reset, closed).
    pub error: Option<String>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable identifier, e.g. `core-patch-409`.
    pub id: String,
    /// Group (an extension name, `core`, `cors`, `get` or `robustness`).
    pub group: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// Where the sentence comes from (`tus 1.0.0 §...`, `RFC 9110 §...`).
    pub source: String,
    /// The sentence, quoted.
    pub quote: String,
    /// Result.
    pub status: Status,
    /// Why it failed or was skipped; what was observed when it passed.
    pub reason: String,
    /// Requests made.
    pub exchanges: Vec<Exchange>,
    /// Wall time.
    pub duration_ms: u64,
}

/// Counts for a group or the whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Passed checks.
    pub passed: usize,
    /// Failed checks (counted in the exit status).
    pub failed: usize,
    /// Skipped checks.
    pub skipped: usize,
    /// SHOULD failures reported as warnings (not counted without `--strict`).
    pub warnings: usize,
}

impl Counts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => self.skipped += 1,
            Status::Warn => self.warnings += 1,
        }
    }
}

/// A group's counts.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Group name.
    pub group: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// What the server said about itself in its `OPTIONS` response.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerInfo {
    /// `OPTIONS` status.
    pub options_status: u16,
    /// `Tus-Version`, split.
    pub versions: Vec<String>,
    /// `Tus-Extension`, split.
    pub extensions: Vec<String>,
    /// `Tus-Max-Size`, if a valid number.
    pub max_size: Option<u64>,
    /// `Tus-Checksum-Algorithm`, split.
    pub checksum_algorithms: Vec<String>,
    /// `Upload-Limit` (IETF draft runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `tus 1.0.0`, or `draft-ietf-httpbis-resumable-upload interop N`.
    pub protocol: String,
    /// The collection URL checked.
    pub target: String,
    /// Whether SHOULD failures count as failures.
    pub strict: bool,
    /// Discovered server capabilities.
    pub server: ServerInfo,
    /// Every check, in run order.
    pub checks: Vec<CheckResult>,
    /// Per group, in first-seen order.
    pub groups: Vec<GroupSummary>,
    /// Overall.
    pub summary: Counts,
}

impl Report {
    /// Builds the summaries from `checks`.
    pub fn new(
        protocol: String,
        target: String,
        strict: bool,
        server: ServerInfo,
        checks: Vec<CheckResult>,
    ) -> Report {
        let mut groups: Vec<GroupSummary> = Vec::new();
        let mut summary = Counts::default();
        for check in &checks {
            summary.add(check.status);
            match groups.iter_mut().find(|g| g.group == check.group) {
                Some(group) => group.counts.add(check.status),
                None => {
                    let mut counts = Counts::default();
                    counts.add(check.status);
                    groups.push(GroupSummary {
                        group: check.group.clone(),
                        counts,
                    });
                }
            }
        }
        Report {
            protocol,
            target,
            strict,
            server,
            checks,
            groups,
            summary,
        }
    }

    /// The full report as pretty-printed JSON.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Whether the run passed (no failures; warnings and skips allowed).
    pub fn passed(&self) -> bool {
        self.summary.failed == 0
    }

    /// The check with `id`, if it ran.
    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The summary line: `N passed, M failed, K skipped` (and warnings, if any).
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!(
            "{} passed, {} failed, {} skipped",
            s.passed, s.failed, s.skipped
        );
        if s.warnings > 0 {
            let _ = write!(line, " ({} warnings: SHOULD not met)", s.warnings);
        }
        line
    }

    /// Text output: one line per check (failures and warnings with what was sent and received),
    /// a summary per group, last the summary line.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let s = &self.server;
        let _ = writeln!(out, "{} conformance of {}", self.protocol, self.target);
        if !self.protocol.starts_with("tus") {
            let _ = writeln!(
                out,
                "server: OPTIONS {}; Upload-Limit: {}",
                s.options_status,
                s.upload_limit.as_deref().unwrap_or("-")
            );
        } else {
            let _ = writeln!(
                out,
                "server: OPTIONS {}; Tus-Version: {}; Tus-Extension: {}; Tus-Max-Size: {}; Tus-Checksum-Algorithm: {}",
                s.options_status,
                s.versions.join(","),
                s.extensions.join(","),
                s.max_size.map_or("-".to_owned(), |m| m.to_string()),
                s.checksum_algorithms.join(",")
            );
        }
        let mut group = "";
        for check in &self.checks {
            if check.group != group {
                group = &check.group;
                let _ = writeln!(out, "\n[{group}]");
            }
            let _ = writeln!(
                out,
                "{:<4} {:<6} {:<40} {}",
                check.status, check.level, check.id, check.reason
            );
            if verbose || matches!(check.status, Status::Fail | Status::Warn) {
                let _ = writeln!(out, "       spec ({}): \"{}\"", check.source, check.quote);
                for exchange in &check.exchanges {
                    let request = exchange.request.trim_end().replace("\r\n", "\n       > ");
                    let _ = writeln!(
                        out,
                        "       > {request}\n       > [{} body bytes]",
                        exchange.body_bytes
                    );
                    if let Some(response) = &exchange.response {
                        let response = response.trim_end().replace("\r\n", "\n       < ");
                        let _ = writeln!(
                            out,
                            "       < {response}\n       < [{} body bytes]",
                            exchange.response_body_bytes
                        );
                    }
                    if let Some(error) = &exchange.error {
                        let _ = writeln!(out, "       ! {error}");
                    }
                }
            }
        }
        let _ = writeln!(out, "\ngroups:");
        for g in &self.groups {
            let c = &g.counts;
            let _ = writeln!(
                out,
                "  {:<26} {} passed, {} failed, {} skipped, {} warnings",
                g.group, c.passed, c.failed, c.skipped, c.warnings
            );
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }
}
