//! A directory of `<id>.key` files, as in a mounted secret volume.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{ROOT_KEY_LEN, RootKey, RootKeyError, RootKeyId, RootKeySource};

/// Largest file read: 64 hex characters, a LF, and one byte to detect trailing garbage.
const MAX_FILE_LEN: u64 = 2 * ROOT_KEY_LEN as u64 + 2;

/// A directory holding one `<id>.key` file per root key.
///
/// Entries whose names start with `.` are skipped (Kubernetes secret volumes keep their
/// bookkeeping in `..data` and similar). Every other entry must be a `<id>.key` file
/// with no group or other permission bits; a symlink is judged by its target.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// A source reading `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl RootKeySource for DirSource {
    fn load(&self) -> Result<Vec<RootKey>, RootKeyError> {
        let unreadable = |source| RootKeyError::Unreadable {
            origin: self.dir.display().to_string(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(unreadable)? {
            let name = entry.map_err(unreadable)?.file_name();
            match name.to_str() {
                Some(n) if n.starts_with('.') => {}
                Some(n) => names.push(n.to_owned()),
                None => {
                    return Err(RootKeyError::Malformed {
                        origin: self.dir.join(&name).display().to_string(),
                        reason: "file name is not UTF-8",
                    });
                }
            }
        }
        names.sort();
        let mut keys = Vec::with_capacity(names.len());
        for name in names {
            let path = self.dir.join(&name);
            let Some(id) = name.strip_suffix(".key") else {
                return Err(RootKeyError::Malformed {
                    origin: path.display().to_string(),
                    reason: "root key files must be named <id>.key",
                });
            };
            let id = RootKeyId::new(id)?;
            keys.push(read_key_file(&path, id)?);
        }
        if keys.is_empty() {
            return Err(RootKeyError::Empty {
                origin: self.dir.display().to_string(),
            });
        }
        Ok(keys)
    }
}

fn read_key_file(path: &Path, id: RootKeyId) -> Result<RootKey, RootKeyError> {
    let origin = path.display().to_string();
    let unreadable = |source| RootKeyError::Unreadable {
        origin: origin.clone(),
        source,
    };
    // `metadata` follows symlinks: the target's mode is the one that matters.
    let meta = fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(RootKeyError::Malformed {
            origin,
            reason: "not a regular file",
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(RootKeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN as usize));
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_LEN).read_to_end(&mut text))
        .map_err(unreadable)?;
    RootKey::from_hex(id, &text, &origin)
}

/// Writes `key` as `<dir>/<id>.key` with mode 0600, refusing to overwrite a file.
/// Returns the path written.
pub fn write_new_key_file(dir: &Path, key: &RootKey) -> Result<PathBuf, RootKeyError> {
    let path = dir.join(format!("{}.key", key.id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => RootKeyError::Exists { path: path.clone() },
            _ => RootKeyError::Unreadable {
                origin: path.display().to_string(),
                source,
            },
        })?;
    let hex = key.to_hex();
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| RootKeyError::Unreadable {
            origin: path.display().to_string(),
            source,
        })?;
    Ok(path)
}
