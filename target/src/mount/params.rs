//! Mount parameters and the pure plan of the stack.

use std::fs::File;
use std::path::{Path, PathBuf};

use bundle::manifest::BundleFormat;
use bundle::state::VerifiedBundle;

use super::MountError;
use crate::dm::table::{self, VERITY_BLOCK_SIZE};
use crate::dm::{CryptKey, VerityParams};

/// How the payload is protected below the squashfs.
#[derive(Debug, Clone)]
enum Protection {
    /// plain: the squashfs is the payload, authenticated once by the detached signature.
    Plain,
    /// verity (and crypt): dm-verity over the payload, dm-crypt on top for crypt bundles.
    Verity {
        verity: VerityParams,
        crypt_key: Option<CryptKey>,
    },
}

/// Everything needed to mount a bundle payload: the file, the payload size and the dm-verity
/// (and dm-crypt) parameters.
///
/// The only ordinary way to get one is [`BundleMountParams::from_verified`], from a bundle whose
/// signature verified: only a [`VerifiedBundle`] can be mounted.
/// [`BundleMountParams::dangerous_from_unverified_parts`] exists for device-mapper tests that
/// must set up deliberately wrong parameters.
#[derive(Debug, Clone)]
pub struct BundleMountParams {
    bundle: PathBuf,
    payload_size: u64,
    protection: Protection,
}

impl BundleMountParams {
    /// The parameters of a verified bundle: its file, payload size, the verity parameters and
    /// the crypt key of its signed manifest (plain bundles: loop and squashfs only).
    pub fn from_verified(bundle: &VerifiedBundle<File>) -> Result<BundleMountParams, MountError> {
        let (path, layout) = bundle.source();
        let path = path.ok_or_else(|| {
            MountError::InvalidParams("the verified bundle is not backed by a file".into())
        })?;
        let protection = match bundle.format() {
            BundleFormat::Plain => Protection::Plain,
            BundleFormat::Verity | BundleFormat::Crypt => {
                let v = bundle.verity().ok_or_else(|| {
                    MountError::InvalidParams("verified bundle without verity parameters".into())
                })?;
                Protection::Verity {
                    verity: VerityParams {
                        data_size: bundle.data_size(),
                        root_hash: v.root_hash,
                        salt: v.salt.to_vec(),
                    },
                    crypt_key: bundle
                        .crypt_key()
                        .map(|k| CryptKey::from_bytes(*k.as_bytes())),
                }
            }
        };
        Ok(BundleMountParams {
            bundle: path.to_path_buf(),
            payload_size: layout.payload_size,
            protection,
        })
    }

    /// **Dangerous**: parameters that no signature vouches for. Only for tests of the mount
    /// stack itself (wrong keys, wrong root hashes, corrupted payloads); never for installing.
    pub fn dangerous_from_unverified_parts(
        bundle: &Path,
        payload_size: u64,
        verity: VerityParams,
        crypt_key: Option<CryptKey>,
    ) -> BundleMountParams {
        BundleMountParams {
            bundle: bundle.to_path_buf(),
            payload_size,
            protection: Protection::Verity { verity, crypt_key },
        }
    }

    /// The bundle file.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// Payload size P (the bytes before the CMS; the loop size limit).
    pub fn payload_size(&self) -> u64 {
        self.payload_size
    }

    /// The dm-verity parameters (`None` for plain bundles).
    pub fn verity(&self) -> Option<&VerityParams> {
        match &self.protection {
            Protection::Plain => None,
            Protection::Verity { verity, .. } => Some(verity),
        }
    }

    /// Mutable access for dm tests that corrupt parameters on purpose (see
    /// [`Self::dangerous_from_unverified_parts`]).
    pub fn dangerous_verity_mut(&mut self) -> Option<&mut VerityParams> {
        match &mut self.protection {
            Protection::Plain => None,
            Protection::Verity { verity, .. } => Some(verity),
        }
    }

    /// Replaces the crypt key (dm tests only, see [`Self::dangerous_from_unverified_parts`]).
    pub fn dangerous_set_crypt_key(&mut self, key: Option<CryptKey>) {
        if let Protection::Verity { crypt_key, .. } = &mut self.protection {
            *crypt_key = key;
        }
    }

    /// Whether a crypt key is present.
    pub fn has_crypt_key(&self) -> bool {
        self.crypt_key().is_some()
    }

    pub(super) fn crypt_key(&self) -> Option<&CryptKey> {
        match &self.protection {
            Protection::Verity { crypt_key, .. } => crypt_key.as_ref(),
            Protection::Plain => None,
        }
    }
}

/// The decided shape of the stack (a pure function of the parameters and the file size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Loop device size limit (P).
    pub loop_size: u64,
    /// Bytes mapped by dm-verity and dm-crypt (D); `None` for plain bundles (no dm layers).
    pub data_size: Option<u64>,
    /// Whether a dm-crypt layer sits on top of dm-verity.
    pub crypt: bool,
}

impl MountPlan {
    /// Checks the parameters against each other and against the bundle file size.
    pub fn new(params: &BundleMountParams, file_size: u64) -> Result<MountPlan, MountError> {
        let p = params.payload_size;
        if p == 0 || !p.is_multiple_of(VERITY_BLOCK_SIZE) || p > file_size {
            return Err(MountError::InvalidParams(format!(
                "payload size {p} must be a non-zero multiple of {VERITY_BLOCK_SIZE} within the bundle file ({file_size} bytes)"
            )));
        }
        let Some(verity) = params.verity() else {
            return Ok(MountPlan {
                loop_size: p,
                data_size: None,
                crypt: false,
            });
        };
        let data_size = verity.data_size;
        table::check_data_size(data_size)?;
        let hash_tree = p.saturating_sub(data_size);
        if hash_tree < table::min_hash_tree_size(data_size) {
            return Err(MountError::InvalidParams(format!(
                "verity data size {data_size} leaves {hash_tree} bytes for the hash tree in a payload of {p} bytes; \
                 at least {} are needed",
                table::min_hash_tree_size(data_size)
            )));
        }
        Ok(MountPlan {
            loop_size: p,
            data_size: Some(data_size),
            crypt: params.has_crypt_key(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(payload_size: u64, data_size: u64, crypt: bool) -> BundleMountParams {
        BundleMountParams::dangerous_from_unverified_parts(
            Path::new("/b.raucb"),
            payload_size,
            VerityParams {
                data_size,
                root_hash: [1; 32],
                salt: vec![2; 32],
            },
            crypt.then(|| CryptKey::from_bytes([3; 32])),
        )
    }

    #[test]
    fn plan_for_rauc_sized_bundles() {
        // environment.md §6.6: 1052672 data bytes + 16384 bytes of hash tree.
        let plan = MountPlan::new(&params(1_069_056, 1_052_672, true), 1_069_056 + 700).unwrap();
        assert_eq!(
            plan,
            MountPlan {
                loop_size: 1_069_056,
                data_size: Some(1_052_672),
                crypt: true
            }
        );
        let plan = MountPlan::new(&params(1_069_056, 1_052_672, false), 1_069_056).unwrap();
        assert!(!plan.crypt);
    }

    #[test]
    fn plan_rejects_out_of_bounds_and_inconsistent_sizes() {
        let cases = [
            (1_069_056, 1_052_672, 1_069_055), // payload beyond the end of the file
            (1_069_056 + 1, 1_052_672, 2_000_000), // payload not block aligned
            (1_069_056, 1_069_056, 2_000_000), // no room for a hash tree
            (1_052_672 + 12288, 1_052_672, 2_000_000), // hash tree too small (needs 4 blocks)
            (1_069_056, 2_000_000 - 4096, 2_000_000), // data larger than the payload
            (1_069_056, 0, 2_000_000),         // empty data
            (1_069_056, 1000, 2_000_000),      // unaligned data
        ];
        for (p, d, file) in cases {
            let result = MountPlan::new(&params(p, d, false), file);
            assert!(
                matches!(result, Err(MountError::InvalidParams(_))),
                "P={p} D={d} file={file}: {result:?}"
            );
        }
    }
}
