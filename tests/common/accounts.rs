//! Account helpers of `TestApp`: the command line, sign-up, migration, account conversations,
//! and reads of the admin API.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use std::time::Duration;

use super::{TestApp, command};

impl TestApp {
    /// Runs a `genesis` subcommand against this app's data (same environment).
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = command();
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("cli finishes")
            .expect("cli runs")
    }

    /// Signs up a new account: `(user_id, access_token)`.
    pub async fn signup(&self, email: &str) -> (String, String) {
        let resp = self
            .client
            .post(self.url("/v1/auth/signup"))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .expect("signup");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.expect("json");
        (
            body["user"]["id"].as_str().expect("id").to_string(),
            body["access_token"].as_str().expect("token").to_string(),
        )
    }

    /// `POST /v1/guest/migrate/{guest}` with a user token and a guest token.
    pub async fn migrate(
        &self,
        guest_id: &str,
        user_token: &str,
        guest_token: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/v1/guest/migrate/{guest_id}")))
            .bearer_auth(user_token)
            .header("X-Guest-Token", guest_token)
            .send()
            .await
            .expect("migrate");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/conversations` with `body`: the new conversation's id (asserts 201).
    pub async fn new_conversation(&self, access: &str, body: Value) -> String {
        let (status, c) = self
            .authed(Method::POST, "/v1/conversations", access, Some(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c["id"].as_str().expect("id").to_string()
    }

    /// `POST /v1/conversations/{id}/messages` with `body`: the stored message (asserts 201).
    pub async fn add_message(&self, access: &str, id: &str, body: Value) -> Value {
        let path = format!("/v1/conversations/{id}/messages");
        let (status, m) = self.authed(Method::POST, &path, access, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        m
    }

    /// `GET /v1/conversations/{id}/messages`: the first page (asserts 200).
    pub async fn messages(&self, access: &str, id: &str) -> Value {
        let path = format!("/v1/conversations/{id}/messages");
        let (status, page) = self.authed(Method::GET, &path, access, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }

    /// An authenticated request with a JSON body or none.
    pub async fn authed(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with `token` as the admin bearer: status and JSON body (null when none).
    pub async fn admin_get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
