//! The container image, run as GitHub Actions, GitLab CI, Cloud Build and a
//! Kubernetes CronJob run it, against kubesim on 127.0.0.1 over verified TLS.
//!
//! `.ci/image.sh` builds the Dockerfile's two targets (release, shell) with
//! buildah and unpacks them: `$ROLLGUARD_IMAGE_DIR/{release,shell}/rootfs`,
//! with each image's OCI config in `{release,shell}.config.json`. Each test
//! here starts a container from an unpacked image as a container runtime
//! does: a private mount namespace with the CI system's volumes bind-mounted
//! and /proc and /dev, chroot into the image's root, the image's working
//! directory, user and environment (with what the CI system overrides or
//! adds), the host's network. `podman run` itself cannot run on these
//! machines (crun may not set RLIMIT_NOFILE/RLIMIT_NPROC, and refuses hybrid
//! cgroups). Without ROLLGUARD_IMAGE_DIR the tests skip, except under
//! CI=true, where they fail.
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use kubesim::Handle;
use kubesim::scenario::ImageBehaviour;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use wiremock::MockServer;

use crate::support::{self, DeploymentSpec, Fixture, PodLabel, serve};

const WAIT: Duration = Duration::from_secs(30);
/// The most one container run may take (rollguard's own timeout is 60 s).
const RUN_LIMIT: Duration = Duration::from_secs(150);
/// The uid of the GitHub-hosted runner's user, which owns the files it
/// mounts into container actions.
const RUNNER_UID: u32 = 1001;
const GH_TOKEN: &str = "ghs_imagetestTOKEN0123456789abcdefABCDEF";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- images

/// An unpacked image: its root filesystem and the `config` object of its
/// OCI image config (Entrypoint, Cmd, Env, User, WorkingDir).
struct Image {
    name: String,
    rootfs: PathBuf,
    config: Value,
}

fn image(target: &str) -> Option<Image> {
    let Some(dir) = std::env::var_os("ROLLGUARD_IMAGE_DIR") else {
        let why = "ROLLGUARD_IMAGE_DIR is not set: .ci/image.sh builds and unpacks the image \
                   (.ci/run sources it; by hand: bash .ci/image.sh, then \
                   ROLLGUARD_IMAGE_DIR=target/image cargo test --test all image::)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        println!("SKIPPED: {why}");
        return None;
    };
    let dir = PathBuf::from(dir);
    let rootfs = dir.join(target).join("rootfs");
    assert!(
        rootfs.is_dir(),
        "{} is missing: run .ci/image.sh",
        rootfs.display()
    );
    let config_path = dir.join(format!("{target}.config.json"));
    let text = std::fs::read_to_string(&config_path)
        .unwrap_or_else(|e| panic!("{}: {e}", config_path.display()));
    let config: Value = serde_json::from_str(&text).expect("an OCI image config");
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "starting containers needs root"
    );
    Some(Image {
        name: target.to_string(),
        rootfs,
        config: config["config"].clone(),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// What the CI system asks of the runtime; everything else comes from the
/// image.
#[derive(Default)]
struct Run {
    /// Replaces the image's entrypoint (and drops its Cmd), as
    /// `docker run --entrypoint` and GitLab's `image: entrypoint:` do; `[""]`
    /// is "no entrypoint".
    entrypoint: Option<Vec<String>>,
    /// Replaces the image's Cmd.
    cmd: Option<Vec<String>>,
    /// Added to (and overriding) the image's Env.
    env: Vec<(String, String)>,
    workdir: Option<String>,
    /// `uid[:gid]` or a name from the image's /etc/passwd.
    user: Option<String>,
    /// (host directory, path in the container).
    volumes: Vec<(PathBuf, String)>,
    /// The image's root filesystem mounted read-only
    /// (`readOnlyRootFilesystem: true`); volumes stay writable.
    read_only: bool,
    stdin: Vec<u8>,
}

struct Exited {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Exited {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A `name:x:uid:gid:…` line of the image's /etc/passwd.
fn passwd_entry(rootfs: &Path, name_or_uid: &str) -> Option<(u32, u32, String)> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && (f[0] == name_or_uid || f[2] == name_or_uid))
            .then(|| (f[2].parse().ok(), f[3].parse().ok(), f[5].to_string()))
            .and_then(|(u, g, h)| Some((u?, g?, h)))
    })
}

fn group_id(rootfs: &Path, name: &str) -> u32 {
    if let Ok(g) = name.parse() {
        return g;
    }
    let text = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
        })
        .unwrap_or_else(|| panic!("group {name} is not in the image's /etc/group"))
}

fn cstring(p: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).expect("no NUL in paths")
}

impl Image {
    fn env(&self) -> Vec<(String, String)> {
        strings(&self.config["Env"])
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect()
    }

    /// The host path of a path in the image, following the image's
    /// symlinks inside its root (/var/run → /run), as runtimes resolve mount
    /// targets: never onto the host.
    fn path(&self, in_image: &str) -> PathBuf {
        let mut todo: Vec<String> = in_image
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut at: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => {}
            }
            let host = self.rootfs.join(at.join("/")).join(&c);
            match std::fs::read_link(&host) {
                Ok(target) => {
                    links += 1;
                    assert!(links < 40, "{in_image}: too many symlinks in the image");
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    todo.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty())
                            .rev()
                            .map(String::from),
                    );
                }
                Err(_) => at.push(c),
            }
        }
        self.rootfs.join(at.join("/"))
    }

    /// Start a container and wait for it to exit.
    async fn run(&self, run: Run) -> Exited {
        let argv: Vec<String> = match &run.entrypoint {
            Some(ep) => ep
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .chain(run.cmd.clone().unwrap_or_default())
                .collect(),
            None => strings(&self.config["Entrypoint"])
                .into_iter()
                .chain(
                    run.cmd
                        .clone()
                        .unwrap_or_else(|| strings(&self.config["Cmd"])),
                )
                .collect(),
        };
        assert!(!argv.is_empty(), "{}: nothing to run", self.name);

        let user = run
            .user
            .clone()
            .or_else(|| self.config["User"].as_str().map(String::from))
            .unwrap_or_default();
        let (uid, gid, home) = if user.is_empty() {
            (0, 0, "/root".to_string())
        } else {
            let (name, group) = match user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (user.as_str(), None),
            };
            let (uid, pw_gid, home) = match passwd_entry(&self.rootfs, name) {
                Some(e) => e,
                None => (
                    name.parse()
                        .unwrap_or_else(|_| panic!("user {name} is not in the image")),
                    name.parse().unwrap(),
                    "/".into(),
                ),
            };
            let gid = group.map(|g| group_id(&self.rootfs, g)).unwrap_or(pw_gid);
            (uid, gid, home)
        };

        let mut env: BTreeMap<String, String> = self.env().into_iter().collect();
        env.insert("HOSTNAME".into(), format!("rollguard-{}", self.name));
        env.insert("HOME".into(), home);
        env.extend(run.env.iter().cloned());

        let workdir = run
            .workdir
            .clone()
            .or_else(|| {
                self.config["WorkingDir"]
                    .as_str()
                    .filter(|w| !w.is_empty())
                    .map(String::from)
            })
            .unwrap_or_else(|| "/".into());

        // Mount points and the working directory are created in the root
        // filesystem, as runtimes do.
        let mut binds = vec![(cstring("/dev"), cstring(self.path("/dev")))];
        for (host, target) in &run.volumes {
            binds.push((cstring(host), cstring(self.path(target))));
        }
        for (_, target) in &binds {
            std::fs::create_dir_all(std::ffi::OsStr::from_bytes(target.as_bytes())).unwrap();
        }
        let proc_dir = self.path("/proc");
        std::fs::create_dir_all(&proc_dir).unwrap();
        std::fs::create_dir_all(self.path(&workdir)).unwrap();
        let rootfs = cstring(&self.rootfs);
        let proc_dir = cstring(&proc_dir);
        let workdir_c = cstring(&workdir);
        let read_only = run.read_only;

        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(&env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes system calls on data prepared above (no allocation, no lock).
        // The program is looked up after the chroot, on the container's PATH.
        unsafe {
            cmd.pre_exec(move || {
                let ok = |r: libc::c_int| {
                    if r == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                let null = std::ptr::null::<libc::c_char>();
                // mount(2) with no filesystem data.
                let mount = |src, dst, fstype, flags| {
                    ok(libc::mount(src, dst, fstype, flags, std::ptr::null()))
                };
                let bind = libc::MS_BIND | libc::MS_REC;
                ok(libc::unshare(libc::CLONE_NEWNS))?;
                mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE)?;
                // The root as a mount of its own, so that it can be made
                // read-only once the volumes are mounted on it.
                mount(rootfs.as_ptr(), rootfs.as_ptr(), null, bind)?;
                for (src, dst) in &binds {
                    mount(src.as_ptr(), dst.as_ptr(), null, bind)?;
                }
                mount(c"proc".as_ptr(), proc_dir.as_ptr(), c"proc".as_ptr(), 0)?;
                if read_only {
                    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
                    mount(null, rootfs.as_ptr(), null, flags)?;
                }
                ok(libc::chroot(rootfs.as_ptr()))?;
                ok(libc::chdir(workdir_c.as_ptr()))?;
                ok(libc::setgroups(0, std::ptr::null()))?;
                ok(libc::setgid(gid))?;
                ok(libc::setuid(uid))?;
                Ok(())
            });
        }
        println!(
            "== {} image: {argv:?} as {uid}:{gid} in {workdir}",
            self.name
        );
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start {argv:?}: {e}", self.name));
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&run.stdin).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{}: still running after {RUN_LIMIT:?}", self.name))
            .unwrap();
        let exited = Exited {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!(
            "-- exit {:?}\n-- stdout:\n{}\n-- stderr:\n{}",
            exited.code, exited.stdout, exited.stderr
        );
        exited
    }
}

// ---------------------------------------------------------------- cluster

/// `api` in `ns`, two pods of `example/api:v1`, settled.
async fn cluster(ns: &str) -> Handle {
    let h = Fixture::new()
        .namespace(ns)
        .deployment(DeploymentSpec {
            name: "api",
            namespace: ns,
            image: "example/api:v1",
            replicas: 2,
            label: PodLabel::App,
            ..Default::default()
        })
        .start()
        .await;
    assert!(h.ca_pem.is_some(), "kubesim serves HTTPS");
    assert_settled_on(&h, ns, "example/api:v1").await;
    h
}

fn deployment(h: &Handle, ns: &str) -> Value {
    (*h.get("apps/v1", "Deployment", ns, "api")
        .expect("api exists"))
    .clone()
}

fn template_image(h: &Handle, ns: &str) -> String {
    deployment(h, ns)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// kubectl's rollout rule holds, the template has `image`, and every live
/// pod runs it and is ready.
fn settled_on(h: &Handle, ns: &str, image: &str) -> bool {
    let Some(d) = h.get("apps/v1", "Deployment", ns, "api") else {
        return false;
    };
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let rolled_out = n("/status/observedGeneration") >= n("/metadata/generation")
        && n("/status/updatedReplicas") == 2
        && n("/status/replicas") == 2
        && n("/status/availableReplicas") == 2;
    let pods: Vec<_> = h
        .list("v1", "Pod", ns)
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    rolled_out
        && d["spec"]["template"]["spec"]["containers"][0]["image"] == image
        && pods.len() == 2
        && pods.iter().all(|p| {
            p["spec"]["containers"][0]["image"] == image
                && p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
}

async fn assert_settled_on(h: &Handle, ns: &str, image: &str) {
    let ns2 = ns.to_string();
    let image2 = image.to_string();
    assert!(
        h.wait_for(WAIT, move |h| settled_on(h, &ns2, &image2))
            .await,
        "deployment/api in {ns} is not settled on {image}: {:#}",
        deployment(h, ns)["status"]
    );
}

/// The kubeconfig without the CA: the server's certificate must then be
/// trusted by the system's roots (the image's CA bundle).
fn kubeconfig_without_ca(h: &Handle) -> String {
    let kc = h.kubeconfig_yaml();
    let kept: Vec<&str> = kc
        .lines()
        .filter(|l| !l.trim_start().starts_with("certificate-authority-data:"))
        .collect();
    assert_eq!(kept.len() + 1, kc.lines().count());
    kept.join("\n") + "\n"
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

fn mode(path: &Path, m: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
}

// ---------------------------------------------------------------- GitHub

/// The directories GitHub's runner mounts into a Docker container action
/// (`-v …/_temp/_github_home:/github/home` etc.), owned by the runner's user,
/// with the empty file-command files it creates before the step.
struct Runner {
    dir: tempfile::TempDir,
    output: String,
    summary: String,
}

impl Runner {
    fn new() -> Runner {
        let dir = tempfile::tempdir().unwrap();
        for d in ["workspace", "home", "workflow", "file_commands"] {
            let p = dir.path().join(d);
            std::fs::create_dir(&p).unwrap();
            mode(&p, 0o755);
            chown_tree(&p, RUNNER_UID);
        }
        let id = "3f1c0b5e-7a52-4c39-9d0e-2b6f0a9c4d11";
        let output = format!("set_output_{id}");
        let summary = format!("step_summary_{id}");
        for f in [
            &output,
            &summary,
            &format!("set_env_{id}"),
            &format!("add_path_{id}"),
        ] {
            let p = dir.path().join("file_commands").join(f);
            std::fs::write(&p, "").unwrap();
            mode(&p, 0o644);
            chown_tree(&p, RUNNER_UID);
        }
        let event = dir.path().join("workflow/event.json");
        std::fs::write(
            &event,
            json!({"action": "synchronize", "number": 7,
                   "pull_request": {"number": 7, "head": {"sha": "0123456789abcdef0123456789abcdef01234567"}},
                   "repository": {"full_name": "acme/api"}})
            .to_string(),
        )
        .unwrap();
        chown_tree(&event, RUNNER_UID);
        Runner {
            dir,
            output,
            summary,
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn volumes(&self) -> Vec<(PathBuf, String)> {
        [
            ("workspace", "/github/workspace"),
            ("home", "/github/home"),
            ("workflow", "/github/workflow"),
            ("file_commands", "/github/file_commands"),
        ]
        .iter()
        .map(|(h, c)| (self.host(h), c.to_string()))
        .collect()
    }

    /// The action's step as the runner starts its container: the runner's
    /// environment, workdir /github/workspace, its directories mounted, and
    /// `user` when the workflow names one.
    fn step(&self, with: &[(&str, String)], api_url: &str, user: Option<&str>) -> Run {
        Run {
            env: self.env(with, api_url),
            workdir: Some("/github/workspace".into()),
            user: user.map(str::to_string),
            volumes: self.volumes(),
            ..Run::default()
        }
    }

    /// The container's environment as the runner sets it: every input of
    /// action.yml as `INPUT_<NAME>` (hyphens kept) with the step's `with:`
    /// value or the input's default (empty when it has none), and the
    /// runner's own variables.
    fn env(&self, with: &[(&str, String)], api_url: &str) -> Vec<(String, String)> {
        let action: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(root().join("action.yml")).unwrap())
                .unwrap();
        let action = serde_json::to_value(action).unwrap();
        let mut env = Vec::new();
        for (name, spec) in action["inputs"].as_object().expect("inputs") {
            let given = with.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let value = given.unwrap_or_else(|| match &spec["default"] {
                Value::String(s) if s == "${{ github.token }}" => GH_TOKEN.to_string(),
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            });
            env.push((
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            ));
        }
        for (k, v) in [
            ("HOME", "/github/home"),
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", "/github/workspace"),
            ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REPOSITORY", "acme/api"),
            ("GITHUB_REPOSITORY_OWNER", "acme"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_API_URL", api_url),
            ("GITHUB_RUN_ID", "4242"),
            ("GITHUB_RUN_NUMBER", "17"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_WORKFLOW", "deploy"),
            ("GITHUB_JOB", "deploy"),
            ("GITHUB_ACTION", "rollguard"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
            ("RUNNER_TEMP", "/home/runner/work/_temp"),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        let fc = "/github/file_commands";
        env.push(("GITHUB_OUTPUT".into(), format!("{fc}/{}", self.output)));
        env.push((
            "GITHUB_STEP_SUMMARY".into(),
            format!("{fc}/{}", self.summary),
        ));
        env
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.host(rel)).unwrap_or_default()
    }

    /// `GITHUB_OUTPUT` as the runner parses it: `name=value` and
    /// `name<<DELIM … DELIM`.
    fn outputs(&self) -> BTreeMap<String, String> {
        let text = self.read(&format!("file_commands/{}", self.output));
        let mut out = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some((k, delim)) = line.split_once("<<") {
                let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
                out.insert(k.to_string(), value.join("\n"));
            } else if let Some((k, v)) = line.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
        out
    }
}

/// A GitHub API that takes the sticky PR comment.
async fn github_api() -> MockServer {
    let server = MockServer::start().await;
    serve(&server, "GET", "/user", 403, support::github_forbidden()).await;
    support::takes_comment(&server, "acme/api", 7, 901).await;
    server
}

/// The JSON report rollguard wrote at `path` says `result`.
fn assert_report_result(path: &std::path::Path, result: &str) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["result"], result, "{report:#}");
}

fn base64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `uses: rollguard/rollguard@v1` as GitHub's runner starts it: the image's
/// entrypoint and user, workdir /github/workspace, the runner's directories
/// mounted, its file-command files owned by uid 1001. The outputs, the step
/// summary, the report in the workspace and the PR comment all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_docker_action_outputs_summary_report_and_comment_land() {
    let Some(img) = image("release") else { return };
    let h = cluster("default").await;
    let api = github_api().await;
    let runner = Runner::new();
    let with = [
        ("workload", "deployment/api".to_string()),
        ("container", "api".into()),
        ("tag", "v2".into()),
        ("timeout", "60s".into()),
        ("kubeconfig", base64(&h.kubeconfig_yaml())),
        // kubesim simulates images by name; no registry holds them.
        ("verify-image", "false".into()),
        ("report-file", "rollguard-report.json".into()),
    ];
    let out = img.run(runner.step(&with, &api.uri(), None)).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_settled_on(&h, "default", "example/api:v2").await;

    let outputs = runner.outputs();
    assert_eq!(outputs["result"], "succeeded", "{outputs:?}");
    assert_eq!(outputs["image"], "example/api:v2");
    assert_eq!(outputs["previous-image"], "example/api:v1");
    assert_eq!(outputs["rolled-back"], "false");
    assert_eq!(outputs["report-file"], "rollguard-report.json");
    assert!(!outputs["revision"].is_empty(), "{outputs:?}");
    let summary = runner.read(&format!("file_commands/{}", runner.summary));
    assert!(
        summary.contains("deployment/api"),
        "step summary: {summary}"
    );
    // The files are still the runner's (appended to, not replaced).
    let meta = std::fs::metadata(runner.host(&format!("file_commands/{}", runner.output))).unwrap();
    assert_eq!(meta.uid(), RUNNER_UID);

    let report: Value = serde_json::from_str(&runner.read("workspace/rollguard-report.json"))
        .expect("the JSON report in the workspace");
    assert_eq!(report["result"], "succeeded", "{report:#}");

    let requests = api.received_requests().await.unwrap();
    let posted: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(posted.len(), 1, "one PR comment");
    assert_eq!(
        posted[0].headers.get("authorization").unwrap(),
        &format!("Bearer {GH_TOKEN}")
    );
    let body: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert!(
        body["body"].as_str().unwrap().contains("<!-- rollguard:"),
        "{body}"
    );
    // The token only in the mask command that hides it from the log.
    let log = out.all();
    let mask = format!("::add-mask::{GH_TOKEN}");
    let leaks: Vec<&str> = log
        .lines()
        .filter(|l| (l.contains(GH_TOKEN) || l.contains(&h.token)) && *l != mask)
        .collect();
    assert!(leaks.is_empty(), "secrets in the log: {leaks:?}");
    h.shutdown().await;
}

/// The same action run as a user other than root (`options: --user`, or a
/// derived image with USER nonroot): the runner's files are not writable,
/// and rollguard says so as a workflow warning naming the file, its owner,
/// its own uid and the fix. The rollout itself goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_action_as_another_uid_warns_that_outputs_cannot_be_written() {
    let Some(img) = image("release") else { return };
    let h = cluster("default").await;
    let runner = Runner::new();
    let with = [
        ("workload", "deployment/api".to_string()),
        ("tag", "v2".into()),
        ("timeout", "60s".into()),
        ("kubeconfig", base64(&h.kubeconfig_yaml())),
        ("verify-image", "false".into()),
        ("github-token", String::new()),
    ];
    let out = img
        .run(runner.step(&with, "http://127.0.0.1:9", Some("nonroot")))
        .await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_settled_on(&h, "default", "example/api:v2").await;
    assert_eq!(runner.read(&format!("file_commands/{}", runner.output)), "");
    let warnings: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning::"))
        .collect();
    for (what, file) in [
        ("GitHub outputs", &runner.output),
        ("GitHub step summary", &runner.summary),
    ] {
        let w = warnings
            .iter()
            .find(|w| w.contains(what))
            .unwrap_or_else(|| panic!("no warning about {what}: {warnings:?}"));
        for needed in [
            format!("/github/file_commands/{file}"),
            "uid 1001".to_string(),
            "rollguard runs as uid 65532".to_string(),
            "run the action's container as root".to_string(),
        ] {
            assert!(w.contains(&needed), "{what} warning lacks {needed:?}: {w}");
        }
    }
    h.shutdown().await;
}

// ---------------------------------------------------------------- GitLab

fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What GitLab's docker executor runs in the job's image when its
/// entrypoint is reset: `sh -c` with a search for a shell, the job script on
/// standard input.
const SHELL_DETECT: &str = "for s in /usr/local/bin/bash /usr/bin/bash /bin/bash \
     /usr/local/bin/sh /usr/bin/sh /bin/sh /busybox/sh; do \
     if [ -x \"$s\" ]; then exec \"$s\"; fi; done; echo shell not found; exit 1";

/// A `script:` job as GitLab Runner generates it for a POSIX shell: the
/// job's variables exported (a File variable written under the project's
/// .tmp directory, its path exported), `cd` into the checkout, then each
/// `script:` line echoed and run under errexit; the job's exit code is the
/// failing line's.
fn gitlab_job_script(
    variables: &[(&str, &str)],
    files: &[(&str, &str)],
    script: &[&str],
) -> Vec<u8> {
    let project = "/builds/acme/api";
    let tmp = format!("{project}.tmp");
    let mut body = String::new();
    for (k, v) in variables {
        body += &format!("export {k}={}\n", sq(v));
    }
    for (k, v) in files {
        body += &format!("mkdir -p {}\n", sq(&tmp));
        body += &format!("printf '%s' {} > {}\n", sq(v), sq(&format!("{tmp}/{k}")));
        body += &format!("export {k}={}\n", sq(&format!("{tmp}/{k}")));
    }
    body += &format!("cd {}\n", sq(project));
    for line in script {
        body += &format!("echo {}\n{line}\n", sq(&format!("$ {line}")));
    }
    format!(
        "trap exit 1 TERM\n\n\
         if set -o | grep pipefail > /dev/null; then set -o pipefail; fi; set -o errexit\n\
         set +o noclobber\n\
         : | eval {}\n\
         exit 0\n",
        sq(&body)
    )
    .into_bytes()
}

/// A YAML file of the repository as JSON.
fn recipe(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
}

/// `$NAME` and `${NAME}` replaced from `vars` (unknown names become empty),
/// as GitLab expands variables and Cloud Build substitutions.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        vars.get(&c[1]).cloned().unwrap_or_default()
    })
    .into_owned()
}

/// The GitLab recipe's `deploy-staging` job (examples/gitlab/.gitlab-ci.yml:
/// its image's `entrypoint: [""]`, variables and `script:`) on the `-shell`
/// image, with the agent's kubeconfig as the File variable KUBECONFIG (two
/// contexts, none current; the recipe's ROLLGUARD_CONTEXT picks one). The
/// commit's tag is missing from the registry: rollguard rolls back, the job
/// exits 1 (what the recipe's `allow_failure: exit_codes: [1]` accepts), the
/// Deployment is back on v1 and healthy, and the report is in the checkout
/// for `artifacts:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_recipe_job_on_the_shell_image_rolls_back_with_exit_1() {
    let Some(img) = image("shell") else { return };
    let ci = recipe("examples/gitlab/.gitlab-ci.yml");
    let base = &ci[".rollguard"];
    let job = &ci["deploy-staging"];
    assert_eq!(job["extends"], ".rollguard");
    assert!(
        base["image"]["name"].as_str().unwrap().ends_with("-shell"),
        "the recipe uses the shell image"
    );
    assert_eq!(base["allow_failure"]["exit_codes"], json!([1]));

    let h = cluster("staging").await;
    let short_sha = "01234567";
    h.set_image_behaviour(&format!("example/api:{short_sha}"), ImageBehaviour::Missing);
    let ca = base64(h.ca_pem.as_deref().unwrap());
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n\
         - name: gitlab\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: agent:11\n  user:\n    token: {token}\n\
         - name: agent:12\n  user:\n    token: not-this-one\n\
         contexts:\n\
         - name: acme/cluster-management:prod-agent\n  context:\n    cluster: gitlab\n    user: agent:11\n\
         - name: acme/cluster-management:staging-agent\n  context:\n    cluster: gitlab\n    user: agent:12\n",
        server = h.base_url,
        token = h.token,
    );
    let mut vars: BTreeMap<String, String> = [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        // Nothing listens there: the recipe's note token is not set here.
        ("CI_SERVER_URL", "http://127.0.0.1:9"),
        ("CI_API_V4_URL", "http://127.0.0.1:9/api/v4"),
        ("CI_PROJECT_ID", "42"),
        ("CI_PROJECT_PATH", "acme/api"),
        ("CI_PROJECT_DIR", "/builds/acme/api"),
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_MERGE_REQUEST_IID", "7"),
        ("CI_JOB_ID", "9001"),
        ("CI_JOB_URL", "http://127.0.0.1:9/acme/api/-/jobs/9001"),
        ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("CI_COMMIT_SHORT_SHA", short_sha),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut job_vars: Vec<(String, String)> = Vec::new();
    for scope in [&base["variables"], &job["variables"]] {
        for (k, v) in scope.as_object().unwrap() {
            let v = expand(v.as_str().unwrap_or_default(), &vars);
            job_vars.retain(|(name, _)| name != k);
            job_vars.push((k.clone(), v));
        }
    }
    // Test-only: kubesim simulates images by name; keep the run short.
    job_vars.push(("ROLLGUARD_VERIFY_IMAGE".into(), "false".into()));
    job_vars.push(("ROLLGUARD_TIMEOUT".into(), "60s".into()));
    for (k, v) in &job_vars {
        vars.insert(k.clone(), v.clone());
    }
    let exported: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let script = support::strs(&base["script"]);
    let builds = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(builds.path().join("acme/api")).unwrap();
    let out = img
        .run(Run {
            entrypoint: Some(strings(&base["image"]["entrypoint"])),
            cmd: Some(vec!["sh".into(), "-c".into(), SHELL_DETECT.into()]),
            volumes: vec![(builds.path().to_path_buf(), "/builds".into())],
            stdin: gitlab_job_script(&exported, &[("KUBECONFIG", &kubeconfig)], &script),
            ..Run::default()
        })
        .await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stdout.contains("$ rollguard"),
        "the job log echoes the script line"
    );
    assert!(
        out.stdout.contains("section_start:"),
        "GitLab's collapsible sections: rollguard saw GITLAB_CI"
    );
    assert_settled_on(&h, "staging", "example/api:v1").await;
    let report_file = &vars["ROLLGUARD_REPORT_FILE"];
    let report = builds.path().join("acme/api").join(report_file);
    assert_report_result(&report, "rolled-back");
    assert!(!out.all().contains(&h.token));
    h.shutdown().await;
}

// ---------------------------------------------------------------- Cloud Build

/// The Cloud Build recipe with a kubeconfig
/// (examples/cloudbuild/cloudbuild-kubeconfig.yaml): its deploy step's
/// `env:` (substitutions applied) and nothing else, the image's entrypoint,
/// workdir /workspace (the build's shared volume, where the recipe's first
/// step wrote the kubeconfig), HOME=/builder/home. The rollout succeeds, the
/// report lands in /workspace, and NO_COLOR keeps the log free of escape
/// codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_build_step_with_a_kubeconfig_from_the_workspace() {
    let Some(img) = image("release") else { return };
    let cb = recipe("examples/cloudbuild/cloudbuild-kubeconfig.yaml");
    let step = cb["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "deploy")
        .expect("a deploy step");
    assert!(step["name"].as_str().unwrap().contains("/rollguard:"));
    let mut subs: BTreeMap<String, String> = cb["substitutions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    subs.insert("SHORT_SHA".into(), "abc1234".into());
    subs.insert("PROJECT_ID".into(), "acme-prod".into());
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), "/builder/home".into()),
        ("BUILDER_OUTPUT".into(), "/builder/outputs".into()),
    ];
    for e in strings(&step["env"]) {
        let (k, v) = e.split_once('=').expect("KEY=VALUE");
        env.push((k.to_string(), expand(v, &subs)));
    }
    // Test-only: kubesim simulates images by name; keep the run short.
    env.push(("ROLLGUARD_VERIFY_IMAGE".into(), "false".into()));
    env.push(("ROLLGUARD_TIMEOUT".into(), "60s".into()));
    let kubeconfig_path = env
        .iter()
        .find(|(k, _)| k == "KUBECONFIG")
        .map(|(_, v)| v.clone())
        .expect("the step names the kubeconfig");
    let in_workspace = kubeconfig_path
        .strip_prefix("/workspace/")
        .expect("the kubeconfig is in /workspace");

    let h = cluster(&subs["_NAMESPACE"]).await;
    let workspace = tempfile::tempdir().unwrap();
    let builder_home = tempfile::tempdir().unwrap();
    let builder_outputs = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join(in_workspace), h.kubeconfig_yaml()).unwrap();
    let out = img
        .run(Run {
            env,
            workdir: Some("/workspace".into()),
            volumes: vec![
                (workspace.path().to_path_buf(), "/workspace".into()),
                (builder_home.path().to_path_buf(), "/builder/home".into()),
                (
                    builder_outputs.path().to_path_buf(),
                    "/builder/outputs".into(),
                ),
            ],
            ..Run::default()
        })
        .await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(!out.all().contains('\x1b'), "NO_COLOR: no escape codes");
    assert_settled_on(&h, &subs["_NAMESPACE"], "example/api:abc1234").await;
    assert_report_result(&workspace.path().join("rollguard-report.json"), "succeeded");
    assert!(!out.all().contains(&h.token));
    h.shutdown().await;
}

// ---------------------------------------------------------------- CronJob

/// The CronJob recipe (examples/cronjob/rollguard.yaml) as the kubelet runs
/// its pod: the image's entrypoint as the pod's runAsUser/runAsGroup
/// (65532, the image's nonroot user) on a read-only root filesystem, the
/// container's `env:`, the service account's token, CA and namespace mounted
/// where in-cluster clients read them, KUBERNETES_SERVICE_HOST/PORT, and
/// only the recipe's Role for that service account. The redeploy of the
/// `:stable` tag succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_recipe_as_nonroot_on_a_read_only_root() {
    let Some(img) = image("release") else { return };
    let text = std::fs::read_to_string(root().join("examples/cronjob/rollguard.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect();
    let role = docs.iter().find(|d| d["kind"] == "Role").expect("a Role");
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    let ns = cron["metadata"]["namespace"].as_str().unwrap().to_string();
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let sa = pod["serviceAccountName"].as_str().unwrap();
    let user = format!(
        "{}:{}",
        pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    let h = cluster(&ns).await;
    let rules = support::role_rules(role, &ns);
    let token = "cronjob-sa-token";
    h.add_identity(&format!("system:serviceaccount:{ns}:{sa}"), token, rules);

    // The projected service account volume: root-owned, world-readable files.
    let secrets = tempfile::tempdir().unwrap();
    mode(secrets.path(), 0o755);
    for (name, content) in [
        ("token", token.to_string()),
        ("ca.crt", h.ca_pem.clone().unwrap()),
        ("namespace", ns.clone()),
    ] {
        let p = secrets.path().join(name);
        std::fs::write(&p, content).unwrap();
        mode(&p, 0o644);
    }
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    env.push(("KUBERNETES_SERVICE_HOST".into(), h.addr.ip().to_string()));
    env.push(("KUBERNETES_SERVICE_PORT".into(), h.addr.port().to_string()));
    // Test-only: kubesim simulates images by name.
    env.push(("ROLLGUARD_VERIFY_IMAGE".into(), "false".into()));
    let out = img
        .run(Run {
            env,
            user: Some(user),
            read_only: true,
            volumes: vec![(
                secrets.path().to_path_buf(),
                "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            )],
            ..Run::default()
        })
        .await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_settled_on(&h, &ns, "example/api:stable").await;
    assert!(!out.all().contains(token));
    h.shutdown().await;
}

/// The runtime above keeps its promises: a read-only root refuses writes
/// while its volumes take them, and the container sees its volumes, not the
/// host's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_runtime_isolates_as_configured() {
    let Some(img) = image("shell") else { return };
    let vol = tempfile::tempdir().unwrap();
    let out = img
        .run(Run {
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![
                "if touch /etc/written 2>/dev/null; then echo root-writable; fi; \
                 echo ok > /data/written && id -u && ls /work 2>&1 | head -1"
                    .into(),
            ]),
            user: Some("0".into()),
            read_only: true,
            volumes: vec![(vol.path().to_path_buf(), "/data".into())],
            ..Run::default()
        })
        .await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(!out.stdout.contains("root-writable"), "{}", out.stdout);
    assert!(!img.path("/etc/written").exists());
    assert_eq!(
        std::fs::read_to_string(vol.path().join("written")).unwrap(),
        "ok\n"
    );
    assert!(
        out.stdout.contains("No such file"),
        "no /work from the host: {}",
        out.stdout
    );
}

// ---------------------------------------------------------------- the image itself

/// The image's CA bundle is where its SSL_CERT_FILE says, holds Debian's
/// roots, and is what rollguard loads: with a kubeconfig that carries no CA,
/// kubesim's certificate (signed by its own test CA) is rejected as an
/// unknown issuer, not for want of roots. Exit 78, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_bundle_is_loaded_and_trusts_only_its_roots() {
    let Some(img) = image("release") else { return };
    let h = cluster("default").await;
    let out = img
        .run(Run {
            env: vec![
                ("ROLLGUARD_KUBECONFIG".into(), kubeconfig_without_ca(&h)),
                ("ROLLGUARD_WORKLOAD".into(), "deployment/api".into()),
                ("ROLLGUARD_TAG".into(), "v2".into()),
                ("ROLLGUARD_VERIFY_IMAGE".into(), "false".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            ..Run::default()
        })
        .await;
    assert_eq!(out.code, Some(78), "{}", out.all());
    let text = out.all();
    assert!(
        text.contains("UnknownIssuer"),
        "kubesim's certificate is checked against the bundle: {text}"
    );
    assert!(!text.contains("No CA certificates were loaded"), "{text}");
    assert_eq!(template_image(&h, "default"), "example/api:v1");
    assert_eq!(deployment(&h, "default")["metadata"]["generation"], 1);
    let env: BTreeMap<String, String> = img.env().into_iter().collect();
    let bundle = env
        .get("SSL_CERT_FILE")
        .expect("the image sets SSL_CERT_FILE");
    let text = std::fs::read_to_string(img.path(bundle))
        .unwrap_or_else(|e| panic!("the CA bundle {bundle}: {e}"));
    let certs = text.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs >= 100, "{bundle} holds {certs} certificates");

    h.shutdown().await;
}

/// What the CI systems rely on in the images' configs: the release image
/// runs rollguard as root (GitHub's requirement) and has no shell; the
/// shell image has busybox's sh on PATH for GitLab's `sh -c`, and the same
/// rollguard; both have a world-writable /tmp and the nonroot user (65532)
/// the CronJob recipe runs as.
#[test]
fn image_configs_fit_the_ci_systems() {
    let Some(release) = image("release") else {
        return;
    };
    let Some(shell) = image("shell") else { return };
    for img in [&release, &shell] {
        assert_eq!(
            strings(&img.config["Entrypoint"]),
            ["/usr/local/bin/rollguard"],
            "{}",
            img.name
        );
        let user = img.config["User"].as_str().unwrap_or("");
        assert!(
            ["", "0", "root", "0:0"].contains(&user),
            "{}: runs as {user}",
            img.name
        );
        let bin = std::fs::metadata(img.path("/usr/local/bin/rollguard")).unwrap();
        assert!(bin.permissions().mode() & 0o111 != 0);
        let tmp = std::fs::metadata(img.path("/tmp")).unwrap();
        assert_eq!(
            tmp.permissions().mode() & 0o7777,
            0o1777,
            "{}: /tmp",
            img.name
        );
        assert_eq!(
            passwd_entry(&img.rootfs, "nonroot").map(|(u, g, _)| (u, g)),
            Some((65532, 65532))
        );
    }
    assert_eq!(
        std::fs::read(release.path("/usr/local/bin/rollguard")).unwrap(),
        std::fs::read(shell.path("/usr/local/bin/rollguard")).unwrap(),
        "one binary in both images"
    );
    for sh in ["/bin/sh", "/usr/bin/sh", "/busybox/sh"] {
        assert!(
            std::fs::symlink_metadata(release.path(sh)).is_err(),
            "the release image has no shell, found {sh}"
        );
    }
    assert!(std::fs::metadata(shell.path("/busybox/sh")).is_ok());
    let path = shell
        .env()
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(path.split(':').any(|d| d == "/busybox"), "PATH={path}");
    assert!(
        path.split(':').any(|d| d == "/usr/local/bin"),
        "PATH={path}"
    );
}
