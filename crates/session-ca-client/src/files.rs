//! Writing files so that a reader never sees half of one, and secrets are 0600 from the start.

use std::io::Write;
use std::path::Path;

/// Whether a file holds a secret (mode 0600) or public material (mode 0644).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A private key: readable by the owner only.
    Secret,
    /// A certificate or chain.
    Public,
}

/// Writes `contents` to `path` through a temporary file in the same
/// directory that is renamed into place, so the file is either absent,
/// its old version, or complete. Secret files are created 0600 and never
/// exist with wider permissions.
pub fn write_atomically(path: &Path, contents: &[u8], kind: FileKind) -> std::io::Result<()> {
    stage(path, contents, kind)?
        .persist(path)
        .map_err(|e| e.error)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes `contents` to a synced temporary file beside `path`, with the
/// final permissions, ready to be renamed onto `path` with
/// [`tempfile::NamedTempFile::persist`] (or `persist_noclobber`).
pub fn stage(
    path: &Path,
    contents: &[u8],
    kind: FileKind,
) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates files with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".session-ca-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    #[cfg(unix)]
    if kind == FileKind::Public {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = kind;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Flushes a directory's entries (the renames into it) to disk, where the
/// platform allows; a failure only weakens durability, so it is not an error.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Creates a directory (and its parents) for key material, mode 0700 on Unix.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn modes_and_contents() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("c.pem");
        write_atomically(&key, b"secret", FileKind::Secret).unwrap();
        write_atomically(&cert, b"public", FileKind::Public).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&cert), 0o644);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        write_atomically(&key, b"new", FileKind::Secret).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn missing_directory_is_an_error_not_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/k.pem");
        assert!(write_atomically(&path, b"x", FileKind::Secret).is_err());
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn private_directories_are_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Existing directories are fine (recursive).
        create_private_dir(&nested).unwrap();
    }
}
