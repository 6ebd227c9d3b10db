//! Local git repositories standing in for GitHub's: a bare repository at
//! `{root}/{owner}/{repo}.git` that the CI runner and deployer check out through a `file://`
//! clone URL template, and a working copy to commit to it.

use std::{path::Path, process::Command};

pub struct Origin {
    pub root: tempfile::TempDir,
    pub full_name: String,
}

impl Origin {
    pub fn new(full_name: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let bare = root.path().join(format!("{full_name}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare"]);
        let work = root.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--quiet"]);
        Self {
            root,
            full_name: full_name.to_owned(),
        }
    }

    /// The `clone_url` setting that points plugins here.
    pub fn clone_url_template(&self) -> String {
        format!("file://{}/{{full_name}}.git", self.root.path().display())
    }

    /// Commits `files` on top of the working copy and pushes the commit to `git_ref`. Returns
    /// the commit's sha.
    pub fn commit(&self, git_ref: &str, files: &[(&str, &str)]) -> String {
        let work = self.root.path().join("work");
        for (name, content) in files {
            std::fs::write(work.join(name), content).unwrap();
        }
        git(&work, &["add", "--all"]);
        git(
            &work,
            &["commit", "--quiet", "--allow-empty", "-m", "test commit"],
        );
        let bare = self.root.path().join(format!("{}.git", self.full_name));
        let refspec = format!("HEAD:{git_ref}");
        git(
            &work,
            &[
                "push",
                "--quiet",
                "--force",
                bare.to_str().unwrap(),
                &refspec,
            ],
        );
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Hermetic: no user or system config, a fixed identity.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
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
    String::from_utf8(output.stdout).unwrap()
}
