//! API errors, rendered as real `metav1.Status` objects with upstream reasons,
//! codes and message forms.

use serde_json::{Value, json};

use crate::resources::ResourceType;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429/503 from fault injection).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, rt: &ResourceType, name: &str) -> Self {
        let mut d = json!({ "kind": rt.plural });
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !rt.group.is_empty() {
            d["group"] = json!(rt.group);
        }
        self.details = Some(d);
        self
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", rt.key(), name),
        )
        .with_details(rt, name)
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", rt.key(), name),
        )
        .with_details(rt, name)
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.key(),
                name
            ),
        )
        .with_details(rt, name)
    }

    /// A failed delete precondition: `field` is `UID` or `ResourceVersion`.
    pub fn conflict_precondition(
        rt: &ResourceType,
        name: &str,
        field: &str,
        want: &str,
        have: &str,
    ) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": Precondition failed: {field} in precondition: {want}, {field} in object meta: {have}",
                rt.key(),
                name,
            ),
        )
        .with_details(rt, name)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// An object with neither `metadata.name` nor `metadata.generateName`.
    pub fn name_required(rt: &ResourceType) -> Self {
        Self::invalid(
            rt,
            "",
            &[(
                "metadata.name",
                "Required value: name or generateName is required".into(),
            )],
        )
    }

    pub fn invalid(rt: &ResourceType, name: &str, causes: &[(&str, String)]) -> Self {
        let mut details = json!({"kind": rt.kind, "name": name, "group": rt.group});
        if let Some(d) = details.as_object_mut() {
            d.retain(|_, v| v.as_str().is_some_and(|s| !s.is_empty()));
        }
        let causes: Vec<_> = causes
            .iter()
            .map(|(f, m)| (*f, "FieldValueInvalid", m.clone()))
            .collect();
        Self::invalid_as(&qualified_kind(rt), name, details, &causes)
    }

    /// Watch options the API server rejects (`ListOptions.meta.k8s.io ""
    /// is invalid: …`), each cause a `Forbidden` on its field, as
    /// apimachinery's `validateWatchOptions` reports them.
    pub fn invalid_list_options(causes: &[(&str, String)]) -> Self {
        let details = json!({"group": "meta.k8s.io", "kind": "ListOptions"});
        let causes: Vec<_> = causes
            .iter()
            .map(|(f, m)| (*f, "FieldValueForbidden", format!("Forbidden: {m}")))
            .collect();
        Self::invalid_as("ListOptions.meta.k8s.io", "", details, &causes)
    }

    /// A 422 Invalid: `<kind> "<name>" is invalid: <field>: <message>, …`,
    /// with `details` and its causes (field, reason, message).
    fn invalid_as(
        kind: &str,
        name: &str,
        mut details: Value,
        causes: &[(&str, &str, String)],
    ) -> Self {
        let detail = causes
            .iter()
            .map(|(f, _, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {detail}"),
        );
        details["causes"] = causes
            .iter()
            .map(|(f, r, m)| json!({"reason": r, "message": m, "field": f}))
            .collect();
        e.details = Some(details);
        e
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(secs) = self.retry_after {
            let d = s["details"].as_object().cloned().unwrap_or_default();
            let mut d = Value::Object(d);
            d["retryAfterSeconds"] = json!(secs);
            s["details"] = d;
        }
        s
    }
}

/// "Deployment.apps" or "Pod", as upstream names kinds in Invalid messages.
fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.to_string()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
