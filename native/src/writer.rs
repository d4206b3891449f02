//! The backfill's reward lines, formatted and written to the output file by a thread of their own.
//!
//! The engine's thread hands over its rewards as compact records (`records`); this thread formats them as JSON
//! lines (floats, ISO times, escapes: a large share of the engine thread's work if done there) and writes them.
//!
//! Copying a chunk's lines into the kernel's page cache (`copy_folio_from_iter_atomic` and the zeroing of fresh
//! page-cache pages) is a large share of a backfill's time. On its own thread that copy overlaps the engine's
//! work on the next chunk. One buffer is written while one waits and one is
//! filled; written buffers come back for reuse. There are never more than three: a new multi-megabyte buffer
//! per chunk would be fresh pages for the kernel to zero every time.
//!
//! The thread writes to a duplicate of the caller's descriptor: whatever the caller does with its own (closes it
//! after an error, say), the lines already handed over go to the file they were meant for, in order.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

const BUFFERS: usize = 3;

/// Turns a handed-over buffer into the bytes to write (the backfill's: reward records to JSON lines).
pub type Format = Box<dyn FnMut(&[u8], &mut Vec<u8>) + Send>;

pub struct Writer {
    pub fd: i32, // the caller's descriptor this writer was made for
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    made: usize, // buffers made so far (at most BUFFERS)
    kept: Option<Vec<u8>>, // a buffer handed back empty: never sent, so the thread will not return it
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Writer {
    /// `format`: what the thread writes for each buffer (None: the buffer itself).
    pub fn new(fd: i32, mut format: Option<Format>) -> io::Result<Writer> {
        // SAFETY: the caller owns `fd` and keeps it open for this call; only a duplicate is kept.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let own = borrowed.try_clone_to_owned()?;
        // SAFETY: `own` is a descriptor this writer alone owns from here on.
        let mut file = unsafe { File::from_raw_fd(own.into_raw_fd()) };
        let (full, lines) = sync_channel::<Vec<u8>>(1);
        let (done, empty) = sync_channel::<Vec<u8>>(BUFFERS);
        let thread = std::thread::Builder::new().name("backfill-writer".into()).spawn(move || {
            let mut text = Vec::new();
            for buf in lines {
                match format.as_mut() {
                    Some(f) => {
                        text.clear();
                        f(&buf, &mut text);
                        file.write_all(&text)?;
                    }
                    None => file.write_all(&buf)?,
                }
                // back for reuse; a buffer beyond the three (the caller may hand over its own) is dropped: never
                // block here, the caller may be waiting for this thread to end
                let _ = done.try_send(buf);
            }
            Ok(())
        })?;
        Ok(Writer { fd, full: Some(full), empty, made: 0, kept: None, thread: Some(thread) })
    }

    /// An empty buffer to fill: one the thread has written if one is back, a new one while there are fewer
    /// than three, else the next the thread gives back (if the thread has stopped, a new one: its error is
    /// reported by the next `write`).
    pub fn spare(&mut self) -> Vec<u8> {
        if let Some(buf) = self.kept.take() {
            return buf;
        }
        let buf = match self.empty.try_recv() {
            Ok(buf) => Some(buf),
            Err(_) if self.made < BUFFERS => None,
            Err(_) => self.empty.recv().ok(),
        };
        let mut buf = buf.unwrap_or_else(|| {
            self.made += 1;
            Vec::new()
        });
        buf.clear();
        buf
    }

    /// Hand a buffer over; blocks while one is being written and another already waits. An error of an
    /// earlier write is returned here (the thread has stopped).
    pub fn write(&mut self, buf: Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            // kept for the next `spare`: dropped, it would be one of the three lost, and once all three were
            // (three chunks with no rewards: touchpoints whose windows are all open) `spare` waited forever
            self.kept = Some(buf);
            return Ok(());
        }
        let sent = self.full.as_ref().map(|tx| tx.send(buf).is_ok()).unwrap_or(false);
        if sent { Ok(()) } else { self.finish().and(Err(io::Error::other("the output writer has stopped"))) }
    }

    /// Until every buffer handed over is written; the first write error, if there was one.
    pub fn finish(&mut self) -> io::Result<()> {
        self.full = None; // the thread ends once it has written what is queued
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("the output writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn writes_every_buffer_in_order_and_survives_the_callers_close() {
        let path = std::env::temp_dir().join(format!("rs-writer-{}", std::process::id()));
        let caller = File::create(&path).unwrap();
        let mut w = Writer::new(caller.as_raw_fd(), None).unwrap();
        drop(caller); // the caller closes its descriptor: the writer's duplicate still writes
        let mut expected = Vec::new();
        for i in 0..200 {
            let mut buf = w.spare();
            buf.extend_from_slice(format!("line {i}\n").repeat(1000).as_bytes());
            expected.extend_from_slice(&buf);
            w.write(buf).unwrap();
        }
        w.write(b"the last, in a buffer of the caller's\n".to_vec()).unwrap();
        expected.extend_from_slice(b"the last, in a buffer of the caller's\n");
        w.finish().unwrap();
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn buffers_handed_back_empty_are_reused_not_lost() {
        // three empty hand-backs lost all three buffers, and the next `spare` waited forever: run it on a thread
        // so that a regression fails here instead of hanging the suite
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let path = std::env::temp_dir().join(format!("rs-writer-empty-{}", std::process::id()));
            let file = File::create(&path).unwrap();
            let mut w = Writer::new(file.as_raw_fd(), None).unwrap();
            for i in 0..10 {
                let mut buf = w.spare();
                if i % 3 == 2 {
                    buf.extend_from_slice(b"x\n");
                }
                w.write(buf).unwrap();
            }
            w.finish().unwrap();
            let written = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let _ = done.send(written);
        });
        let written = finished.recv_timeout(std::time::Duration::from_secs(20)).expect("spare waited forever");
        assert_eq!(written, b"x\nx\nx\n");
    }

    #[test]
    fn a_failed_write_is_reported() {
        // a pipe whose reading end is closed: writes fail with EPIPE (Rust ignores SIGPIPE)
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut w = Writer::new(writer.as_raw_fd(), None).unwrap();
        drop(writer);
        let mut failed = false;
        for _ in 0..4 {
            if w.write(b"x\n".repeat(100).to_vec()).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || w.finish().is_err());
    }
}
