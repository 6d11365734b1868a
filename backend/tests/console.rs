//! The console through its router: every endpoint of `console/openapi.json` against the spec,
//! logins, roles, CSRF, the rate limit, hostile names, the pages and the xlsx read back.

mod console_support;

use std::{io::Cursor, sync::Arc};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use calamine::{Reader as _, Xlsx};
use console_support::{Backend, HOSTILE, PASSWORD, Seeded, TestStore, seed};
use dcwatch_backend::console::{self, Console, auth::COOKIE};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Fixture {
    router: Router,
    seeded: Seeded,
    console: Arc<Console>,
    // Last: the store outlives the console's handle on it.
    _store: TestStore,
}

fn fixture(backend: Backend) -> Fixture {
    console_support::off_runtime(|| {
        let store = TestStore::new(backend);
        let seeded = seed(&store);
        let console = console_support::console(&store);
        Fixture {
            router: console::router(Arc::clone(&console)),
            seeded,
            console,
            _store: store,
        }
    })
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A logged-in client: its cookie and CSRF token.
#[derive(Clone, Debug, Default)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    session: Option<&Session>,
    body: Option<(&str, String)>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::HOST, "console.test");
    if let Some(session) = session {
        request = request.header(header::COOKIE, format!("{COOKIE}={}", session.cookie));
        if method == Method::POST && uri.starts_with("/api/") {
            request = request.header("x-csrf-token", &session.csrf);
        }
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some((content_type, body)) => request
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let response = router.clone().oneshot(request).await.expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn login(router: &Router, name: &str) -> Session {
    let answer = call(
        router,
        Method::POST,
        "/api/v1/login",
        None,
        Some((
            "application/json",
            json!({"name": name, "password": PASSWORD}).to_string(),
        )),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let cookie = answer
        .headers
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.starts_with(&format!("{COOKIE}=")));
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let token = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("token");
    Session {
        cookie: token,
        csrf: answer.json()["csrf"].as_str().expect("csrf").to_owned(),
    }
}

fn spec() -> Value {
    serde_json::from_str(include_str!("../console/openapi.json")).expect("the OpenAPI file")
}

/// Checks `value` against a JSON schema of the spec (the subset it uses: $ref, type, required,
/// properties, items, enum, oneOf, additionalProperties).
fn conforms(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(spec, &spec["components"]["schemas"][name], value, at);
    }
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        return if choices
            .iter()
            .any(|choice| conforms(spec, choice, value, at).is_ok())
        {
            Ok(())
        } else {
            Err(format!("{at}: matches no oneOf"))
        };
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} not in {allowed:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let object = value.as_object().ok_or(format!("{at}: not an object"))?;
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    return Err(format!("{at}: no {name}"));
                }
            }
            for (name, member) in object {
                if let Some(property) = schema["properties"].get(name) {
                    conforms(spec, property, member, &format!("{at}.{name}"))?;
                } else if let Some(rest) = schema.get("additionalProperties") {
                    conforms(spec, rest, member, &format!("{at}.{name}"))?;
                }
            }
            Ok(())
        }
        Some("array") => {
            let items = value.as_array().ok_or(format!("{at}: not an array"))?;
            for (index, item) in items.iter().enumerate() {
                conforms(spec, &schema["items"], item, &format!("{at}[{index}]"))?;
            }
            Ok(())
        }
        Some("string") if !value.is_string() => Err(format!("{at}: not a string")),
        Some("integer") if !value.is_u64() && !value.is_i64() => {
            Err(format!("{at}: not an integer"))
        }
        Some("boolean") if !value.is_boolean() => Err(format!("{at}: not a boolean")),
        Some("null") if !value.is_null() => Err(format!("{at}: not null")),
        _ => Ok(()),
    }
}

/// A request for each operation of the spec: its path with the seeded alert's id, query
/// parameters from their examples, a body that fits its schema.
fn operations(spec: &Value, alert: &str) -> Vec<(Method, String, Option<String>, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("methods") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut uri = path.replace("{id}", alert);
            let mut query = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                match parameter["in"].as_str() {
                    Some("path") if name == "id" && path.starts_with("/api/v1/sensors") => {
                        uri = path.replace("{id}", parameter["example"].as_str().expect("example"));
                    }
                    Some("query") => {
                        if let Some(example) = parameter["example"].as_str() {
                            query.push(format!("{name}={}", console::auth::url_encode(example)));
                        }
                    }
                    _ => {}
                }
            }
            if !query.is_empty() {
                uri = format!("{uri}?{}", query.join("&"));
            }
            let body = match path.as_str() {
                "/api/v1/login" => Some(json!({"name": "admin", "password": PASSWORD})),
                "/api/v1/alerts/{id}/close" => {
                    Some(json!({"classification": "BTP", "comment": "pen test", "exclude": false}))
                }
                "/api/v1/alerts/{id}/comments" => Some(json!({"text": "looking"})),
                "/api/v1/alerts/{id}/assign" => Some(json!({"to": "analyst"})),
                _ => None,
            }
            .map(|body| body.to_string());
            out.push((method, uri, body, operation.clone()));
        }
    }
    // Logout last: it ends the session the others use.
    out.sort_by_key(|(_, uri, _, _)| uri.ends_with("/logout"));
    out
}

async fn the_seeded_alerts_are_the_engines_dcsync(backend: Backend) {
    let fixture = fixture(backend);
    assert!(fixture.seeded.activities > 400, "{:?}", fixture.seeded);
    let session = login(&fixture.router, "viewer").await;
    let detail = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{}", fixture.seeded.dcsync),
        Some(&session),
        None,
        &[],
    )
    .await
    .json();
    // The capture: LAB\Administrator on the lab client 10.99.0.2 replicating from the DC
    // 10.99.0.1 with DRSUAPI DsGetNCChanges (testdata/pcaps/adlab/README.md).
    assert_eq!(detail["row"]["type"], "dcsync");
    assert_eq!(detail["row"]["severity"], "HIGH");
    assert_eq!(detail["row"]["status"], "OPEN");
    let entities = detail["row"]["entities"].as_array().expect("entities");
    let has = |role: &str, field: &str, value: &str| {
        entities
            .iter()
            .any(|entity| entity["role"] == role && entity[field] == value)
    };
    assert!(
        has("SOURCE_ACCOUNT", "name", "LAB\\Administrator"),
        "{entities:?}"
    );
    assert!(
        has("SOURCE_COMPUTER", "address", "10.99.0.2"),
        "{entities:?}"
    );
    assert!(
        has("DOMAIN_CONTROLLER", "address", "10.99.0.1"),
        "{entities:?}"
    );
    let evidence = detail["evidence"].as_array().expect("evidence");
    assert!(!evidence.is_empty());
    assert_eq!(
        detail["evidence_missing"], 0,
        "every evidence reference resolves"
    );
    for activity in evidence {
        assert_eq!(activity["protocol"], "dcerpc");
        assert_eq!(
            activity["src"]
                .as_str()
                .map(|src| src.starts_with("10.99.0.2:")),
            Some(true)
        );
        assert!(activity["source_computer"].get("certainty").is_some());
    }
    assert_eq!(detail["history"][0]["event"], "raised");
}

async fn every_operation_of_the_spec_answers_as_the_spec_says(backend: Backend) {
    let fixture = fixture(backend);
    let spec = spec();
    let session = login(&fixture.router, "admin").await;
    let operations = operations(&spec, &fixture.seeded.dcsync);
    assert_eq!(operations.len(), 18, "every operation is walked");
    for (method, uri, body, operation) in operations {
        let answer = call(
            &fixture.router,
            method.clone(),
            &uri,
            Some(&session),
            body.map(|body| ("application/json", body)),
            &[],
        )
        .await;
        let code = answer.status.as_u16().to_string();
        let documented = &operation["responses"][&code];
        assert!(
            documented.is_object(),
            "{method} {uri}: {code} is not documented: {}",
            answer.text()
        );
        assert!(
            answer.status.is_success(),
            "{method} {uri}: {code} {}",
            answer.text()
        );
        let content = &documented["content"];
        if let Some(schema) = content
            .get("application/json")
            .map(|media| &media["schema"])
        {
            conforms(&spec, schema, &answer.json(), &format!("{method} {uri}"))
                .unwrap_or_else(|error| panic!("{error}"));
        } else if let Some(types) = content.as_object() {
            let got = answer
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            assert!(
                types
                    .keys()
                    .any(|expected| got.starts_with(expected.as_str())),
                "{method} {uri}: {got}"
            );
        }
    }
}

async fn nothing_answers_without_a_login(backend: Backend) {
    let fixture = fixture(backend);
    let spec = spec();
    for (method, uri, body, operation) in operations(&spec, &fixture.seeded.dcsync) {
        if uri == "/api/v1/login" {
            continue;
        }
        let answer = call(
            &fixture.router,
            method.clone(),
            &uri,
            None,
            body.map(|body| ("application/json", body)),
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert!(
            operation["responses"]["401"].is_object(),
            "{uri} documents 401"
        );
    }
    for page in [
        "/alerts".to_owned(),
        format!("/alerts/{}", fixture.seeded.dcsync),
        "/accounts?name=LAB%5CAdministrator".to_owned(),
        "/computers?key=10.99.0.2".to_owned(),
        "/sensors".to_owned(),
        "/sensors/vm".to_owned(),
        "/health".to_owned(),
        "/search?q=adm".to_owned(),
    ] {
        let answer = call(&fixture.router, Method::GET, &page, None, None, &[]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{page}");
        let location = answer.headers[header::LOCATION].to_str().expect("location");
        assert!(location.starts_with("/login?next="), "{page}: {location}");
        assert!(!answer.text().contains("10.99.0"), "{page} leaks nothing");
    }
    let forms = [
        format!("/alerts/{}/close", fixture.seeded.dcsync),
        format!("/alerts/{}/comment", fixture.seeded.dcsync),
    ];
    for form in forms {
        let answer = call(
            &fixture.router,
            Method::POST,
            &form,
            None,
            Some((
                "application/x-www-form-urlencoded",
                "classification=TP".to_owned(),
            )),
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{form}");
    }
    let open = call(
        &fixture.router,
        Method::GET,
        "/api/v1/alerts?status=CLOSED",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(open.status, StatusCode::UNAUTHORIZED);
}

async fn cross_site_and_tokenless_posts_are_refused(backend: Backend) {
    let fixture = fixture(backend);
    let session = login(&fixture.router, "analyst").await;
    let close = format!("/api/v1/alerts/{}/close", fixture.seeded.dcsync);
    let body = json!({"classification": "TP"}).to_string();
    let no_token = Session {
        csrf: "0".repeat(64),
        ..session.clone()
    };
    let answer = call(
        &fixture.router,
        Method::POST,
        &close,
        Some(&no_token),
        Some(("application/json", body.clone())),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let answer = call(
            &fixture.router,
            Method::POST,
            &close,
            Some(&session),
            Some(("application/json", body.clone())),
            &[(name, value)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // The page's form: a cross-site post with the cookie but without the form's token.
    let form = format!("/alerts/{}/close", fixture.seeded.dcsync);
    let answer = call(
        &fixture.router,
        Method::POST,
        &form,
        Some(&session),
        Some((
            "application/x-www-form-urlencoded",
            "classification=TP".to_owned(),
        )),
        &[],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "a form without its token"
    );
    let detail = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{}", fixture.seeded.dcsync),
        Some(&session),
        None,
        &[],
    )
    .await
    .json();
    assert_eq!(
        detail["row"]["status"], "OPEN",
        "nothing refused changed it"
    );
    assert!(fixture.console.auth.counters().csrf_refused >= 4);
    // With its token, the same form closes it (303 back to the alert).
    let answer = call(
        &fixture.router,
        Method::POST,
        &form,
        Some(&session),
        Some((
            "application/x-www-form-urlencoded",
            format!(
                "csrf={}&classification=FP&comment=lab&exclude=on",
                session.csrf
            ),
        )),
        &[
            ("origin", "https://console.test"),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    let detail = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{}", fixture.seeded.dcsync),
        Some(&session),
        None,
        &[],
    )
    .await
    .json();
    assert_eq!(detail["row"]["status"], "CLOSED");
    assert_eq!(detail["row"]["classification"], "FP");
    let events: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|entry| entry["event"].as_str())
        .collect();
    assert_eq!(events, ["raised", "closed", "excluded"]);
    let exclusions = call(
        &fixture.router,
        Method::GET,
        "/api/v1/exclusions",
        Some(&session),
        None,
        &[],
    )
    .await
    .json();
    assert_eq!(exclusions[0]["type"], "dcsync");
    // An address is excluded as a one-address subnet (detection matches computers by name).
    assert_eq!(exclusions[0]["kind"], "subnet");
    assert_eq!(exclusions[0]["value"], "10.99.0.2");
}

async fn a_viewer_cannot_change_an_alert(backend: Backend) {
    let fixture = fixture(backend);
    let viewer = login(&fixture.router, "viewer").await;
    let id = &fixture.seeded.dcsync;
    for (path, body) in [
        ("close", json!({"classification": "TP"})),
        ("comments", json!({"text": "mine"})),
        ("assign", json!({"to": "viewer"})),
        ("reopen", json!({})),
    ] {
        let answer = call(
            &fixture.router,
            Method::POST,
            &format!("/api/v1/alerts/{id}/{path}"),
            Some(&viewer),
            Some(("application/json", body.to_string())),
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
    }
    let page = call(
        &fixture.router,
        Method::GET,
        &format!("/alerts/{id}"),
        Some(&viewer),
        None,
        &[],
    )
    .await
    .text();
    assert!(!page.contains("id=\"close\""), "no close form for a viewer");
    assert!(page.contains("Viewers cannot change alerts"));
    let analyst = login(&fixture.router, "analyst").await;
    let page = call(
        &fixture.router,
        Method::GET,
        &format!("/alerts/{id}"),
        Some(&analyst),
        None,
        &[],
    )
    .await
    .text();
    assert!(page.contains("id=\"close\""), "an analyst gets the form");
}

async fn logins_are_rate_limited(backend: Backend) {
    let fixture = fixture(backend);
    let attempt = |password: &'static str| {
        let router = fixture.router.clone();
        async move {
            call(
                &router,
                Method::POST,
                "/api/v1/login",
                None,
                Some((
                    "application/json",
                    json!({"name": "analyst", "password": password}).to_string(),
                )),
                &[],
            )
            .await
        }
    };
    for _ in 0..console::auth::MAX_FAILURES {
        assert_eq!(attempt("wrong").await.status, StatusCode::UNAUTHORIZED);
    }
    let limited = attempt(PASSWORD).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(limited.headers.get(header::SET_COOKIE).is_none());
    // Another user from another address is not held up by it (no Peer in router tests: the
    // client key is the same empty one, so the name's window is what limits here).
    let form = call(
        &fixture.router,
        Method::POST,
        "/login",
        None,
        Some((
            "application/x-www-form-urlencoded",
            format!(
                "name=analyst&password={}",
                console::auth::url_encode(PASSWORD)
            ),
        )),
        &[],
    )
    .await;
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(form.text().contains("Too many failed logins"));
}

async fn the_timeline_filters_and_counts(backend: Backend) {
    let fixture = fixture(backend);
    let session = login(&fixture.router, "viewer").await;
    let get = |uri: String| {
        let router = fixture.router.clone();
        let session = session.clone();
        async move {
            call(&router, Method::GET, &uri, Some(&session), None, &[])
                .await
                .json()
        }
    };
    let ids = |answer: &Value| -> Vec<String> {
        answer["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter_map(|alert| alert["id"].as_str().map(str::to_owned))
            .collect()
    };
    let all = get("/api/v1/alerts".to_owned()).await;
    assert_eq!(all["counts"]["total"], fixture.seeded.alerts);
    assert_eq!(ids(&all).len(), fixture.seeded.alerts);
    assert_eq!(
        all["alerts"][0]["id"],
        fixture.seeded.hostile.as_str(),
        "newest first"
    );
    let ends: Vec<&str> = all["alerts"]
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|a| a["end"].as_str())
        .collect();
    assert!(ends.windows(2).all(|pair| pair[0] >= pair[1]), "{ends:?}");
    // Both captures' attacks: the DCSync twice, the brute force against LAB\carol.
    assert_eq!(all["counts"]["by_type"]["dcsync"], 2);
    assert!(
        all["counts"]["by_type"]["brute_force"].as_u64() >= Some(1),
        "{all}"
    );
    let by_entity = get("/api/v1/alerts?entity=10.99.0.2".to_owned()).await;
    assert!(ids(&by_entity).contains(&fixture.seeded.dcsync));
    assert!(!ids(&by_entity).contains(&fixture.seeded.hostile));
    let carol = get("/api/v1/alerts?entity=carol".to_owned()).await;
    assert!(carol["counts"]["total"].as_u64() >= Some(1));
    for alert in carol["alerts"].as_array().expect("alerts") {
        assert!(
            alert["type"]
                .as_str()
                .is_some_and(|kind| kind.contains("brute_force")),
            "{alert}"
        );
    }
    let high = get("/api/v1/alerts?severity=HIGH&entity=10.99.0.2".to_owned()).await;
    assert_eq!(ids(&high), std::slice::from_ref(&fixture.seeded.dcsync));
    assert_eq!(
        get("/api/v1/alerts?category=CREDENTIAL_ACCESS&type=dcsync&status=OPEN".to_owned()).await["counts"]
            ["total"],
        2
    );
    assert_eq!(
        get("/api/v1/alerts?status=CLOSED".to_owned()).await["counts"]["total"],
        0
    );
    // The hostile copy is an hour after the captures (2026-11-22T00:07Z).
    let late = get("/api/v1/alerts?since=2026-11-22T00:30:00Z".to_owned()).await;
    assert_eq!(ids(&late), std::slice::from_ref(&fixture.seeded.hostile));
    let early = get("/api/v1/alerts?until=2026-11-22T00:30:00Z".to_owned()).await;
    assert!(ids(&early).contains(&fixture.seeded.dcsync));
    assert!(!ids(&early).contains(&fixture.seeded.hostile));
    let page = call(
        &fixture.router,
        Method::GET,
        "/alerts?entity=10.99.0.2",
        Some(&session),
        None,
        &[],
    )
    .await
    .text();
    assert!(page.contains(&format!("data-alert=\"{}\"", fixture.seeded.dcsync)));
    assert!(!page.contains(&format!("data-alert=\"{}\"", fixture.seeded.hostile)));
}

async fn a_hostile_account_name_is_inert_everywhere(backend: Backend) {
    let fixture = fixture(backend);
    let session = login(&fixture.router, "analyst").await;
    let hostile = &fixture.seeded.hostile;
    let account = format!("LAB\\{HOSTILE}");
    let encoded = console::auth::url_encode(&account);
    let pages = [
        "/alerts".to_owned(),
        format!("/alerts/{hostile}"),
        format!("/accounts?name={encoded}"),
        "/computers?key=10.99.0.66".to_owned(),
        format!("/search?q={}", console::auth::url_encode("LAB\\<img")),
    ];
    for page in &pages {
        let answer = call(
            &fixture.router,
            Method::GET,
            page,
            Some(&session),
            None,
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{page}");
        let text = answer.text();
        assert!(!text.contains("<img"), "{page} carries live markup");
        assert!(
            text.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page} shows the name as text"
        );
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(
            policy.contains("default-src 'none'") && !policy.contains("script-src"),
            "{policy}"
        );
    }
    let csv = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/activities.csv?kind=account&key={encoded}"),
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = csv.text();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("time,protocol,type,src,dst,account")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|row| row.contains(&format!("\"LAB\\{HOSTILE}\""))),
        "{rows:?}"
    );
    // In the workbook the name is a string cell, exactly as it is.
    let workbook = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{hostile}/report.xlsx"),
        Some(&session),
        None,
        &[],
    )
    .await;
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(workbook.body)).expect("an xlsx");
    let users = book.worksheet_range("Source User").expect("Source User");
    assert_eq!(
        users.get_value((1, 0)).map(ToString::to_string),
        Some(account.clone())
    );
    let formulas = book.worksheet_formula("Source User").expect("formulas");
    assert!(
        formulas
            .used_cells()
            .all(|(_, _, formula)| formula.is_empty()),
        "no formulas"
    );
}

async fn the_report_has_mdis_tabs_and_cells(backend: Backend) {
    let fixture = fixture(backend);
    let session = login(&fixture.router, "viewer").await;
    let id = &fixture.seeded.dcsync;
    let answer = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{id}/report.xlsx"),
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("disposition")
            .contains(".xlsx")
    );
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(answer.body)).expect("an xlsx");
    assert_eq!(
        book.sheet_names(),
        [
            "Summary",
            "Source Computer",
            "Source User",
            "Domain Controllers",
            "Network Activities",
            "Event Activities",
            "Related Entities"
        ]
    );
    let cell = |range: &calamine::Range<calamine::Data>, row: u32, column: u32| {
        range
            .get_value((row, column))
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let summary = book.worksheet_range("Summary").expect("summary");
    let labels: Vec<String> = (0..8).map(|row| cell(&summary, row, 0)).collect();
    assert_eq!(
        labels,
        [
            "Title",
            "Description",
            "Start Time (UTC)",
            "End Time (UTC)",
            "Severity",
            "Status",
            "Status Update Time (UTC)",
            "View in browser"
        ]
    );
    assert_eq!(
        cell(&summary, 0, 1),
        "Suspected DCSync attack (replication of directory services)"
    );
    assert!(
        cell(&summary, 2, 1).starts_with("2026-11-22T00:07:16"),
        "{}",
        cell(&summary, 2, 1)
    );
    assert_eq!(cell(&summary, 4, 1), "High");
    assert_eq!(cell(&summary, 5, 1), "Open");
    assert_eq!(
        cell(&summary, 7, 1),
        format!("https://console.test/alerts/{id}")
    );
    for (tab, name) in [
        ("Source Computer", "10.99.0.2"),
        ("Source User", "LAB\\Administrator"),
        ("Domain Controllers", "10.99.0.1"),
    ] {
        let range = book.worksheet_range(tab).expect(tab);
        let header: Vec<String> = (0..4).map(|column| cell(&range, 0, column)).collect();
        assert_eq!(header, ["Name", "Details", "Type", "SamName"], "{tab}");
        assert_eq!(cell(&range, 1, 0), name, "{tab}");
    }
    let users = book.worksheet_range("Source User").expect("users");
    assert_eq!(cell(&users, 1, 2), "User");
    assert_eq!(cell(&users, 1, 3), "Administrator");
    let network = book.worksheet_range("Network Activities").expect("network");
    let header: Vec<String> = (0..11).map(|column| cell(&network, 0, column)).collect();
    assert!(header.contains(&"Source Computer Certainty".to_owned()));
    assert!(header.contains(&"Destination Computer Resolution Method".to_owned()));
    let detail = call(
        &fixture.router,
        Method::GET,
        &format!("/api/v1/alerts/{id}"),
        Some(&session),
        None,
        &[],
    )
    .await
    .json();
    let evidence = detail["evidence"].as_array().expect("evidence").len();
    assert_eq!(network.height(), evidence + 1);
    assert_eq!(cell(&network, 1, 1), "dcerpc");
    assert!(cell(&network, 1, 3).starts_with("10.99.0.2:"));
    let related = book.worksheet_range("Related Entities").expect("related");
    assert_eq!(
        (0..5)
            .map(|column| cell(&related, 0, column))
            .collect::<Vec<_>>(),
        [
            "Id",
            "Type",
            "Name",
            "Unique Entity Json",
            "Unique Entity Profile Json"
        ]
    );
    assert_eq!(related.height(), 4, "three entities and the header");
    for row in 1..4 {
        let entity: Value = serde_json::from_str(&cell(&related, row, 3)).expect("entity json");
        assert!(entity.is_object());
        let profile: Value = serde_json::from_str(&cell(&related, row, 4)).expect("profile json");
        assert!(
            profile["activities"]
                .as_u64()
                .is_some_and(|count| count > 0),
            "{profile}"
        );
    }
}

async fn entity_sensor_health_and_search_pages(backend: Backend) {
    let fixture = fixture(backend);
    let session = login(&fixture.router, "viewer").await;
    let get = |uri: &'static str| {
        let router = fixture.router.clone();
        let session = session.clone();
        async move { call(&router, Method::GET, uri, Some(&session), None, &[]).await }
    };
    let account = get("/api/v1/accounts?name=LAB%5CAdministrator")
        .await
        .json();
    let alert_ids = |page: &Value| -> Vec<String> {
        page["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter_map(|alert| alert["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        alert_ids(&account),
        std::slice::from_ref(&fixture.seeded.dcsync)
    );
    let activities = account["activities"].as_array().expect("activities");
    assert!(!activities.is_empty());
    assert!(activities.iter().all(|a| {
        a["account"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case("LAB\\Administrator"))
    }));
    let times: Vec<&str> = activities
        .iter()
        .filter_map(|a| a["time"].as_str())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first"
    );
    let dcerpc = get("/api/v1/accounts?name=LAB%5CAdministrator&protocol=dcerpc")
        .await
        .json();
    assert!(
        dcerpc["activities"]
            .as_array()
            .expect("a")
            .iter()
            .all(|a| a["protocol"] == "dcerpc")
    );
    let computer = get("/api/v1/computers?key=10.99.0.2").await.json();
    assert!(alert_ids(&computer).contains(&fixture.seeded.dcsync));
    assert!(!alert_ids(&computer).contains(&fixture.seeded.hostile));
    let csv = get("/api/v1/activities.csv?kind=computer&key=10.99.0.2&protocol=smb")
        .await
        .text();
    assert!(csv.lines().skip(1).all(|line| line.contains("\"smb\"")));
    assert!(csv.lines().count() > 1);
    let sensors = get("/api/v1/sensors").await.json();
    assert_eq!(sensors[0]["sensor_id"], "vm");
    assert_eq!(sensors[0]["status"], "connected");
    assert_eq!(sensors[0]["open_issues"], 1);
    console_support::off_runtime(|| {
        fixture
            .console
            .data
            .sample_counters(console::data::now_ns())
            .expect("sample");
    });
    let sensor = get("/api/v1/sensors/vm").await.json();
    assert_eq!(sensor["samples"][0]["counters"]["frames"], 120);
    assert_eq!(sensor["health"][0]["kind"], "CAPTURE_LOSS");
    let health = get("/health").await.text();
    assert!(health.contains("ring buffer full: 3 frames lost"));
    // The open issue under "Open issues", the closed one under "Closed issues" with its end.
    let open = health
        .split("<h2>Closed issues</h2>")
        .next()
        .expect("an open part");
    assert!(
        open.contains("Capture network interface is down"),
        "{health}"
    );
    assert!(open.contains("<td>eth1</td>"), "{health}");
    assert!(!open.contains("2.5% of matched frames lost"), "{health}");
    let closed = health
        .split("<h2>Closed issues</h2>")
        .nth(1)
        .and_then(|rest| rest.split("<h2>Events</h2>").next())
        .expect("a closed part");
    assert!(
        closed.contains("Some network traffic could not be analysed"),
        "{health}"
    );
    assert!(closed.contains("<td>closed</td>"), "{health}");
    let search = get("/api/v1/search?q=Adm").await.json();
    assert!(
        search["accounts"]
            .as_array()
            .expect("a")
            .iter()
            .any(|a| a == "LAB\\Administrator"),
        "{search}"
    );
    let search = get("/api/v1/search?q=10.99.0.6").await.json();
    assert_eq!(search["addresses"], json!(["10.99.0.66"]));
    assert_eq!(
        get("/api/v1/sensors/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/api/v1/alerts/nope").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Entity pages read the directory the store holds (here imported from the lab's snapshot, as
/// a sync would store it), as serve loads it: attributes, tags with their reasons, direct and
/// transitive groups; a newer directory shows without a restart.
async fn entity_pages_show_the_stored_directory(backend: Backend) {
    let (_store, (console, source)) = console_support::off_runtime(|| {
        let store = TestStore::new(backend);
        seed(&store);
        let console = console_support::console_with_directory(&store);
        (store, console)
    });
    let router = console::router(console);
    let session = login(&router, "viewer").await;
    let get = |uri: &'static str| {
        let router = router.clone();
        let session = session.clone();
        async move { call(&router, Method::GET, uri, Some(&session), None, &[]).await }
    };
    let tags = |page: &Value| -> Vec<(String, String)> {
        page["directory"]["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|tag| {
                        (
                            tag["name"].as_str().unwrap_or_default().to_owned(),
                            tag["reason"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let administrator = get("/api/v1/accounts?name=LAB%5CAdministrator")
        .await
        .json();
    assert_eq!(
        administrator["directory"]["sid"],
        "S-1-5-21-3865083622-992237312-3860965316-500"
    );
    assert!(
        tags(&administrator).contains(&("sensitive".into(), "member of Domain Admins".into())),
        "{administrator}"
    );
    let direct = administrator["directory"]["groups_direct"]
        .as_array()
        .expect("direct groups");
    assert!(
        direct
            .iter()
            .any(|dn| dn == "CN=Domain Admins,CN=Users,DC=lab,DC=example"),
        "{direct:?}"
    );
    let bob = get("/api/v1/accounts?name=bob").await.json();
    assert_eq!(
        tags(&bob),
        [(
            "dont_req_preauth".to_owned(),
            "userAccountControl DONT_REQ_PREAUTH".to_owned()
        )]
    );
    let dc = get("/api/v1/computers?key=dc1.lab.example").await.json();
    assert!(tags(&dc).iter().any(|(name, _)| name == "dc"), "{dc}");
    let page = get("/accounts?name=LAB%5CAdministrator").await.text();
    assert!(
        page.contains("member of Domain Admins") && page.contains("S-1-5-21-3865083622-"),
        "{page}"
    );

    // A newer directory (here: none) is what the next page shows.
    source.replace(Arc::default());
    let bob = get("/api/v1/accounts?name=bob").await.json();
    assert!(bob["directory"].is_null(), "{bob}");
}

/// Every test above, on SQLite (the `all` role's store) and on PostgreSQL (the `api` role's).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both_stores!(
    the_seeded_alerts_are_the_engines_dcsync,
    every_operation_of_the_spec_answers_as_the_spec_says,
    nothing_answers_without_a_login,
    cross_site_and_tokenless_posts_are_refused,
    a_viewer_cannot_change_an_alert,
    logins_are_rate_limited,
    the_timeline_filters_and_counts,
    a_hostile_account_name_is_inert_everywhere,
    the_report_has_mdis_tabs_and_cells,
    entity_sensor_health_and_search_pages,
    entity_pages_show_the_stored_directory,
);
