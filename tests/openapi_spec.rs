//! The committed `openapi/openapi.json` is exactly what `genesis openapi` prints and what the
//! server serves. Run with `UPDATE_OPENAPI=1` to rewrite the file after an API change.

mod common;

use std::path::Path;

use serde_json::Value;

#[tokio::test]
async fn committed_spec_matches_the_generated_one() {
    let out = common::command()
        .arg("openapi")
        .output()
        .await
        .expect("run genesis openapi");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write spec");
    }
    let committed = std::fs::read_to_string(&path).expect("openapi/openapi.json exists");
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test openapi_spec`"
    );
}

#[tokio::test]
async fn the_served_spec_documents_every_public_route_and_error_status() {
    let app = common::spawn_app().await;
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("get spec")
        .json()
        .await
        .expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    for path in [
        "/healthz",
        "/readyz",
        "/v1/guest/sessions",
        "/v1/guest/chat/{guest_id}",
    ] {
        assert!(paths.contains_key(path), "spec lacks {path}");
    }
    assert!(
        !paths.contains_key("/chat/{guest_id}"),
        "seed aliases stay out of the spec"
    );
    let post = &spec["paths"]["/v1/guest/chat/{guest_id}"]["post"];
    assert_eq!(post["operationId"], "post_guest_message");
    for status in [
        "200", "201", "400", "401", "404", "409", "413", "415", "422", "500", "503",
    ] {
        assert!(
            post["responses"].get(status).is_some(),
            "POST chat lacks {status}"
        );
    }
    // Each operation lists only what it can answer: a read takes no body, so no 413 or 415.
    let get = &spec["paths"]["/v1/guest/chat/{guest_id}"]["get"];
    for status in ["413", "415", "429"] {
        assert!(
            get["responses"].get(status).is_none(),
            "GET chat lists {status}"
        );
    }
    // Credentials are security schemes: Swagger UI's Authorize and generated clients use them.
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("securitySchemes");
    for scheme in ["GuestToken", "GuestBearer", "UserBearer", "AdminBearer"] {
        assert!(schemes.contains_key(scheme), "no {scheme} scheme");
    }
    assert_eq!(schemes["GuestToken"]["name"], "X-Guest-Token");
    // Writing to an unclaimed id needs no token (the empty requirement); reading needs one.
    assert!(
        post["security"]
            .as_array()
            .expect("security")
            .contains(&serde_json::json!({}))
    );
    assert_eq!(get["security"].as_array().map(Vec::len), Some(2));
    // Migration needs both the user's token and the guest's, in one requirement.
    let migrate = &spec["paths"]["/v1/guest/migrate/{guest_id}"]["post"];
    assert_eq!(
        migrate["security"],
        serde_json::json!([{"GuestToken": [], "UserBearer": []}])
    );
    // Search and the semantic cache take a user's token or a guest's: alternatives.
    for (path, method) in [("/v1/search", "get"), ("/v1/cache/lookup", "post")] {
        assert_eq!(
            spec["paths"][path][method]["security"],
            serde_json::json!([{"UserBearer": []}, {"GuestToken": []}, {"GuestBearer": []}]),
            "{path}"
        );
    }
    // Error codes are an enum the client can switch on.
    let codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum");
    assert!(codes.contains(&serde_json::json!("guest_token_required")));
    let docs = app.client.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status(), reqwest::StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
}

#[test]
fn the_readme_lists_every_error_code_with_its_status() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for code in genesis::service::ErrorCode::ALL {
        let status = genesis::api::error::status_of(*code).as_u16();
        let row = format!("| `{}` | {status} |", code.as_str());
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}

#[test]
fn every_method_of_a_path_is_in_the_spec() {
    // A path served by two OpenApi units keeps only one unit's methods in the spec; each path
    // lives in one unit. These paths carry several methods.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("spec")).expect("json");
    for (path, methods) in [
        ("/v1/conversations/{id}", &["delete", "get", "patch"][..]),
        ("/v1/conversations", &["get", "post"]),
        ("/v1/conversations/{id}/messages", &["get", "post"]),
        ("/v1/guest/chat/{guest_id}", &["delete", "get", "post"]),
        ("/v1/users/me", &["delete", "get"]),
    ] {
        let mut found: Vec<&str> = spec["paths"][path]
            .as_object()
            .expect("path in the spec")
            .keys()
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        assert_eq!(found, methods, "{path}");
    }
}

/// The example a request body or response carries: its own, or its schema's.
fn example_of<'a>(spec: &'a Value, media: &'a Value) -> Option<&'a Value> {
    if let Some(example) = media.get("example") {
        return Some(example);
    }
    let reference = media.pointer("/schema/$ref")?.as_str()?;
    let pointer = reference.strip_prefix('#')?;
    spec.pointer(pointer)?.get("example")
}

#[test]
fn every_request_and_response_carries_an_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("spec")).expect("json");
    let mut missing = Vec::new();
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let mut bodies: Vec<(String, &Value)> = Vec::new();
            if let Some(content) = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
            {
                bodies.extend(content.values().map(|m| ("request".to_string(), m)));
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                if let Some(content) = response.get("content").and_then(Value::as_object) {
                    bodies.extend(content.values().map(|m| (status.clone(), m)));
                }
            }
            for (what, media) in bodies {
                seen += 1;
                let Some(example) = example_of(&spec, media) else {
                    missing.push(format!("{method} {path} {what}"));
                    continue;
                };
                // An object's example holds every property its schema requires.
                let schema = match media.pointer("/schema/$ref").and_then(Value::as_str) {
                    Some(r) => spec.pointer(r.trim_start_matches('#')).expect("schema"),
                    None => &media["schema"],
                };
                for required in schema["required"].as_array().into_iter().flatten() {
                    let name = required.as_str().expect("name");
                    assert!(
                        example.get(name).is_some(),
                        "{method} {path} {what}: the example lacks `{name}`: {example}"
                    );
                }
            }
        }
    }
    assert!(seen > 250, "only {seen} bodies found");
    assert!(missing.is_empty(), "no example: {missing:#?}");
}
