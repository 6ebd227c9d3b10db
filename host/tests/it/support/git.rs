//! Local git repositories standing in for GitHub's: a bare repository at
//! `{root}/{owner}/{repo}.git` that the CI runner and deployer check out through a `file://`
//! clone URL template, and a working copy to commit to it. The checkout's git runs in the
//! sandbox as the build's user, so the repositories are that user's (git refuses to read one
//! another user owns), and the plugin entry binds `root` in (see [`Origin::bind`]).

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

pub struct Origin {
    pub root: tempfile::TempDir,
    pub full_name: String,
}

impl Origin {
    pub fn new(full_name: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The tests' own git works in repositories the build's user owns.
        std::fs::write(root.path().join("gitconfig"), "[safe]\n\tdirectory = *\n").unwrap();
        let bare = root.path().join(format!("{full_name}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        let origin = Self {
            root,
            full_name: full_name.to_owned(),
        };
        origin.git(&bare, &["init", "--quiet", "--bare"]);
        let work = origin.root.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        origin.git(&work, &["init", "--quiet"]);
        std::fs::create_dir(origin.scratch()).unwrap();
        origin.hand_to_builds();
        origin
    }

    /// The `binds` entry that lets the plugin's sandboxed git read these repositories, and
    /// its commands write to [`Origin::scratch`].
    pub fn bind(&self) -> String {
        let root = self.root.path().display();
        format!("binds = [\"{root}\", \"{root}/scratch:rw\"]")
    }

    /// A folder builds can write to and tests can read, outside any workspace.
    pub fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    /// Gives the repositories to the user builds run as, when the tests run as root.
    fn hand_to_builds(&self) {
        if nix::unistd::geteuid().is_root() {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(self.root.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        git(dir, args, &self.root.path().join("gitconfig"))
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
        self.git(&work, &["add", "--all"]);
        self.git(
            &work,
            &["commit", "--quiet", "--allow-empty", "-m", "test commit"],
        );
        let bare = self.root.path().join(format!("{}.git", self.full_name));
        let refspec = format!("HEAD:{git_ref}");
        self.git(
            &work,
            &[
                "push",
                "--quiet",
                "--force",
                bare.to_str().unwrap(),
                &refspec,
            ],
        );
        let sha = self.git(&work, &["rev-parse", "HEAD"]).trim().to_owned();
        self.hand_to_builds();
        sha
    }
}

fn git(dir: &Path, args: &[&str], config: &PathBuf) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Hermetic: no user or system config but `config`, a fixed identity.
        .env("GIT_CONFIG_GLOBAL", config)
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
