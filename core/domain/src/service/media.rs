//! Confinement of server-side paths (video files, image folders, file sinks) to the configured
//! media roots, so that an API client cannot make the server read or write anywhere it likes.
//! The check is lexical: adapters that open the path also resolve symlinks against the roots.

use std::path::{Component, Path, PathBuf};

use crate::error::DomainError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaRoots(Vec<PathBuf>);

impl MediaRoots {
    /// Roots must be absolute; relative ones are refused so the meaning never depends on the
    /// working directory of a later call.
    pub fn new(roots: Vec<PathBuf>) -> Result<Self, DomainError> {
        for root in &roots {
            if !root.is_absolute() {
                return Err(DomainError::invalid(
                    "media_roots",
                    format!("{} is not an absolute path", root.display()),
                ));
            }
        }
        Ok(Self(roots))
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.0
    }

    /// Accepts an absolute path without `..` that lies inside one of the roots.
    pub fn confine(&self, field: &str, raw: &str) -> Result<(), DomainError> {
        if raw.is_empty() || raw.len() > 4096 || raw.contains('\0') {
            return Err(DomainError::invalid(
                field,
                "must be a path of 1 to 4096 bytes",
            ));
        }
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(DomainError::invalid(field, "must be an absolute path"));
        }
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(DomainError::invalid(field, "must not contain '..'"));
        }
        if self.0.iter().any(|root| path.starts_with(root)) {
            Ok(())
        } else {
            let roots = self
                .0
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Err(DomainError::invalid(
                field,
                format!("must lie inside one of the media roots [{roots}] (setting MEDIA_ROOTS)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> MediaRoots {
        MediaRoots::new(vec!["/srv/media".into(), "/data/videos".into()]).unwrap()
    }

    #[test]
    fn a_path_inside_a_root_is_accepted() {
        roots()
            .confine("video_path", "/srv/media/cats/a.mp4")
            .unwrap();
        roots().confine("video_path", "/data/videos").unwrap();
    }

    #[test]
    fn paths_outside_relative_or_climbing_are_refused() {
        for raw in [
            "/etc/passwd",
            "srv/media/a.mp4",
            "/srv/media/../../etc/passwd",
            "/srv/mediax/a.mp4",
            "",
        ] {
            assert!(
                roots().confine("video_path", raw).is_err(),
                "{raw:?} was accepted"
            );
        }
    }

    #[test]
    fn relative_roots_are_refused() {
        assert!(MediaRoots::new(vec!["media".into()]).is_err());
    }
}
