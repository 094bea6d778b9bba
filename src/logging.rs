//! The process's buffered standard error (see `BufferedStderr`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Standard error for `serve`'s logs, written in batches by a background
/// thread: a request logs its decision by appending the line to a buffer
/// (no write(2), and no wait on a pipe or disk that is slow to drain). The
/// thread wakes when the first line arrives, lets lines gather for
/// `LOG_LINGER` and writes them in one call, so the log is at most a few
/// milliseconds behind. Lines are never reordered or split.
///
/// - WARN and ERROR lines are written at once, after what is buffered, so
///   a problem shows without delay and in order with what the process
///   prints itself (a start-up error, say).
/// - At exit (return from `main`, `std::process::exit`) what is buffered is
///   written before the process ends (an `atexit` handler).
/// - Lossy only under overload: while `LOG_BUFFER_MAX` bytes are waiting
///   (standard error has not been drained for a while), new lines are
///   dropped instead of blocking requests, counted, and the count is logged
///   at WARN (`log lines dropped`) as soon as there is room again.
#[derive(Clone, Copy)]
pub struct BufferedStderr {
    /// `None` when the writing thread could not be started: then each line
    /// is written directly, as `std::io::stderr` would.
    shared: Option<&'static LogBuffer>,
    /// Write at once (WARN and ERROR).
    urgent: bool,
}

/// How long the writing thread lets lines gather before one write.
const LOG_LINGER: Duration = Duration::from_millis(2);
/// Bytes waiting to be written beyond which new lines are dropped.
const LOG_BUFFER_MAX: usize = 4 << 20;

/// What the logging threads and the writing thread share.
struct LogBuffer {
    pending: std::sync::Mutex<PendingLines>,
    /// Signalled when the first line arrives while the writer sleeps.
    wake: std::sync::Condvar,
    /// Held while writing to standard error, so the exit flush waits for a
    /// batch being written and keeps the order.
    writing: std::sync::Mutex<()>,
    /// Lines dropped since the last report.
    dropped: AtomicU64,
}

#[derive(Default)]
struct PendingLines {
    bytes: Vec<u8>,
    /// The writing thread is waiting for a line (the next writer wakes it).
    idle: bool,
}

static LOG_BUFFER: std::sync::OnceLock<Option<&'static LogBuffer>> = std::sync::OnceLock::new();

pub(crate) fn lock_ignoring_poison<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BufferedStderr {
    /// The process's buffered standard error; the first call starts the
    /// writing thread and registers the exit flush.
    pub fn get() -> Self {
        let shared = *LOG_BUFFER.get_or_init(|| {
            let buffer: &'static LogBuffer = Box::leak(Box::new(LogBuffer {
                pending: std::sync::Mutex::new(PendingLines::default()),
                wake: std::sync::Condvar::new(),
                writing: std::sync::Mutex::new(()),
                dropped: AtomicU64::new(0),
            }));
            let started = std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || buffer.run())
                .is_ok();
            if !started {
                return None;
            }
            // SAFETY: `atexit` only stores the pointer; the handler is an
            // `extern "C" fn()` as it expects, and cannot unwind into C (it
            // ignores lock poisoning and write errors).
            let _ = unsafe { atexit(flush_logs_at_exit) };
            Some(buffer)
        });
        Self {
            shared,
            urgent: false,
        }
    }
}

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn flush_logs_at_exit() {
    if let Some(Some(buffer)) = LOG_BUFFER.get() {
        buffer.write_pending(&mut Vec::new(), &[]);
    }
}

impl LogBuffer {
    /// Appends one formatted line (tracing writes each event whole).
    fn push(&self, line: &[u8]) {
        let mut pending = lock_ignoring_poison(&self.pending);
        if pending.bytes.len() + line.len() > LOG_BUFFER_MAX {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writing thread.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut pending = lock_ignoring_poison(&self.pending);
                while pending.bytes.is_empty() {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            std::thread::sleep(LOG_LINGER);
            self.write_pending(&mut batch, &[]);
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "log lines dropped: standard error was not drained fast enough and {} bytes were waiting",
                    LOG_BUFFER_MAX
                );
            }
        }
    }

    /// Takes what is buffered and writes it, then `line`, `batch` being the
    /// spare buffer (kept between calls, so its capacity is reused).
    fn write_pending(&self, batch: &mut Vec<u8>, line: &[u8]) {
        use std::io::Write as _;
        let _writing = lock_ignoring_poison(&self.writing);
        std::mem::swap(&mut lock_ignoring_poison(&self.pending).bytes, batch);
        batch.extend_from_slice(line);
        if !batch.is_empty() {
            // As tracing's own writer: a failed write loses the lines.
            let _ = std::io::stderr().lock().write_all(batch);
        }
        batch.clear();
        if batch.capacity() > LOG_BUFFER_MAX / 16 {
            *batch = Vec::new();
        }
    }
}

impl std::io::Write for BufferedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.shared {
            Some(buffer) if self.urgent => {
                buffer.write_pending(&mut Vec::new(), buf);
                Ok(buf.len())
            }
            Some(buffer) => {
                buffer.push(buf);
                Ok(buf.len())
            }
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedStderr {
    type Writer = BufferedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Self {
            urgent: *meta.level() <= tracing::Level::WARN,
            ..*self
        }
    }
}
