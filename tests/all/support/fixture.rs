//! A kubesim cluster to start and the workloads it starts with:
//! `Fixture::new().speed(1.0).nodes(2).deployment(spec).start().await`
//! returns the running cluster once every Deployment is rolled out.

use std::time::Duration;

use kubesim::Handle;
use kubesim::scenario::ImageBehaviour;
use serde_json::{Value, json};

use super::WAIT;

/// How a cluster starts: kubesim's configuration (HTTPS, 3 nodes of 2 cpu,
/// 25 simulated seconds a real second unless told otherwise) and the
/// Deployments that are rolled out before the tests' own steps.
pub struct Fixture {
    config: kubesim::Config,
    images: Vec<(String, ImageBehaviour)>,
    objects: Vec<Value>,
    deployments: Vec<Value>,
    wait: Duration,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            config: kubesim::Config {
                speed: 25.0,
                ..Default::default()
            },
            images: Vec::new(),
            objects: Vec::new(),
            deployments: Vec::new(),
            wait: WAIT,
        }
    }

    /// A cluster of exactly this kubesim configuration.
    pub fn with_config(config: kubesim::Config) -> Self {
        Self {
            config,
            ..Self::new()
        }
    }

    /// Simulated seconds a real second (1 is real speed).
    pub fn speed(mut self, speed: f64) -> Self {
        self.config.speed = speed;
        self
    }

    pub fn nodes(mut self, nodes: usize) -> Self {
        self.config.nodes = nodes;
        self
    }

    /// Allocatable cpu of every node (a quantity: "2", "1500m").
    pub fn node_cpu(mut self, cpu: &str) -> Self {
        self.config.node_cpu = cpu.into();
        self
    }

    /// A namespace besides `default`.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.config.namespaces.push(ns.to_string());
        self
    }

    /// A cluster autoscaler that may grow the cluster to `max_nodes`.
    pub fn autoscaler(mut self, max_nodes: usize, scale_up_delay: Duration) -> Self {
        self.config.autoscaler = Some(kubesim::AutoscalerConfig {
            max_nodes,
            scale_up_delay,
        });
        self
    }

    /// How the kubelet treats `image`, from the start.
    pub fn image(mut self, image: &str, behaviour: ImageBehaviour) -> Self {
        self.images.push((image.to_string(), behaviour));
        self
    }

    /// How long `start` waits for each Deployment to roll out.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// An object created at start before the Deployments (a Secret, a
    /// ConfigMap, a quota…), not waited on.
    pub fn object(mut self, obj: Value) -> Self {
        self.objects.push(obj);
        self
    }

    /// A Deployment created at start, rolled out before `start` returns.
    pub fn deployment(mut self, obj: impl Into<Value>) -> Self {
        self.deployments.push(obj.into());
        self
    }

    /// The running cluster: the images' behaviours set, the objects
    /// created, every Deployment rolled out.
    pub async fn start(self) -> Handle {
        let h = kubesim::start(self.config).await.expect("kubesim starts");
        for (image, behaviour) in self.images {
            h.set_image_behaviour(&image, behaviour);
        }
        for o in self.objects {
            h.create(o).expect("create object");
        }
        // One after the other, as a person would apply them: each is rolled
        // out before the next is created.
        for d in self.deployments {
            let ns = d["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let name = d["metadata"]["name"]
                .as_str()
                .expect("a named deployment")
                .to_string();
            h.create(d).expect("create deployment");
            assert!(
                h.wait_for(self.wait, |h| rolled_out_in(h, &ns, &name))
                    .await,
                "deployment {name} in {ns} never became ready"
            );
        }
        h
    }
}

/// kubectl's rollout rule on the stored Deployment `name` in `ns`.
pub fn rolled_out_in(h: &Handle, ns: &str, name: &str) -> bool {
    h.get("apps/v1", "Deployment", ns, name)
        .is_some_and(|d| kubesim::rollout_complete(&d))
}

/// The label a Deployment selects its pods by.
#[derive(Clone, Copy, Debug, Default)]
pub enum PodLabel {
    /// `name: <name>-pods`.
    #[default]
    NamePods,
    /// `app: <name>`.
    App,
}

/// A Deployment of one container named as the Deployment (or of
/// `containers`), selecting its pods by `label`.
#[derive(Clone, Debug)]
pub struct DeploymentSpec<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub image: &'a str,
    /// The pod's containers instead of the one of `image`.
    pub containers: Option<Value>,
    pub replicas: i64,
    pub label: PodLabel,
    /// The Deployment carries its pods' label too.
    pub labelled: bool,
    pub min_ready_seconds: Option<i64>,
    pub strategy: Option<Value>,
    /// More fields of the pod spec (imagePullSecrets, initContainers, …).
    pub pod: Value,
}

impl Default for DeploymentSpec<'_> {
    fn default() -> Self {
        Self {
            name: "web",
            namespace: "default",
            image: "example/web:v1",
            containers: None,
            replicas: 1,
            label: PodLabel::NamePods,
            labelled: false,
            min_ready_seconds: None,
            strategy: None,
            pod: Value::Null,
        }
    }
}

impl From<DeploymentSpec<'_>> for Value {
    fn from(s: DeploymentSpec<'_>) -> Value {
        let labels = match s.label {
            PodLabel::NamePods => json!({"name": format!("{}-pods", s.name)}),
            PodLabel::App => json!({"app": s.name}),
        };
        let containers = s
            .containers
            .unwrap_or_else(|| json!([{"name": s.name, "image": s.image}]));
        let mut d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "replicas": s.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": containers}
                }
            }
        });
        if s.labelled {
            d["metadata"]["labels"] = labels;
        }
        if let Some(m) = s.min_ready_seconds {
            d["spec"]["minReadySeconds"] = json!(m);
        }
        if let Some(strategy) = s.strategy {
            d["spec"]["strategy"] = strategy;
        }
        if let Some(extra) = s.pod.as_object() {
            for (k, v) in extra {
                d["spec"]["template"]["spec"][k] = v.clone();
            }
        }
        d
    }
}
