//! The simulated Node objects: names, addresses and the Node a kubelet
//! registers with the configured capacity.

use serde_json::{Value, json};

use crate::clock::fmt_time;
use crate::quantity;
use crate::sim::Sim;

/// The kubelet version the simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.36.2";

/// The number of a simulated node (`node-3` → 3); other names hash to 1..=250.
pub fn node_index(name: &str) -> u32 {
    if let Some(n) = name.rsplit('-').next().and_then(|s| s.parse::<u32>().ok())
        && (1..=250).contains(&n)
    {
        return n;
    }
    name.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % 250
        + 1
}

/// The InternalIP of a simulated node.
pub fn node_ip(name: &str) -> String {
    format!("172.18.0.{}", node_index(name) + 1)
}

/// A Node object for a simulated node with the configured capacity.
pub fn node_object(sim: &Sim, name: &str) -> Value {
    let now = fmt_time(sim.clock.now());
    let cfg = &sim.config;
    let cpu = quantity::cpu_millis(&cfg.node_cpu)
        .map_or_else(|| cfg.node_cpu.clone(), quantity::format_cpu);
    let mem = quantity::bytes(&cfg.node_memory)
        .map_or_else(|| cfg.node_memory.clone(), quantity::format_bytes);
    let resources = json!({
        "cpu": cpu,
        "ephemeral-storage": "20Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": mem,
        "pods": cfg.node_pods.to_string(),
    });
    let idx = node_index(name);
    let machine = format!(
        "{:032x}",
        u128::from(idx).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "message": message,
            "reason": reason,
            "status": status,
            "type": type_,
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "kubesim.standard",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "kubesim.standard",
            },
        },
        "spec": {
            "podCIDR": format!("10.244.{idx}.0/24"),
            "podCIDRs": [format!("10.244.{idx}.0/24")],
        },
        "status": {
            "addresses": [
                {"address": node_ip(name), "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ],
            "allocatable": resources,
            "capacity": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": format!("{:032x}", u128::from(idx).wrapping_mul(0x2545_f491_4f6c_dd1d)),
                "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.8.0-kubesim",
                "kubeProxyVersion": "",
                "kubeletVersion": KUBELET_VERSION,
                "machineID": machine,
                "operatingSystem": "linux",
                "osImage": "kubesim (simulated node)",
                "systemUUID": format!("{}-{}-{}-{}-{}", &machine[0..8], &machine[8..12], &machine[12..16], &machine[16..20], &machine[20..32]),
            },
        },
    })
}
