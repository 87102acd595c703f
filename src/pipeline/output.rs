//! Each workload's lines of a group run, prefixed with its name and written
//! whole, so concurrent rollouts never interleave within a line.

use std::io::Write;
use std::sync::Mutex;

use crate::workload::WorkloadRef;

/// A line-buffered writer that prefixes each line with its workload, so
/// concurrent rollouts never interleave within a line.
pub(crate) struct Prefixed<'a> {
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
    prefix: String,
    buf: Vec<u8>,
}

impl Write for Prefixed<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            sink.write_all(self.prefix.as_bytes())?;
            sink.write_all(&line)?;
            sink.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The writer of one workload's lines (prefixed by the workload in a group).
pub(crate) fn prefixed<'a>(
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
    single: bool,
    w: &WorkloadRef,
) -> Prefixed<'a> {
    Prefixed {
        sink,
        prefix: if single {
            String::new()
        } else {
            format!("[{w}] ")
        },
        buf: Vec::new(),
    }
}
