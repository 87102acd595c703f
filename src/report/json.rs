//! The JSON report file (`report-file`).

use anyhow::Context as _;

use super::{Report, Sink};

pub struct JsonFile {
    pub path: String,
}

impl Sink for JsonFile {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn emit(&mut self, report: &Report) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(&self.path, text + "\n").with_context(|| format!("writing {}", self.path))
    }
}
