//! Local git repositories standing in for GitHub's: a bare repository at
//! `{root}/{owner}/{repo}.git` that a plugin checks out through a `file://` clone URL, and a
//! working copy to commit to it.
//!
//! The host runs a checkout's git in the build sandbox, as the sandbox's user (`nobody` when the
//! tests run as root), and git refuses to read a repository another user owns: so, under root,
//! the repositories are handed to `nobody`, and the plugin entry must bind [`Origin::root`] into
//! the sandbox ([`Origin::binds`]).

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

/// A bare repository with a working copy to commit from, in a temporary folder removed on drop.
#[derive(Debug)]
pub struct Origin {
    root: tempfile::TempDir,
    full_name: String,
}

impl Origin {
    /// An empty repository named `owner/repo`.
    ///
    /// # Panics
    /// When git is not installed or fails.
    pub fn new(full_name: &str) -> Self {
        let root = tempfile::tempdir().expect("a temporary folder");
        // The sandbox's user must be able to enter it.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("the temporary folder's mode");
        // The kit's own git works in repositories the build's user owns.
        std::fs::write(root.path().join("gitconfig"), "[safe]\n\tdirectory = *\n")
            .expect("a git config");
        let bare = root.path().join(format!("{full_name}.git"));
        std::fs::create_dir_all(&bare).expect("the repository's folder");
        let origin = Self {
            root,
            full_name: full_name.to_owned(),
        };
        origin.git(&bare, &["init", "--quiet", "--bare"]);
        let work = origin.work();
        std::fs::create_dir_all(&work).expect("the working copy's folder");
        origin.git(&work, &["init", "--quiet"]);
        std::fs::create_dir(origin.scratch()).expect("the scratch folder");
        origin.hand_to_builds();
        origin
    }

    /// `owner/repo`, as given to [`Origin::new`].
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The folder holding the repositories; bind it into the plugin's sandbox.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `binds` of a plugin entry that let its sandboxed git read the repository and its
    /// commands write to [`Origin::scratch`].
    pub fn binds(&self) -> Vec<String> {
        let root = self.root.path().display();
        vec![root.to_string(), format!("{root}/scratch:rw")]
    }

    /// A folder builds can write to (through [`Origin::binds`]) and tests can read, outside
    /// any workspace.
    pub fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    /// This repository's `file://` URL: a payload's `repository.clone_url`.
    pub fn clone_url(&self) -> String {
        format!(
            "file://{}/{}.git",
            self.root.path().display(),
            self.full_name
        )
    }

    /// A `clone_url` template (`{full_name}` placeholder) pointing every repository here,
    /// for plugins whose settings take one.
    pub fn clone_url_template(&self) -> String {
        format!("file://{}/{{full_name}}.git", self.root.path().display())
    }

    /// Writes `files` (path, content) into the working copy, commits (empty commits too) and
    /// pushes the commit to `git_ref` (e.g. `refs/heads/main`). Returns the commit's sha.
    ///
    /// # Panics
    /// When git fails.
    pub fn commit(&self, git_ref: &str, files: &[(&str, &str)]) -> String {
        let work = self.work();
        for (name, content) in files {
            let path = work.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("a folder in the working copy");
            }
            std::fs::write(path, content).expect("a file in the working copy");
        }
        self.git(&work, &["add", "--all"]);
        self.git(
            &work,
            &["commit", "--quiet", "--allow-empty", "-m", "test commit"],
        );
        let bare = self.root.path().join(format!("{}.git", self.full_name));
        let refspec = format!("HEAD:{git_ref}");
        let bare = bare.to_str().expect("a UTF-8 temporary path");
        self.git(&work, &["push", "--quiet", "--force", bare, &refspec]);
        let sha = self.git(&work, &["rev-parse", "HEAD"]).trim().to_owned();
        self.hand_to_builds();
        sha
    }

    /// Makes `name` in the working copy a symbolic link to `target` (replacing what is there);
    /// the next [`Origin::commit`] commits it, as git stores links: mode 120000.
    ///
    /// # Panics
    /// When the link cannot be made.
    pub fn symlink(&self, name: &str, target: &str) {
        let path = self.work().join(name);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, path).expect("a symbolic link in the working copy");
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Gives the repositories to the user builds run as (`[sandbox] run_as`, `nobody` by
    /// default), when the tests run as root.
    fn hand_to_builds(&self) {
        if nix::unistd::geteuid().is_root() {
            // `nobody:` is nobody's own group, whatever the system calls it.
            let status = Command::new("chown")
                .args(["-R", "nobody:"])
                .arg(self.root.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown -R nobody: failed");
        }
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            // Hermetic: no user or system config but our own, a fixed identity.
            .env("GIT_CONFIG_GLOBAL", self.root.path().join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Switchyard Tests")
            .env("GIT_AUTHOR_EMAIL", "tests@switchyard.invalid")
            .env("GIT_COMMITTER_NAME", "Switchyard Tests")
            .env("GIT_COMMITTER_EMAIL", "tests@switchyard.invalid")
            .output()
            .expect("git is installed");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("git prints UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_in_the_bare_repository_at_its_ref() {
        let origin = Origin::new("octo/app");
        let sha = origin.commit("refs/heads/main", &[("dir/file.txt", "hello")]);
        assert_eq!(sha.len(), 40);
        let url = origin.clone_url();
        assert_eq!(
            url,
            origin
                .clone_url_template()
                .replace("{full_name}", "octo/app")
        );
        let bare = PathBuf::from(url.strip_prefix("file://").unwrap());
        let listed = origin.git(&bare, &["ls-tree", "-r", "--name-only", &sha]);
        assert_eq!(listed, "dir/file.txt\n");
        let head = origin.git(&bare, &["rev-parse", "refs/heads/main"]);
        assert_eq!(head.trim(), sha);
    }
}
