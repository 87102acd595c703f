//! Just enough of the Kubernetes protobuf encoding to read what kubectl's
//! typed clients send (`kubectl create deployment|namespace|configmap|
//! secret|service|serviceaccount` POST `application/vnd.kubernetes.protobuf`):
//! the `k8s\0` + runtime.Unknown envelope and the fields of those kinds,
//! turned into the JSON the rest of the server works with. Zero values are
//! dropped as Go's `omitempty` would (gogo-proto writes every field).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy)]
enum K {
    Str,
    Int,
    /// An int kept even when zero (a pointer field such as `replicas`).
    IntKeep,
    Bool,
    Msg(&'static str),
    RepStr,
    RepMsg(&'static str),
    MapStr,
    MapBytes,
    MapQuantity,
    IntOrStr,
}

type Fields = &'static [(u64, &'static str, K)];

fn schema(msg: &str) -> Fields {
    use K::*;
    match msg {
        "ObjectMeta" => &[
            (1, "name", Str),
            (2, "generateName", Str),
            (3, "namespace", Str),
            (11, "labels", MapStr),
            (12, "annotations", MapStr),
            (14, "finalizers", RepStr),
        ],
        "Deployment" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("DeploymentSpec")),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", IntKeep),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
            (4, "strategy", Msg("DeploymentStrategy")),
            (5, "minReadySeconds", Int),
            (6, "revisionHistoryLimit", IntKeep),
            (7, "paused", Bool),
            (9, "progressDeadlineSeconds", IntKeep),
        ],
        "LabelSelector" => &[
            (1, "matchLabels", MapStr),
            (2, "matchExpressions", RepMsg("LabelSelectorRequirement")),
        ],
        "LabelSelectorRequirement" => {
            &[(1, "key", Str), (2, "operator", Str), (3, "values", RepStr)]
        }
        "DeploymentStrategy" => &[
            (1, "type", Str),
            (2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
        "RollingUpdateDeployment" => &[(1, "maxUnavailable", IntOrStr), (2, "maxSurge", IntOrStr)],
        "PodTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
        "PodSpec" => &[
            (2, "containers", RepMsg("Container")),
            (3, "restartPolicy", Str),
            (4, "terminationGracePeriodSeconds", IntKeep),
            (6, "dnsPolicy", Str),
            (7, "nodeSelector", MapStr),
            (8, "serviceAccountName", Str),
            (10, "nodeName", Str),
            (19, "schedulerName", Str),
            (20, "initContainers", RepMsg("Container")),
            (24, "priorityClassName", Str),
        ],
        "Container" => &[
            (1, "name", Str),
            (2, "image", Str),
            (3, "command", RepStr),
            (4, "args", RepStr),
            (5, "workingDir", Str),
            (6, "ports", RepMsg("ContainerPort")),
            (7, "env", RepMsg("EnvVar")),
            (8, "resources", Msg("ResourceRequirements")),
            (13, "terminationMessagePath", Str),
            (14, "imagePullPolicy", Str),
        ],
        "ContainerPort" => &[
            (1, "name", Str),
            (2, "hostPort", Int),
            (3, "containerPort", Int),
            (4, "protocol", Str),
            (5, "hostIP", Str),
        ],
        "EnvVar" => &[(1, "name", Str), (2, "value", Str)],
        "ResourceRequirements" => &[(1, "limits", MapQuantity), (2, "requests", MapQuantity)],
        "Service" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ServiceSpec")),
        ],
        "ServiceSpec" => &[
            (1, "ports", RepMsg("ServicePort")),
            (2, "selector", MapStr),
            (3, "clusterIP", Str),
            (4, "type", Str),
            (7, "externalName", Str),
        ],
        "ServicePort" => &[
            (1, "name", Str),
            (2, "protocol", Str),
            (3, "port", Int),
            (4, "targetPort", IntOrStr),
            (5, "nodePort", Int),
        ],
        "ConfigMap" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", MapStr),
            (3, "binaryData", MapBytes),
        ],
        "Secret" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", MapBytes),
            (3, "type", Str),
            (4, "stringData", MapStr),
        ],
        "Namespace" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NamespaceSpec")),
        ],
        "NamespaceSpec" => &[(1, "finalizers", RepStr)],
        "ServiceAccount" => &[(1, "metadata", Msg("ObjectMeta"))],
        "SelfSubjectAccessReview" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("SSARSpec")),
        ],
        "SSARSpec" => &[
            (1, "resourceAttributes", Msg("ResourceAttributes")),
            (2, "nonResourceAttributes", Msg("NonResourceAttributes")),
        ],
        "ResourceAttributes" => &[
            (1, "namespace", Str),
            (2, "verb", Str),
            (3, "group", Str),
            (4, "version", Str),
            (5, "resource", Str),
            (6, "subresource", Str),
            (7, "name", Str),
        ],
        "NonResourceAttributes" => &[(1, "path", Str), (2, "verb", Str)],
        "SelfSubjectRulesReview" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("SSRRSpec")),
        ],
        "SSRRSpec" => &[(1, "namespace", Str)],
        "TypeMeta" => &[(1, "apiVersion", Str), (2, "kind", Str)],
        _ => &[],
    }
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut r = 0u64;
        let mut shift = 0;
        loop {
            let c = *self.b.get(self.i).ok_or_else(|| bad("truncated varint"))?;
            self.i += 1;
            r |= u64::from(c & 0x7f) << shift;
            if c < 0x80 {
                return Ok(r);
            }
            shift += 7;
            if shift > 63 {
                return Err(bad("varint too long"));
            }
        }
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let n = self.varint()? as usize;
        let end = self
            .i
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| bad("truncated field"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    /// (field number, wire type); None at the end.
    fn next(&mut self) -> ApiResult<Option<(u64, u64)>> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }

    fn skip(&mut self, wire: u64) -> ApiResult<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.i += 8;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.i += 4;
                Ok(())
            }
            _ => Err(bad("unsupported wire type")),
        }
    }
}

fn str_of(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8"))
}

/// A map entry (key 1, value 2) with a string or bytes value.
fn entry(b: &[u8]) -> ApiResult<(String, Vec<u8>)> {
    let mut r = Reader { b, i: 0 };
    let (mut k, mut v) = (String::new(), Vec::new());
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, 2) => k = str_of(r.bytes()?)?,
            (2, 2) => v = r.bytes()?.to_vec(),
            _ => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn message(b: &[u8], name: &str) -> ApiResult<Value> {
    let fields = schema(name);
    let mut out = Map::new();
    let mut r = Reader { b, i: 0 };
    while let Some((f, w)) = r.next()? {
        let Some((_, json_name, kind)) = fields.iter().find(|(n, _, _)| *n == f) else {
            r.skip(w)?;
            continue;
        };
        let key = json_name.to_string();
        match (kind, w) {
            (K::Str, 2) => {
                let s = str_of(r.bytes()?)?;
                if !s.is_empty() {
                    out.insert(key, json!(s));
                }
            }
            (K::Int, 0) => {
                let v = r.varint()? as i64;
                if v != 0 {
                    out.insert(key, json!(v as i32));
                }
            }
            (K::IntKeep, 0) => {
                let v = r.varint()? as i64;
                out.insert(key, json!(v));
            }
            (K::Bool, 0) => {
                if r.varint()? != 0 {
                    out.insert(key, json!(true));
                }
            }
            (K::Msg(m), 2) => {
                let v = message(r.bytes()?, m)?;
                if v.as_object().is_some_and(|o| !o.is_empty())
                    || matches!(*m, "ResourceRequirements")
                {
                    out.insert(key, v);
                }
            }
            (K::RepStr, 2) => {
                let s = str_of(r.bytes()?)?;
                if let Some(a) = out.entry(key).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(s));
                }
            }
            (K::RepMsg(m), 2) => {
                let v = message(r.bytes()?, m)?;
                if let Some(a) = out.entry(key).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(v);
                }
            }
            (K::MapStr | K::MapBytes | K::MapQuantity, 2) => {
                let (k, v) = entry(r.bytes()?)?;
                let val = match kind {
                    K::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(&v)),
                    K::MapQuantity => {
                        // Quantity { string = 1 }
                        let (_, q) = entry(&v).unwrap_or_default();
                        json!(str_of(&q).unwrap_or_default())
                    }
                    _ => json!(str_of(&v)?),
                };
                if let Some(m) = out.entry(key).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, val);
                }
            }
            (K::IntOrStr, 2) => {
                let mut ir = Reader {
                    b: r.bytes()?,
                    i: 0,
                };
                let (mut ty, mut iv, mut sv) = (0, 0i64, String::new());
                while let Some((f, w)) = ir.next()? {
                    match (f, w) {
                        (1, 0) => ty = ir.varint()?,
                        (2, 0) => iv = ir.varint()? as i64,
                        (3, 2) => sv = str_of(ir.bytes()?)?,
                        _ => ir.skip(w)?,
                    }
                }
                out.insert(key, if ty == 1 { json!(sv) } else { json!(iv) });
            }
            _ => r.skip(w)?,
        }
    }
    Ok(Value::Object(out))
}

/// Decode a `application/vnd.kubernetes.protobuf` body into JSON.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("missing k8s envelope"))?;
    let mut r = Reader { b: rest, i: 0 };
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, 2) => type_meta = message(r.bytes()?, "TypeMeta")?,
            (2, 2) => raw = r.bytes()?,
            _ => r.skip(w)?,
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    if schema(&kind).is_empty() {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("kubesim cannot decode protobuf for kind {kind:?}; send application/json"),
        ));
    }
    let mut obj = message(raw, &kind)?;
    obj["apiVersion"] = type_meta["apiVersion"].clone();
    obj["kind"] = json!(kind);
    Ok(obj)
}
