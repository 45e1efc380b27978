//! Dataset manifests: the list of objects (key, size, SHA-256) a run is planned from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the manifest format this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// One object of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Key relative to the dataset root, `/`-separated.
    pub key: String,
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// A dataset's objects, sorted by key so that batches are the same on every machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// Where the manifest came from, for the report ("synth seed 7", "folder /data/coco").
    pub source: String,
    pub objects: Vec<Entry>,
}

/// A manifest that cannot be read or built.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("manifest {path} is not valid JSON of version {MANIFEST_VERSION}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("manifest {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("scanning {path}: {source}")]
    Scan { path: PathBuf, source: std::io::Error },
}

/// File extensions taken as images when scanning a folder.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// True for keys with an image extension (.jpg, .jpeg, .png, any case).
pub fn is_image_key(key: &str) -> bool {
    key.rsplit_once('.').is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Returns the lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Why a manifest's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a manifest: {0}")]
    Format(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Builds a manifest from entries, sorting them by key and checking keys are unique.
    pub fn new(source: String, mut objects: Vec<Entry>) -> Result<Self, String> {
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(pair) = objects.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(format!("duplicate key {:?}", pair[0].key));
        }
        if let Some(bad) = objects.iter().find(|e| e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(format!("object {:?} has no valid sha256", bad.key));
        }
        Ok(Self { version: MANIFEST_VERSION, source, objects })
    }

    /// Total bytes of the dataset.
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|e| e.size).sum()
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Format(reason) => ManifestError::Format { path: path.into(), reason },
            ParseError::Invalid(reason) => ManifestError::Invalid { path: path.into(), reason },
        })
    }

    /// Parses a manifest's JSON text and checks it.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let parsed: Manifest = serde_json::from_str(text).map_err(|e| ParseError::Format(e.to_string()))?;
        if parsed.version != MANIFEST_VERSION {
            return Err(ParseError::Format(format!("version {}", parsed.version)));
        }
        if parsed.objects.is_empty() {
            return Err(ParseError::Invalid("no objects".into()));
        }
        Manifest::new(parsed.source, parsed.objects).map_err(ParseError::Invalid)
    }

    /// Writes the manifest as JSON, replacing the file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("manifest serialises"))?;
        std::fs::rename(tmp, path)
    }

    /// Scans `root` recursively for JPEG and PNG files and hashes them.
    pub fn scan(root: &Path) -> Result<Self, ManifestError> {
        let scan_err = |source| ManifestError::Scan { path: root.into(), source };
        let mut objects = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(scan_err)? {
                let entry = entry.map_err(scan_err)?;
                let path = entry.path();
                if entry.file_type().map_err(scan_err)?.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if !is_image_key(&path.to_string_lossy()) {
                    continue;
                }
                let data = std::fs::read(&path).map_err(scan_err)?;
                let key = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                objects.push(Entry { key, size: data.len() as u64, sha256: sha256_hex(&data) });
            }
        }
        if objects.is_empty() {
            return Err(ManifestError::Invalid { path: root.into(), reason: "no .jpg, .jpeg or .png files found".into() });
        }
        Manifest::new(format!("folder {}", root.display()), objects)
            .map_err(|reason| ManifestError::Invalid { path: root.into(), reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning_a_folder_finds_images_sorted_with_checksums() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.JPG"), b"bbb").unwrap();
        std::fs::write(dir.path().join("a.png"), b"a").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"skip").unwrap();
        let manifest = Manifest::scan(dir.path()).unwrap();
        let keys: Vec<_> = manifest.objects.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.png", "sub/b.JPG"]);
        assert_eq!(manifest.objects[0].sha256, sha256_hex(b"a"));
        assert_eq!(manifest.bytes(), 4);
        let path = dir.path().join("manifest.json");
        manifest.save(&path).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), manifest);
    }

    #[test]
    fn broken_manifests_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(&path, r#"{"version":1,"source":"x","objects":[]}"#).unwrap();
        assert!(Manifest::load(&path).unwrap_err().to_string().contains("no objects"));
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(Manifest::load(&path), Err(ManifestError::Format { .. })));
        let dup = Entry { key: "a".into(), size: 1, sha256: "0".repeat(64) };
        assert!(Manifest::new("x".into(), vec![dup.clone(), dup]).unwrap_err().contains("duplicate"));
        assert!(Manifest::scan(dir.path()).unwrap_err().to_string().contains("no .jpg"));
    }
}
