//! Project archives: a project with everything it owns as one zip file, `manifest.json` (a
//! versioned JSON document of its own, independent of the REST wire types) plus one file per
//! reference frame under `frames/`. Reading an archive trusts nothing in it: sizes are bounded
//! while reading, every value is parsed into its domain type, and references are checked by the
//! domain's import.
//!
//! # Layout
//!
//! - [`manifest`]: the serialized form of each entity and its conversion from and to the domain.
//! - `lib.rs`: [`write_archive`], [`read_archive`], [`ArchiveLimits`], [`ArchiveError`].

mod manifest;

use std::io::{Cursor, Read, Write};

use visprompt_domain::{DomainError, ProjectBundle, StoredFrame};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

pub use manifest::FORMAT_VERSION;

const MANIFEST: &str = "manifest.json";

/// Bounds on what reading an archive may cost.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveLimits {
    /// Largest single frame image, in bytes.
    pub max_frame_bytes: u64,
    /// Largest manifest, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest total of everything decompressed, in bytes.
    pub max_total_bytes: u64,
    pub max_entries: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 << 20,
            max_manifest_bytes: 64 << 20,
            max_total_bytes: 1 << 30,
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a readable zip archive: {0}")]
    NotAnArchive(String),
    #[error("the archive has no {0}")]
    Missing(String),
    #[error("{0} is larger than allowed ({1} bytes)")]
    TooLarge(String, u64),
    #[error("the archive holds more than {0} files")]
    TooManyEntries(usize),
    #[error("manifest.json is invalid: {0}")]
    Manifest(String),
    #[error("archive format version {found} is not supported (this build reads {supported})")]
    Version { found: u32, supported: u32 },
    /// A value in the manifest breaks a domain rule; the field path is inside.
    #[error(transparent)]
    Invalid(#[from] DomainError),
}

/// Writes the bundle as a zip archive.
pub fn write_archive(bundle: &ProjectBundle) -> Vec<u8> {
    let manifest = manifest::Manifest::from_bundle(bundle);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    // Frames are already compressed images; deflating them again wastes time for nothing.
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    write_entry(&mut zip, MANIFEST, deflated, &json);
    for StoredFrame { frame, bytes } in &bundle.frames {
        write_entry(&mut zip, &manifest::frame_file(frame), stored, bytes);
    }
    zip.finish()
        .expect("writing to memory cannot fail")
        .into_inner()
}

fn write_entry(
    zip: &mut ZipWriter<Cursor<Vec<u8>>>,
    name: &str,
    opts: SimpleFileOptions,
    data: &[u8],
) {
    zip.start_file(name, opts)
        .expect("writing to memory cannot fail");
    zip.write_all(data).expect("writing to memory cannot fail");
}

/// Reads an archive written by [`write_archive`] (this or an older format version).
pub fn read_archive(bytes: &[u8], limits: ArchiveLimits) -> Result<ProjectBundle, ArchiveError> {
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ArchiveError::NotAnArchive(e.to_string()))?;
    if zip.len() > limits.max_entries {
        return Err(ArchiveError::TooManyEntries(limits.max_entries));
    }
    let mut budget = limits.max_total_bytes;
    let json = read_entry(&mut zip, MANIFEST, limits.max_manifest_bytes, &mut budget)?;
    let manifest: manifest::Manifest =
        serde_json::from_slice(&json).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    if manifest.version > FORMAT_VERSION || manifest.version == 0 {
        return Err(ArchiveError::Version {
            found: manifest.version,
            supported: FORMAT_VERSION,
        });
    }
    manifest.into_bundle(|name| read_entry(&mut zip, name, limits.max_frame_bytes, &mut budget))
}

/// Reads one entry, refusing more than `max` bytes or more than the remaining `budget`, counted
/// on the decompressed stream rather than trusted from the entry's header.
fn read_entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    max: u64,
    budget: &mut u64,
) -> Result<Vec<u8>, ArchiveError> {
    let entry = zip
        .by_name(name)
        .map_err(|_| ArchiveError::Missing(name.to_owned()))?;
    let cap = max.min(*budget);
    let mut data = Vec::new();
    entry
        .take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| ArchiveError::NotAnArchive(format!("{name}: {e}")))?;
    if data.len() as u64 > cap {
        return Err(ArchiveError::TooLarge(name.to_owned(), cap));
    }
    *budget -= data.len() as u64;
    Ok(data)
}
