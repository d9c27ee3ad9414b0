//! An async byte stream read as a blocking [`Read`]: a task on the fetch runtime pushes chunks
//! through a bounded channel, so at most a few chunks are in memory whatever the object's size.

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use std::io::Read;
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks in flight between the download task and the reader (each at most a socket read).
pub const CHUNKS: usize = 8;

/// The blocking end. Dropping it stops the download (the task is aborted and the connection
/// closed), so a refused artifact is not read to its end.
pub struct ChunkReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    task: tokio::task::AbortHandle,
}

impl ChunkReader {
    /// Read `stream` on `rt`; each chunk must arrive within `idle` (a stalled transfer fails
    /// with `TimedOut` instead of hanging the controller). `describe` turns a stream error
    /// into the message the reader sees.
    pub fn spawn<S, E>(
        rt: &tokio::runtime::Handle,
        mut stream: S,
        idle: Duration,
        describe: fn(E) -> String,
    ) -> ChunkReader
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHUNKS);
        let task = rt.spawn(async move {
            loop {
                let item = match tokio::time::timeout(idle, stream.next()).await {
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no data for {} (the transfer stalled)",
                            humantime::format_duration(idle)
                        ),
                    )),
                    Ok(None) => return,
                    Ok(Some(Ok(b))) => Ok(b),
                    Ok(Some(Err(e))) => Err(std::io::Error::other(describe(e))),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        ChunkReader {
            rx,
            current: Bytes::new(),
            task: task.abort_handle(),
        }
    }
}

impl Read for ChunkReader {
    /// Blocks the calling thread: call it from a plain thread (the controller's, the CLI's),
    /// never from inside an async task.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn chunks_come_out_in_order_and_errors_end_the_stream() {
        let rt = runtime();
        let parts: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"world")),
        ];
        let mut r = ChunkReader::spawn(
            rt.handle(),
            futures_util::stream::iter(parts),
            Duration::from_secs(5),
            |e| e,
        );
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");

        let parts: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err("connection reset".into()),
        ];
        let mut r = ChunkReader::spawn(
            rt.handle(),
            futures_util::stream::iter(parts),
            Duration::from_secs(5),
            |e| e,
        );
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"abc");
        assert_eq!(e.to_string(), "connection reset");
    }

    #[test]
    fn a_stalled_stream_times_out() {
        let rt = runtime();
        let stalled = futures_util::stream::pending::<Result<Bytes, String>>();
        let mut r = ChunkReader::spawn(rt.handle(), stalled, Duration::from_millis(50), |e| e);
        let e = r.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("stalled"), "{e}");
    }

    #[test]
    fn the_producer_waits_for_the_reader() {
        // An endless source: only CHUNKS chunks are ever buffered; dropping the reader ends it.
        let rt = runtime();
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = produced.clone();
        let endless = futures_util::stream::repeat_with(move || {
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(Bytes::from(vec![7u8; 1024]))
        });
        let mut r = ChunkReader::spawn(rt.handle(), endless, Duration::from_secs(5), |e| e);
        let mut b = [0u8; 10];
        r.read_exact(&mut b).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let n = produced.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n <= CHUNKS + 2, "{n} chunks produced for one read");
        drop(r);
    }
}
