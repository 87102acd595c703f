//! Helpers for driving kubesim with real clients (kubectl, helm) in tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `.ci/install-tools.sh` puts kubectl and helm.
pub fn tool(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".tools")
        .join("bin")
        .join(name);
    p.exists().then_some(p)
}

/// The output of one client command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }
}

/// A real client bound to one kubeconfig.
pub struct Client {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub home: tempfile::TempDir,
}

impl Client {
    pub fn new(bin: PathBuf, kubeconfig_yaml: &str) -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml).expect("write kubeconfig");
        Self {
            bin,
            kubeconfig,
            home,
        }
    }

    /// Run the client (blocking) with a private HOME so its discovery cache is fresh.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = command(&self.bin, &self.kubeconfig, self.home.path(), args)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .expect("run client");
        out_of(out)
    }

    /// Run off the async runtime so the in-process cluster keeps serving.
    pub async fn arun(&self, args: &[&str]) -> Out {
        let bin = self.bin.clone();
        let kubeconfig = self.kubeconfig.clone();
        let home = self.home.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = command(&bin, &kubeconfig, &home, &args)
                .output()
                .expect("run client");
            out_of(out)
        })
        .await
        .expect("join client")
    }

    /// `arun`, which must succeed and print `wanted` on stdout.
    pub async fn arun_expecting(&self, args: &[&str], wanted: &str) -> Out {
        let out = self.arun(args).await;
        out.ok();
        assert!(out.stdout.contains(wanted), "{out:?}");
        out
    }
}

fn command<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    kubeconfig: &Path,
    home: &Path,
    args: &[S],
) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"));
    c
}

fn out_of(out: std::process::Output) -> Out {
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Skip (with a note) when the real client is not installed.
#[macro_export]
macro_rules! require_tool {
    ($name:expr) => {
        match $crate::common::tool($name) {
            Some(p) => p,
            None => {
                eprintln!("SKIP: {} not installed (run .ci/install-tools.sh)", $name);
                return;
            }
        }
    };
}
