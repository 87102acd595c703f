//! Smoke tests of the API server with real kubectl v1.35
//! (`<workspace>/.tools/bin/kubectl`, installed by `.ci/install-tools.sh`).
//! Skipped, with a note, when kubectl is absent.

use std::path::PathBuf;

use kubesim::Config;

fn kubectl_bin() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl");
    p.exists().then_some(p)
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: tempfile::NamedTempFile,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin_file: Option<&str>) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig.path())
            .args(args);
        if let Some(f) = stdin_file {
            cmd.arg("-f").arg(f);
        }
        let out = cmd.output().await.expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_smoke() {
    let Some(bin) = kubectl_bin() else {
        eprintln!(
            "NOTE: kubectl not found at <workspace>/.tools/bin/kubectl; skipping kubectl_smoke"
        );
        return;
    };
    let h = kubesim::start(Config::default()).await.unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    h.write_kubeconfig(kubeconfig.path()).unwrap();
    let k = Kubectl { bin, kubeconfig };

    let ns = k.ok(&["get", "ns"]).await;
    assert!(ns.contains("kube-system"), "{ns}");
    let ar = k.ok(&["api-resources"]).await;
    assert!(
        ar.contains("deployments") && ar.contains("deploy") && ar.contains("apps/v1"),
        "{ar}"
    );
    // Typed create: kubectl sends protobuf.
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=example/web:1",
        "-n",
        "default",
    ])
    .await;
    let d = k.ok(&["get", "deploy", "web", "-o", "json"]).await;
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/web:1"
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let list = k.ok(&["get", "deploy", "-o", "json"]).await;
    assert!(list.contains("\"web\""));
    assert_eq!(
        k.ok(&["auth", "can-i", "patch", "deployments"])
            .await
            .trim(),
        "yes"
    );

    let dir = tempfile::tempdir().unwrap();
    let dep = dir.path().join("d.yaml");
    let write = |image: &str| {
        std::fs::write(
            &dep,
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n    spec:\n      containers:\n      - name: api\n        image: {image}\n      - name: side\n        image: example/side:1\n"
            ),
        )
        .unwrap();
    };
    write("example/api:1");
    let p = dep.to_str().unwrap().to_string();
    k.ok(&["apply", "-f", &p]).await;
    write("example/api:2");
    k.ok(&["apply", "-f", &p]).await;
    let imgs = k
        .ok(&[
            "get",
            "deploy",
            "api",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image} {.metadata.generation}",
        ])
        .await;
    assert_eq!(imgs.trim(), "example/api:2 example/side:1 2");

    let rc = dir.path().join("rc.json");
    std::fs::write(
        &rc,
        r#"{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"api-rc"},"spec":{"replicas":1,"selector":{"name":"api-pods"},"template":{"metadata":{"labels":{"name":"api-pods"}},"spec":{"containers":[{"name":"node-api","image":"example/node-api:1.0.0","ports":[{"containerPort":3000}]}]}}}}"#,
    )
    .unwrap();
    k.ok(&["create", "-f", rc.to_str().unwrap()]).await;
    k.ok(&["scale", "rc", "api-rc", "--replicas=2"]).await;
    let r = k
        .ok(&["get", "rc", "api-rc", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(r.trim(), "2");

    k.ok(&["set", "image", "deploy/web", "web=example/web:2"])
        .await;
    k.ok(&["scale", "deploy/web", "--replicas=0"]).await;
    let (ok, _, err) = k.run(&["get", "deploy", "nope"], None).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{err}"
    );
    h.shutdown().await;
}
