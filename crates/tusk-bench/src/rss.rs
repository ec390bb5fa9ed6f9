//! Memory of another process, from /proc/PID/status.

use anyhow::{Context, Result, bail};

/// A field of /proc/PID/status given in kB (such as `VmRSS` or `VmHWM`), in bytes.
pub fn status_field(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_field(&text, field).with_context(|| format!("{field} in {path}"))
}

fn parse_field(status: &str, field: &str) -> Result<u64> {
    for line in status.lines() {
        let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let value: u64 = words.next().context("no value")?.parse()?;
        return match words.next() {
            Some("kB") => Ok(value * 1024),
            other => bail!("unexpected unit {other:?}"),
        };
    }
    bail!("field not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kb_fields() {
        let status = "Name:\ttusk\nVmHWM:\t   10240 kB\nVmRSS:\t    5120 kB\n";
        assert_eq!(parse_field(status, "VmRSS").unwrap(), 5120 * 1024);
        assert_eq!(parse_field(status, "VmHWM").unwrap(), 10240 * 1024);
        assert!(parse_field(status, "VmSwap").is_err());
    }

    #[test]
    fn reads_this_process() {
        assert!(status_field(std::process::id(), "VmRSS").unwrap() > 0);
    }
}
