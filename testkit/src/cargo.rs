//! Finding the `switchyard` binary and the plugin's library, building them with a nested
//! `cargo build` where the test's own workspace can.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Mutex, OnceLock},
};

use serde_json::Value;

/// The variable naming the `switchyard` binary to run, overriding every other way of finding
/// it.
pub const SWITCHYARD_BIN: &str = "SWITCHYARD_BIN";

/// The `switchyard` binary the kit runs. In order:
///
/// 1. the path in `SWITCHYARD_BIN`;
/// 2. when the test's workspace has the `switchyard` package (as Switchyard's own does),
///    `cargo build -p switchyard --bin switchyard` there, once per test process, so it is
///    never stale;
/// 3. else the host of the Switchyard checkout this kit comes from (the folder above the kit's
///    own, a path dependency's or cargo's checkout of a git one), built once per test process
///    into the test's own target folder: the same commit as the kit, with nothing to set;
/// 4. `switchyard` beside the test executable in the cargo target folder (`target/debug/`).
///
/// # Panics
/// When none of these gives a binary, saying how to get one.
pub fn switchyard_bin() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(find_switchyard_bin)
        .clone()
        .unwrap_or_else(|problem| panic!("{problem}"))
}

fn find_switchyard_bin() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(SWITCHYARD_BIN).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{SWITCHYARD_BIN}={} is not a file: point it at a built switchyard binary",
                path.display()
            ))
        };
    }
    let metadata = workspace_metadata();
    let host = ["-p", "switchyard", "--bin", "switchyard"];
    let built = if has_switchyard(&metadata) {
        Some(cargo_build(&host, &package_dir(), None))
    } else if let Some(checkout) = kit_checkout() {
        let manifest = checkout.join("Cargo.toml");
        let manifest = manifest.to_string_lossy();
        let target = metadata["target_directory"].as_str().map(PathBuf::from);
        let args = [&["--manifest-path", manifest.as_ref()][..], &host[..]].concat();
        Some(cargo_build(&args, &package_dir(), target.as_deref()))
    } else {
        None
    };
    if let Some(artifacts) = built {
        return artifacts
            .iter()
            .filter(|a| a["target"]["name"] == "switchyard")
            .find_map(|a| a["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| "cargo built no switchyard executable".to_owned());
    }
    let beside = std::env::current_exe().ok().and_then(|exe| {
        // Test executables are in target/{profile}/deps; binaries one folder up.
        let folder = exe.parent()?;
        [
            folder.join("switchyard"),
            folder.parent()?.join("switchyard"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    beside.ok_or_else(|| {
        format!(
            "the switchyard binary was not found beside the test executable: build it with \
             `cargo build -p switchyard` in a Switchyard checkout (or `cargo install --git \
             https://github.com/switchyard-ci/switchyard --rev COMMIT switchyard`) and set \
             {SWITCHYARD_BIN} to its path"
        )
    })
}

/// The Switchyard checkout this kit was compiled from, when it holds the host: the kit's own
/// folder is `testkit/` in it.
fn kit_checkout() -> Option<PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("host/Cargo.toml")
        .is_file()
        .then(|| root.to_owned())
}

/// The path of a cdylib `package` of the test's workspace (your plugin), built with
/// `cargo build -p PACKAGE --lib` once per test process, in the dev profile, so it matches the
/// sources under test.
///
/// # Panics
/// When cargo fails or the package has no cdylib.
pub fn cdylib_path(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    // Held while building: two tests asking at once build once.
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let artifacts = cargo_build(&["-p", package, "--lib"], &package_dir(), None);
    // The package's own library comes last: its dependencies are built before it.
    let path = artifacts
        .iter()
        .rev()
        .filter(|a| {
            a["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|a| a["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| {
            f.extension()
                .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
        })
        .unwrap_or_else(|| {
            panic!("{package} built no cdylib: give it `[lib] crate-type = [\"cdylib\"]`")
        });
    built.insert(package.to_owned(), path.clone());
    path
}

/// A command running the cargo that runs the tests (cargo tells its test processes where it
/// is), without the variables cargo set for this test process: build scripts (ring, cc) rerun
/// when those differ, so inheriting them would rebuild dependencies at every switch between
/// the outer and a nested build.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ];
        if set_for_tests.iter().any(|prefix| name.starts_with(prefix)) {
            command.env_remove(&*name);
        }
    }
    command
}

/// Where the package under test is: nested cargo commands run there, in its workspace.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo metadata` of the test's workspace (`null` when cargo cannot tell).
fn workspace_metadata() -> Value {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1", "--quiet"])
        .current_dir(package_dir())
        .stderr(Stdio::null())
        .output();
    let Some(output) = output.ok().filter(|o| o.status.success()) else {
        return Value::Null;
    };
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

fn has_switchyard(metadata: &Value) -> bool {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    packages.iter().any(|p| {
        p["name"] == "switchyard"
            && p["targets"].as_array().is_some_and(|targets| {
                targets.iter().any(|t| {
                    t["name"] == "switchyard"
                        && t["kind"]
                            .as_array()
                            .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
                })
            })
    })
}

/// Runs `cargo build ARGS` in `dir`, into `target` when given; returns its compiler-artifact
/// messages. Compiler errors go to the test's stderr.
fn cargo_build(
    args: &[&str],
    dir: &std::path::Path,
    target: Option<&std::path::Path>,
) -> Vec<Value> {
    let mut command = cargo();
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let output = command
        .arg("build")
        .args(args)
        .args(["--quiet", "--message-format=json-render-diagnostics"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo in {}: {e}", dir.display()));
    assert!(
        output.status.success(),
        "`cargo build {}` in {} failed",
        args.join(" "),
        dir.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .collect()
}
