//! Kubeconfig sources → a `kube::Client` and the context's namespace.

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::KubeconfigSource;

/// A problem with the kubeconfig or the connection (exit 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterConfigError(pub String);

/// Install ring as rustls's process-wide crypto provider (once; a second
/// install is harmlessly refused).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Build a client from the kubeconfig source; returns it with the
/// namespace of the chosen context (`default` when it names none).
pub async fn connect(
    source: &KubeconfigSource,
    context: Option<&str>,
) -> Result<(kube::Client, String), ClusterConfigError> {
    install_crypto_provider();
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let err = |what: &str, e: &dyn std::fmt::Display| ClusterConfigError(format!("{what}: {e}"));
    let config = match source {
        KubeconfigSource::Inline(yaml) => {
            let kc = Kubeconfig::from_yaml(yaml).map_err(|e| err("cannot read the kubeconfig input", &e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| err("cannot use the kubeconfig input", &e))?
        }
        KubeconfigSource::Path(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| err(&format!("cannot read kubeconfig file {path}"), &e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| err(&format!("cannot use kubeconfig file {path}"), &e))?
        }
        KubeconfigSource::Infer { kubeconfig_env } => match kubeconfig_env {
            Some(paths) => {
                let mut merged: Option<Kubeconfig> = None;
                for p in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
                    let kc = Kubeconfig::read_from(&p)
                        .map_err(|e| err(&format!("cannot read KUBECONFIG file {}", p.display()), &e))?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m.merge(kc).map_err(|e| err("cannot merge KUBECONFIG files", &e))?,
                    });
                }
                let kc = merged.ok_or_else(|| ClusterConfigError("KUBECONFIG is set but names no file".into()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| err("cannot use KUBECONFIG", &e))?
            }
            None => match Kubeconfig::read() {
                Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| err("cannot use ~/.kube/config", &e))?,
                Err(_) => kube::Config::incluster().map_err(|e| {
                    err(
                        "no kubeconfig: give the kubeconfig input, set KUBECONFIG, or run in a pod with a service account",
                        &e,
                    )
                })?,
            },
        },
    };
    let namespace = config.default_namespace.clone();
    let client =
        kube::Client::try_from(config).map_err(|e| err("cannot build a Kubernetes client", &e))?;
    Ok((client, namespace))
}
