//! The file system: where the kustomize base is from the output directory,
//! what the directory already holds (a CA to reuse, one to keep trusting),
//! and writing every file atomically with its permissions.

use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use time::OffsetDateTime;

use super::pki::{ExistingCa, check_certificates};
use super::{
    CA_BUNDLE_FILE, CA_CERT_FILE, CA_KEY_FILE, CertsError, Generated, KUSTOMIZATION_FILE,
    PATCH_FILE, PREVIOUS_CA_CERT_FILE, SECRET_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
};

/// `to` as a path relative to the directory `from`; both must be absolute
/// (canonical). `None` when there is no relative path (different roots).
pub fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    if !from.is_absolute() || !to.is_absolute() {
        return None;
    }
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    if from.first() != to.first() {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in to.iter().skip(common) {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    Some(rel)
}

/// A path as kustomization.yaml writes it: UTF-8, '/'-separated.
fn kustomize_path(p: &Path) -> Result<String, CertsError> {
    let parts = p
        .components()
        .map(|c| match c {
            Component::RootDir => Some(String::new()),
            c => c.as_os_str().to_str().map(str::to_string),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| CertsError::NonUtf8Path(p.to_path_buf()))?;
    Ok(match parts.as_slice() {
        [root] if root.is_empty() => "/".to_string(),
        _ => parts.join("/"),
    })
}

/// The `resources:` entry for the base, relative to `dir` (which exists).
pub(super) fn base_reference(
    dir: &Path,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, CertsError> {
    let Ok(base_abs) = base.canonicalize() else {
        warnings.push(format!(
            "--base {} does not exist; kustomization.yaml names it as given, relative to {}",
            base.display(),
            dir.display()
        ));
        return kustomize_path(base);
    };
    if base_abs.is_dir()
        && !["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .any(|f| base_abs.join(f).is_file())
    {
        warnings.push(format!(
            "--base {} holds no kustomization.yaml; `kubectl apply -k` will fail",
            base.display()
        ));
    }
    let dir_abs = dir.canonicalize().map_err(|source| CertsError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let rel = relative_path(&dir_abs, &base_abs).unwrap_or(base_abs);
    kustomize_path(&rel)
}

/// What the output directory already holds.
pub(super) struct DirState {
    pub(super) existing: Option<ExistingCa>,
    /// The CA kept in the caBundle after the current one.
    pub(super) previous: Option<String>,
    /// ca.crt is to be moved to previous-ca.crt (--new-ca over an old CA).
    pub(super) retire_current: bool,
}

impl DirState {
    pub(super) fn read(dir: &Path, new_ca: bool, now: OffsetDateTime) -> Result<Self, CertsError> {
        let ca_crt = dir.join(CA_CERT_FILE);
        let ca_key = dir.join(CA_KEY_FILE);
        let previous_path = dir.join(PREVIOUS_CA_CERT_FILE);
        let has_crt = exists(&ca_crt)?;
        let has_key = exists(&ca_key)?;
        if new_ca && has_crt {
            // The old CA stays trusted (as previous-ca.crt) during rotation.
            let old = read(&ca_crt)?;
            check_certificates(&old, &ca_crt)?;
            return Ok(Self {
                existing: None,
                previous: Some(old),
                retire_current: true,
            });
        }
        let previous = if exists(&previous_path)? {
            let p = read(&previous_path)?;
            check_certificates(&p, &previous_path)?;
            Some(p)
        } else {
            None
        };
        let existing = match (new_ca, has_crt, has_key) {
            (true, _, _) | (false, false, false) => None,
            (false, true, true) => Some(ExistingCa::parse(
                &read(&ca_crt)?,
                &read(&ca_key)?,
                &ca_crt,
                &ca_key,
                now,
            )?),
            (false, true, false) => {
                return Err(CertsError::IncompleteCa {
                    present: ca_crt,
                    missing: ca_key,
                });
            }
            (false, false, true) => {
                return Err(CertsError::IncompleteCa {
                    present: ca_key,
                    missing: ca_crt,
                });
            }
        };
        Ok(Self {
            existing,
            previous,
            retire_current: false,
        })
    }
}

fn exists(path: &Path) -> Result<bool, CertsError> {
    path.try_exists().map_err(|source| CertsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(|source| CertsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates the output directory (mode 0700 on unix) if it is missing.
pub(super) fn create_dir(dir: &Path) -> Result<(), CertsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| CertsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes a file atomically (temporary file, then rename); `private` files
/// get mode 0600 on unix from the start.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertsError> {
    let err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // A leftover from an interrupted run; create_new below needs it gone.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Writes every file; returns the names written, in order.
pub(super) fn write_all(
    dir: &Path,
    out: &Generated,
    retire_current: bool,
) -> Result<Vec<&'static str>, CertsError> {
    if retire_current {
        let from = dir.join(CA_CERT_FILE);
        let to = dir.join(PREVIOUS_CA_CERT_FILE);
        fs::rename(&from, &to).map_err(|source| CertsError::Move { from, to, source })?;
    }
    let mut files: Vec<(&'static str, &str, bool)> = Vec::new();
    if let Some(key) = &out.ca_key_pem {
        files.push((CA_KEY_FILE, key, true));
        files.push((CA_CERT_FILE, &out.ca_cert_pem, false));
    }
    files.extend([
        (TLS_KEY_FILE, out.tls_key_pem.as_str(), true),
        (TLS_CERT_FILE, &out.tls_cert_pem, false),
        (CA_BUNDLE_FILE, &out.ca_bundle, false),
        (SECRET_FILE, &out.secret_yaml, true),
        (PATCH_FILE, &out.patch_yaml, false),
        (KUSTOMIZATION_FILE, &out.kustomization_yaml, false),
    ]);
    for (name, contents, private) in &files {
        write_file(&dir.join(name), contents, *private)?;
    }
    Ok(files.into_iter().map(|(name, _, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let rel = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(
            rel("/repo/certs/out", "/repo/manifests"),
            Some(PathBuf::from("../../manifests"))
        );
        assert_eq!(rel("/repo", "/repo/manifests"), Some("manifests".into()));
        assert_eq!(rel("/repo/x", "/repo/x"), Some(".".into()));
        assert_eq!(rel("/a/b", "/c"), Some("../../c".into()));
        assert_eq!(rel("/a/b/c", "/a"), Some("../..".into()));
        assert_eq!(rel("/", "/m"), Some("m".into()));
        assert_eq!(rel("out", "/m"), None);
        assert_eq!(rel("/out", "m"), None);
    }

    #[test]
    fn base_reference_is_relative_to_the_output_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("manifests");
        fs::create_dir(&base).unwrap();
        fs::write(base.join("kustomization.yaml"), "resources: []\n").unwrap();
        let out = tmp.path().join("certs/out");
        fs::create_dir_all(&out).unwrap();
        let mut warnings = Vec::new();
        let r = base_reference(&out, &base, &mut warnings).unwrap();
        assert_eq!(r, "../../manifests");
        assert!(warnings.is_empty(), "{warnings:?}");

        let r = base_reference(&out, Path::new("/nowhere/at/all"), &mut warnings).unwrap();
        assert_eq!(r, "/nowhere/at/all");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("does not exist"), "{warnings:?}");

        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(
            base_reference(&out, &empty, &mut warnings).unwrap(),
            "../../empty"
        );
        assert!(
            warnings[0].contains("no kustomization.yaml"),
            "{warnings:?}"
        );
    }
}
