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
/// - WARN and ERROR lines wake the thread at once (no linger), so a problem
///   shows without delay, in order with the lines before it. They are never
///   written by the thread that logs them: a runtime worker logging a
///   warning about a client's junk must not wait for a slow standard error
///   (it did, flushing up to `LOG_BUFFER_MAX` under a lock).
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
    /// A WARN or ERROR line is waiting: write without lingering.
    urgent: bool,
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
        buffer.write_pending(&mut Vec::new());
    }
}

impl LogBuffer {
    /// Appends one formatted line (tracing writes each event whole); an
    /// `urgent` one is written without lingering.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut pending = lock_ignoring_poison(&self.pending);
        if pending.bytes.len() + line.len() > LOG_BUFFER_MAX {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes.extend_from_slice(line);
        pending.urgent |= urgent;
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writing thread, writing to standard error.
    fn run(&self) {
        self.run_into(&mut std::io::stderr());
    }

    /// The writing loop, into `out`.
    fn run_into(&self, out: &mut impl std::io::Write) {
        let mut batch = Vec::new();
        loop {
            let urgent = {
                let mut pending = lock_ignoring_poison(&self.pending);
                while pending.bytes.is_empty() {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                std::mem::take(&mut pending.urgent)
            };
            if !urgent {
                std::thread::sleep(LOG_LINGER);
            }
            self.write_pending_into(out, &mut batch);
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

    /// Takes what is buffered and writes it to standard error (the exit
    /// flush).
    fn write_pending(&self, batch: &mut Vec<u8>) {
        self.write_pending_into(&mut std::io::stderr(), batch);
    }

    /// Takes what is buffered and writes it to `out`, `batch` being the
    /// spare buffer (kept between calls, so its capacity is reused).
    fn write_pending_into(&self, out: &mut impl std::io::Write, batch: &mut Vec<u8>) {
        let _writing = lock_ignoring_poison(&self.writing);
        {
            let mut pending = lock_ignoring_poison(&self.pending);
            std::mem::swap(&mut pending.bytes, batch);
            pending.urgent = false;
        }
        if !batch.is_empty() {
            // As tracing's own writer: a failed write loses the lines.
            let _ = out.write_all(batch);
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
            Some(buffer) => {
                buffer.push(buf, self.urgent);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A standard error that blocks every write until released, as a pipe
    /// nobody drains.
    struct Stuck {
        release: mpsc::Receiver<()>,
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.release.recv();
            lock_ignoring_poison(&self.written).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn buffer() -> &'static LogBuffer {
        Box::leak(Box::new(LogBuffer {
            pending: std::sync::Mutex::new(PendingLines::default()),
            wake: std::sync::Condvar::new(),
            writing: std::sync::Mutex::new(()),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Issue 14: a WARN line used to be written by the thread that logged
    /// it, under the lock the writer holds; with standard error stuck, a
    /// runtime worker logging a warning waited with it. Now the logging
    /// thread only appends, whatever the writer is doing.
    #[test]
    fn warnings_never_wait_for_a_stuck_standard_error() {
        let buffer = buffer();
        let (release, gate) = mpsc::channel();
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = Stuck {
            release: gate,
            written: written.clone(),
        };
        std::thread::spawn(move || buffer.run_into(&mut out));
        let logger = BufferedStderr {
            shared: Some(buffer),
            urgent: true,
        };
        // The first line is taken by the writer, which then blocks in write.
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut l = logger;
            for i in 0..100 {
                let _ = l.write_all(format!("WARN line {i}\n").as_bytes());
            }
            let _ = done_tx.send(());
        });
        // Generous: a hang detector, not a timing assertion.
        assert!(
            done.recv_timeout(Duration::from_secs(10)).is_ok(),
            "logging a warning waited for standard error"
        );
        // Once standard error drains, every line arrives, in order.
        for _ in 0..200 {
            let _ = release.send(());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text =
                String::from_utf8(lock_ignoring_poison(&written).clone()).unwrap_or_default();
            if text.lines().count() == 100 {
                let expected: Vec<String> = (0..100).map(|i| format!("WARN line {i}")).collect();
                assert_eq!(text.lines().collect::<Vec<_>>(), expected);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lines lost: {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
