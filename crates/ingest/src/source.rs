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
        Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::bufread::MultiGzDecoder::new(buffered),
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
