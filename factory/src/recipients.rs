//! Recipient lists: the PEM certificates of every active device whose certificate is still
//! valid, optionally of one group, in stable order (by device serial). The file feeds
//! `signer encrypt --to` / `rauc encrypt --to`. It is streamed from the inventory into a
//! temporary file and renamed into place, so memory stays flat for any fleet size.

use std::io::{BufWriter, ErrorKind, Write};
use std::path::Path;

use bundle::atomic::{AtomicFile, Existing};

use crate::error::{FactoryError, Result};
use crate::inventory::Inventory;
use crate::types::UnixTime;

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientList {
    /// Number of certificates.
    pub count: u64,
}

/// Certificates per batch handed from the reading thread to the writing thread.
const BATCH: usize = 1024;

/// Writes the recipient list to `dest`; `now` decides which certificates have expired.
///
/// The inventory is read on the calling thread while a second thread encodes and writes, in
/// bounded batches: memory stays flat and the two halves overlap on two cores.
pub fn write_recipients(
    inventory: &Inventory,
    group: Option<&str>,
    now: UnixTime,
    dest: &Path,
) -> Result<RecipientList> {
    let file = AtomicFile::create(dest, Existing::Replace)?;
    let write_error = |e| FactoryError::io("failed to write", dest, e);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(8);
    let (read, written) = std::thread::scope(|s| {
        let mut out = BufWriter::with_capacity(1 << 20, file.file());
        let writer = s.spawn(move || -> Result<()> {
            let mut pem = Vec::with_capacity(4096);
            for batch in rx {
                for der in batch {
                    encode_pem_certificate(&der, &mut pem);
                    out.write_all(&pem).map_err(write_error)?;
                }
            }
            out.flush().map_err(write_error)
        });
        let mut batch = Vec::with_capacity(BATCH);
        let read = inventory.for_each_recipient(group, now, |der| {
            batch.push(der.to_vec());
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // A send fails only if the writer stopped; its error is reported below.
                tx.send(full).map_err(|_| {
                    FactoryError::io("failed to write", dest, ErrorKind::BrokenPipe.into())
                })?;
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        (
            read,
            writer.join().expect("the recipient writer thread panicked"),
        )
    });
    written?;
    let count = read?;
    file.commit()?;
    tracing::info!(count, ?group, dest = %dest.display(), "wrote recipient list");
    Ok(RecipientList { count })
}

const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
const END: &[u8] = b"-----END CERTIFICATE-----\n";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes one DER certificate as PEM into `out` (cleared first): base64 with 64-character
/// lines, without intermediate allocations.
pub fn encode_pem_certificate(der: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(BEGIN);
    let mut col = 0;
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let quad = [
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            if chunk.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            },
        ];
        out.extend_from_slice(&quad);
        col += 4;
        if col == 64 {
            out.push(b'\n');
            col = 0;
        }
    }
    if col != 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(END);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_generic_pem_writer() {
        let mut out = Vec::new();
        for len in [0usize, 1, 2, 3, 47, 48, 49, 95, 96, 97, 500] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            encode_pem_certificate(&der, &mut out);
            assert_eq!(
                out,
                crate::cert::to_pem("CERTIFICATE", &der).into_bytes(),
                "len {len}"
            );
        }
    }
}
