//! Content-addressed blobs: a blob enters the store only under the digest of its bytes.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Store};

/// `sha256:<hex>` of a byte stream, and its length.
pub fn digest_of(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((format!("sha256:{:x}", hasher.finalize()), total))
}

impl Store {
    /// Moves `file` (on the store's filesystem) into the blob store, checking its digest
    /// against `expected` when given; returns the digest and size.
    pub(crate) fn put_file(
        &self,
        file: &Path,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(String, u64), Error> {
        if let Some(expected) = expected {
            let target = self.blob_path(expected);
            if let Ok(meta) = std::fs::metadata(&target) {
                // Already stored, and verified when it was.
                return Ok((expected.to_owned(), meta.len()));
            }
        }
        let opened = std::fs::File::open(file).map_err(Error::io(file))?;
        let (digest, size) = digest_of(std::io::BufReader::new(opened)).map_err(Error::io(file))?;
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(Error::Digest {
                what: what.to_owned(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let target = self.blob_path(&digest);
        if !target.exists() {
            std::fs::rename(file, &target).map_err(Error::io(&target))?;
        }
        Ok((digest, size))
    }

    /// Stores bytes as a blob; returns the digest.
    pub(crate) fn put_bytes(&self, bytes: &[u8]) -> Result<String, Error> {
        let (digest, _) = digest_of(bytes).expect("reading memory cannot fail");
        let target = self.blob_path(&digest);
        if !target.exists() {
            let mut tmp = tempfile::NamedTempFile::new_in(self.tmp_dir()).map_err(Error::io(&target))?;
            tmp.write_all(bytes).map_err(Error::io(&target))?;
            tmp.persist(&target).map_err(|e| Error::io(&target)(e.error))?;
        }
        Ok(digest)
    }
}
