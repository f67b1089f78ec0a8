//! Opening an input file: plain or gzip (detected by its magic bytes), with a byte counter.

use crate::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts bytes read from the file on disk (compressed bytes for gzip), for progress bars.
pub struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input: a buffered, decompressed byte stream plus its progress counter.
pub struct Source {
    pub reader: Box<dyn BufRead + Send>,
    pub bytes_read: Arc<AtomicU64>,
    pub total_bytes: u64,
    pub name: String,
}

/// Reads `inner` on a separate thread in blocks, a few blocks ahead of the consumer.
pub struct Prefetch {
    blocks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
}

impl Prefetch {
    pub fn spawn<R: Read + Send + 'static>(mut inner: R, name: String) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let failed = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || loop {
                let mut block = vec![0u8; 1 << 20];
                let mut filled = 0;
                while filled < block.len() {
                    match inner.read(&mut block[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                block.truncate(filled);
                let done = filled == 0;
                if tx.send(Ok(block)).is_err() || done {
                    return;
                }
            });
        if let Err(e) = spawned {
            let message = format!("{name}: cannot start the read-ahead thread: {e}");
            let _ = failed.try_send(Err(std::io::Error::other(message)));
        }
        Prefetch {
            blocks: rx,
            current: Vec::new(),
            offset: 0,
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset == self.current.len() {
            match self.blocks.recv() {
                Ok(Ok(block)) => {
                    self.current = block;
                    self.offset = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

pub fn open(path: &Path) -> Result<Source> {
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let total_bytes = file.metadata().map_err(io)?.len();
    let bytes_read = Arc::new(AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        1 << 18,
        Counting {
            inner: file,
            read: Arc::clone(&bytes_read),
        },
    );
    let is_gzip = buffered.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead + Send> = if is_gzip {
        // Decompression runs on its own thread, ahead of the parser.
        let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
        Box::new(BufReader::with_capacity(
            1 << 16,
            Prefetch::spawn(decoder, name.clone()),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Source {
        reader,
        bytes_read,
        total_bytes,
        name,
    })
}
