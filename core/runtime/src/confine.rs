//! Confinement of media paths to the media roots at the moment they are opened, for reading
//! (sources) and for writing (file sinks). The API checks paths lexically when they are stored;
//! this second check resolves symlinks and `..` through the file system, so a link inside a root
//! that points elsewhere is refused too. It only inspects paths; nothing is read or created before
//! the check passes.

use std::path::{Component, Path, PathBuf};

use visprompt_domain::MediaRoots;

/// Why a path was refused; the message names the path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfinementError(pub String);

/// The media roots, checked against real (canonical) paths.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    roots: Vec<PathBuf>,
}

impl Confinement {
    pub fn new(roots: &MediaRoots) -> Self {
        Self {
            roots: roots.roots().to_vec(),
        }
    }

    /// The canonical form of `path` (symlinks and `..` resolved), if it lies inside a root.
    /// Blocking: it asks the file system.
    ///
    /// Roots are resolved at every call rather than once, so a root created or re-linked after
    /// start-up is judged by what it is now; a root that does not exist confines nothing.
    /// Fails naming the path when it does not exist or lies outside every root.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, ConfinementError> {
        let real = std::fs::canonicalize(path)
            .map_err(|e| ConfinementError(format!("cannot open {}: {e}", path.display())))?;
        self.check(path, real)
    }

    /// Like [`Confinement::resolve`] for a path that may not exist yet (a file or directories to
    /// create): its nearest existing ancestor is resolved and must lie inside a root; the missing
    /// rest is appended. `..` in the missing rest is refused, since it cannot be resolved.
    pub fn resolve_new(&self, path: &Path) -> Result<PathBuf, ConfinementError> {
        let mut existing = path;
        let mut missing = Vec::new();
        while std::fs::symlink_metadata(existing).is_err() {
            let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                break;
            };
            missing.push(name.to_owned());
            existing = parent;
        }
        if missing
            .iter()
            .any(|m| matches!(Path::new(m).components().next(), Some(Component::ParentDir)))
        {
            return Err(ConfinementError(format!(
                "{} climbs out with '..'; it was not used",
                path.display()
            )));
        }
        let mut real = self.resolve(existing)?;
        for name in missing.into_iter().rev() {
            real.push(name);
        }
        Ok(real)
    }

    fn check(&self, path: &Path, real: PathBuf) -> Result<PathBuf, ConfinementError> {
        let inside = self
            .roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| real.starts_with(root));
        if inside {
            Ok(real)
        } else {
            let roots = self
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Err(ConfinementError(format!(
                "{} lies outside the media roots [{roots}] once links are resolved; it was not used",
                path.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined_to(root: &Path) -> Confinement {
        Confinement::new(&MediaRoots::new(vec![root.to_path_buf()]).unwrap())
    }

    #[test]
    fn a_file_inside_a_root_resolves_to_its_real_path() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.png"), b"x").unwrap();
        let real = confined_to(root.path())
            .resolve(&root.path().join("a.png"))
            .unwrap();
        assert_eq!(real, root.path().canonicalize().unwrap().join("a.png"));
    }

    #[test]
    fn climbing_out_with_dot_dot_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(outer.path().join("secret.png"), b"x").unwrap();
        let err = confined_to(&root)
            .resolve(&root.join("../secret.png"))
            .unwrap_err();
        assert!(err.0.contains("outside the media roots"), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_pointing_out_of_the_root_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(outer.path().join("private")).unwrap();
        std::os::unix::fs::symlink(outer.path().join("private"), root.join("link")).unwrap();
        let err = confined_to(&root).resolve(&root.join("link")).unwrap_err();
        assert!(err.0.contains("outside the media roots"), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_path_under_a_symlinked_directory_out_of_the_root_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(outer.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outer.path().join("etc"), root.join("out")).unwrap();
        let confined = confined_to(&root);
        let err = confined
            .resolve_new(&root.join("out/cron.d/job"))
            .unwrap_err();
        assert!(err.0.contains("outside the media roots"), "{err:?}");
        // Inside the root, missing directories are fine and resolved onto the real root.
        let ok = confined
            .resolve_new(&root.join("logs/day/out.jsonl"))
            .unwrap();
        assert_eq!(ok, root.canonicalize().unwrap().join("logs/day/out.jsonl"));
    }

    #[test]
    fn a_missing_path_is_unavailable_and_named() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let err = confined_to(root.path()).resolve(&missing).unwrap_err();
        assert!(err.0.contains(&missing.display().to_string()), "{err:?}");
    }
}
