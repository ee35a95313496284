//! The `endpoint` label: one of hearth's own routes, never a client's raw path (which
//! would make the label set unbounded).

const ROUTES: &[&str] = &[
    "/",
    "/health",
    "/ready",
    "/version",
    "/metrics",
    "/stats",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
];

/// The route a request's path belongs to, or "other".
pub fn endpoint_label(path: &str) -> &'static str {
    if let Some(route) = ROUTES.iter().find(|r| **r == path) {
        return route;
    }
    match path.strip_prefix("/v1/models/") {
        // The model name is the client's text: one label for all of them.
        Some(rest) if !rest.is_empty() => "/v1/models/{model}",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_keep_their_path_others_are_other() {
        assert_eq!(
            endpoint_label("/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(endpoint_label("/metrics"), "/metrics");
        assert_eq!(
            endpoint_label("/v1/models/secret-name"),
            "/v1/models/{model}"
        );
        assert_eq!(endpoint_label("/v1/models/"), "other");
        assert_eq!(endpoint_label("/v1/chat/completions/x"), "other");
        assert_eq!(endpoint_label("/what is my prompt"), "other");
    }
}
