//! `/admin` serves the dashboard from the binary: the page, its script and stylesheet, with a
//! Content-Security-Policy that keeps it on its own origin, and nothing loaded from elsewhere.
//! (The page itself is driven in a browser by `tests/dashboard/dashboard.mjs`, run by CI.)

mod common;

use common::spawn_app;
use reqwest::StatusCode;

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let mut bodies = Vec::new();
    for (path, kind) in [
        ("/admin", "text/html"),
        ("/admin/", "text/html"),
        ("/admin/admin.js", "text/javascript"),
        ("/admin/admin.css", "text/css"),
    ] {
        let resp = app.client.get(app.url(path)).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(policy.contains("connect-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        bodies.push(resp.text().await.expect("body"));
    }
    assert!(bodies[0].contains(r#"<script src="/admin/admin.js" defer></script>"#));
    assert!(bodies[0].contains(r#"href="/admin/admin.css""#));
    for body in &bodies {
        // The one absolute URL is SVG's namespace name, which is never fetched.
        let outside = body
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://");
        assert!(!outside, "an asset names another origin");
    }
    // The token is sent as a header and kept for the tab only, never put in a URL.
    assert!(bodies[2].contains("sessionStorage"));
    assert!(bodies[2].contains(r#"h.Authorization = "Bearer ""#));

    let resp = app
        .client
        .get(app.url("/admin/nothing-here"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
