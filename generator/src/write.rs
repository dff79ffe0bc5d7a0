//! Writing output atomically, and comparing it with what is on disk.
//!
//! A crate is written into a temporary directory next to the target and renamed into
//! place, so a failure at any point leaves the previous output as it was. A single
//! module file is written the same way through a temporary file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::render::File;

/// Replaces the directory `out` with exactly `files`.
///
/// # Errors
///
/// [`Error::Write`] when a file cannot be written or the directory cannot be swapped;
/// `out` is then unchanged.
pub fn write_dir(out: &Path, files: &[File]) -> Result<(), Error> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent).map_err(write_error(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".polvo-gen-")
        .tempdir_in(&parent)
        .map_err(write_error(&parent))?;
    for file in files {
        let path = staging.path().join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        }
        std::fs::write(&path, &file.contents).map_err(write_error(&path))?;
    }

    let backup = parent.join(format!(
        ".{}.polvo-old-{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let had_previous = out.exists();
    if had_previous {
        std::fs::rename(out, &backup).map_err(write_error(out))?;
    }
    if let Err(source) = std::fs::rename(staging.path(), out) {
        if had_previous {
            // Put the previous output back; if even that fails the backup is kept on
            // disk and named in the error.
            if std::fs::rename(&backup, out).is_err() {
                return Err(Error::Write {
                    path: backup,
                    source,
                });
            }
        }
        return Err(Error::Write {
            path: out.to_path_buf(),
            source,
        });
    }
    let _ = staging.keep();
    if had_previous {
        std::fs::remove_dir_all(&backup).map_err(write_error(&backup))?;
    }
    Ok(())
}

/// Writes one file through a temporary file and a rename.
///
/// # Errors
///
/// [`Error::Write`]; the previous file is then unchanged.
pub fn write_file(path: &Path, contents: &str) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let parent = parent_of(path);
    std::fs::create_dir_all(&parent).map_err(write_error)?;
    let mut temp = tempfile::NamedTempFile::new_in(&parent).map_err(write_error)?;
    std::io::Write::write_all(&mut temp, contents.as_bytes()).map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Files that differ between `out` and `files`: changed, missing or extra, sorted.
pub fn stale_files(out: &Path, files: &[File]) -> Vec<PathBuf> {
    let mut on_disk = BTreeMap::new();
    collect(out, Path::new(""), &mut on_disk);
    let mut stale = Vec::new();
    for file in files {
        match on_disk.remove(&file.path) {
            Some(bytes) if bytes == file.contents.as_bytes() => {}
            _ => stale.push(out.join(&file.path)),
        }
    }
    stale.extend(on_disk.into_keys().map(|path| out.join(path)));
    stale.sort();
    stale
}

fn collect(root: &Path, relative: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(root.join(relative)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = relative.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect(root, &path, out);
        } else if let Ok(bytes) = std::fs::read(root.join(&path)) {
            out.insert(path, bytes);
        }
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

    use super::*;

    fn file(path: &str, contents: &str) -> File {
        File {
            path: path.into(),
            contents: contents.to_owned(),
        }
    }

    /// Names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_failing_half_way_leaves_the_previous_output_and_no_debris() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("client");
        write_dir(&out, &[file("src/lib.rs", "old")]).unwrap();

        // The second file needs `src/lib.rs` to be a directory: the first write
        // succeeds, the second fails.
        let files = [file("src/lib.rs", "new"), file("src/lib.rs/more.rs", "x")];
        let error = write_dir(&out, &files).unwrap_err();
        assert!(matches!(error, Error::Write { .. }), "{error:?}");

        let lib = std::fs::read_to_string(out.join("src/lib.rs")).unwrap();
        assert_eq!(lib, "old");
        assert_eq!(
            listing(root.path()),
            ["client"],
            "no staging or backup left"
        );
    }

    #[test]
    fn a_successful_write_replaces_every_file() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("client");
        write_dir(&out, &[file("src/lib.rs", "old"), file("src/gone.rs", "")]).unwrap();
        write_dir(&out, &[file("src/lib.rs", "new")]).unwrap();
        assert_eq!(listing(&out.join("src")), ["lib.rs"]);
        assert_eq!(
            std::fs::read_to_string(out.join("src/lib.rs")).unwrap(),
            "new"
        );
        assert_eq!(listing(root.path()), ["client"]);
    }
}
