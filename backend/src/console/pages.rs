//! The HTML pages: server-rendered, no script; forms post back and redirect (303) to the page
//! they changed.

use axum::{
    Extension, Form, Router,
    extract::{Path, Query, State as Shared},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::{
    Peer, State,
    api::{self, ApiError, CloseRequest, EntityQuery, LoginError, SearchQuery, blocking},
    auth::{self, Refusal, User, url_encode},
    data::{self, AlertFilter, EntityPage, MAX_ROWS},
    html::{
        TableName, activity_table, alert_table, entity_href, entity_link, page, severity_badge,
        status_badge, table,
    },
};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/static/console.css", get(stylesheet))
        .route("/", get(|| async { Redirect::to("/alerts") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/alerts", get(timeline))
        .route("/alerts/{id}", get(alert))
        .route("/alerts/{id}/close", post(close))
        .route("/alerts/{id}/reopen", post(reopen))
        .route("/alerts/{id}/comment", post(comment))
        .route("/alerts/{id}/assign", post(assign))
        .route("/accounts", get(account))
        .route("/computers", get(computer))
        .route("/sensors", get(sensors))
        .route("/sensors/{id}", get(sensor))
        .route("/health", get(health))
        .route("/search", get(search))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        crate::console::html::STYLESHEET,
    )
}

/// A page that failed: its status and a sentence.
fn failure(user: Option<&User>, error: ApiError) -> Response {
    let (status, message) = match error {
        ApiError::NotFound => (StatusCode::NOT_FOUND, "Not found.".to_owned()),
        ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
        ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_owned()),
        ApiError::Internal(why) => (StatusCode::INTERNAL_SERVER_ERROR, why),
    };
    let body = html! { h1 { "Error" } p.error { (message) } };
    (status, Html(page("Error", user, &body).into_string())).into_response()
}

/// Where a login may send the browser: a path on this site only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next.to_owned()
        }
        _ => "/alerts".to_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn login_page(next: &str, error: Option<&str>) -> Markup {
    let body = html! {
        div.login.panel {
            h1 { "Log in" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Name" input #name type="text" name="name" autocomplete="username" required autofocus; }
                label { "Password" input #password type="password" name="password" autocomplete="current-password" required; }
                button #login type="submit" { "Log in" }
            }
        }
    };
    page("Log in", None, &body)
}

async fn login_form(Query(query): Query<LoginQuery>) -> Html<String> {
    Html(login_page(&safe_next(query.next.as_deref()), None).into_string())
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    Shared(state): Shared<State>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let result = api::try_login(
        &state,
        &headers,
        peer.map(|Extension(peer)| peer),
        &form.name,
        &form.password,
    )
    .await;
    let (status, message) = match result {
        Ok((token, _)) => {
            return (
                [(header::SET_COOKIE, auth::session_cookie(&token))],
                Redirect::to(&next),
            )
                .into_response();
        }
        Err(LoginError::Wrong) => (StatusCode::UNAUTHORIZED, "Wrong name or password."),
        Err(LoginError::Limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins; try again in a few minutes.",
        ),
        Err(LoginError::CrossSite) => (StatusCode::FORBIDDEN, "Cross-site login refused."),
        Err(LoginError::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "The store failed."),
    };
    (status, Html(login_page(&next, Some(message)).into_string())).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    Shared(state): Shared<State>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    user.check_form(&state, &form.csrf)?;
    if let Some(token) = auth::cookie_token(&headers) {
        state.auth.end(&token);
    }
    Ok((
        [(header::SET_COOKIE, auth::expired_cookie())],
        Redirect::to("/login"),
    )
        .into_response())
}

fn select(name: &str, label: &str, options: &[&str], chosen: Option<&String>) -> Markup {
    let chosen = chosen.map_or("", String::as_str);
    html! {
        label { (label)
            select name=(name) id={ "filter-" (name) } {
                option value="" { "Any" }
                @for option in options {
                    option value=(option) selected[*option == chosen] { (option) }
                }
            }
        }
    }
}

async fn timeline(
    Shared(state): Shared<State>,
    user: User,
    Query(filter): Query<AlertFilter>,
) -> Response {
    let query = filter.clone();
    let timeline = match blocking(&state, move |data| data.timeline(&query)).await {
        Ok(timeline) => timeline,
        Err(error) => return failure(Some(&user), error),
    };
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    let types: Vec<&str> = timeline.counts.by_type.keys().map(String::as_str).collect();
    let body = html! {
        h1 { "Alerts" }
        form.filters method="get" action="/alerts" {
            (select("status", "Status", &["OPEN", "CLOSED"], filter.status.as_ref()))
            (select("severity", "Severity", &["HIGH", "MEDIUM", "LOW"], filter.severity.as_ref()))
            (select("category", "Category", &["RECONNAISSANCE", "CREDENTIAL_ACCESS", "LATERAL_MOVEMENT", "PERSISTENCE", "OTHER"], filter.category.as_ref()))
            label { "Type" input #filter-type type="text" name="type" list="types" value=(text(filter.type_name.as_ref())); }
            datalist #types { @for name in &types { option value=(name); } }
            label { "Entity" input #filter-entity type="text" name="entity" value=(text(filter.entity.as_ref())); }
            label { "Since (UTC)" input type="text" name="since" placeholder="2026-12-01T00:00:00Z" value=(text(filter.since.as_ref())); }
            label { "Until (UTC)" input type="text" name="until" value=(text(filter.until.as_ref())); }
            button #apply type="submit" { "Filter" }
            a href="/alerts" { "Clear" }
        }
        p.counts {
            span #count-total { strong { (timeline.counts.total) } " alerts" }
            @for (status, count) in &timeline.counts.by_status { span { (status) ": " (count) } }
            @for (severity, count) in &timeline.counts.by_severity { span { (severity) ": " (count) } }
        }
        @if timeline.truncated { p { "Showing the newest " (MAX_ROWS) "; narrow the filters to see the rest." } }
        (alert_table(&timeline.alerts))
    };
    Html(page("Alerts", Some(&user), &body).into_string()).into_response()
}

async fn alert(Shared(state): Shared<State>, user: User, Path(id): Path<String>) -> Response {
    let key = id.clone();
    let detail = match blocking(&state, move |data| data.alert_detail(&key)).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return failure(Some(&user), ApiError::NotFound),
        Err(error) => return failure(Some(&user), error),
    };
    let row = &detail.row;
    let alert = &detail.alert;
    let id_path = url_encode(&row.id);
    let relied: Vec<String> = alert
        .get("relied_on")
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let details: Vec<(String, String)> = alert
        .get("details")
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let field = |name: &str| {
                        item.get(name)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (field("name"), field("value"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mitre: Vec<&str> = alert
        .get("mitre")
        .and_then(|v| v.as_array())
        .map(|items| items.iter().filter_map(|i| i.as_str()).collect())
        .unwrap_or_default();
    let mut story: Vec<(String, String)> = Vec::new();
    story.push((
        row.start.clone(),
        format!("First evidence: {}", row.description),
    ));
    for entry in &detail.history {
        let text = match entry.event.as_str() {
            "raised" => "Alert raised".to_owned(),
            "closed" => format!(
                "Closed as {} by {}: {}",
                entry.classification, entry.actor, entry.text
            ),
            "comment" => format!("{} commented: {}", entry.actor, entry.text),
            "assigned" => format!("{} assigned it to {}", entry.actor, entry.text),
            other => format!("{other} by {}: {}", entry.actor, entry.text),
        };
        story.push((entry.time.clone(), text));
    }
    story.push((
        row.end.clone(),
        format!("Latest evidence ({} in all)", row.count),
    ));
    story.sort_by(|a, b| a.0.cmp(&b.0));
    let may_change = user.may_change();
    let body = html! {
        h1 { (severity_badge(&row.severity)) " " (row.title) }
        p #description { (row.description) }
        div.panel {
            dl.attributes {
                dt { "Status" } dd #status { (status_badge(&row.status, &row.classification)) }
                dt { "Assigned to" } dd #assigned { @if detail.assigned_to.is_empty() { "nobody" } @else { (detail.assigned_to) } }
                dt { "Type" } dd { (row.type_name) }
                dt { "Category" } dd { (row.category) }
                dt { "MITRE ATT&CK" } dd { (mitre.join(", ")) }
                dt { "First / last activity (UTC)" } dd { (row.start) " – " (row.end) }
                dt { "Evidence" } dd { (row.count) }
            }
            p { a #report href={ "/api/v1/alerts/" (id_path) "/report.xlsx" } { "Download the report (xlsx)" } }
        }
        h2 { "What happened" }
        ol.story { @for (time, text) in &story { li { span.nnr { (time) } " " (text) } } }
        h2 { "Entities" }
        (table(TableName::Class("entities"), &["Role", "Entity", "Name resolution"], &row.entities, |entity| html! {
            tr { td { (entity.role) } td { (entity_link(entity)) } td { (entity.certainty) " " (entity.method) } }
        }))
        @if !details.is_empty() || !relied.is_empty() {
            h2 { "Details" }
            ul {
                @for (name, value) in &details { li { (name) ": " (value) } }
                @for reason in &relied { li { "Relied on " (reason) } }
            }
        }
        h2 { "Evidence" }
        @if detail.evidence_missing > 0 { p { (detail.evidence_missing) " pieces of evidence are no longer in the store." } }
        (activity_table(&detail.evidence))
        h2 { "Status" }
        @if may_change {
            div.panel {
                @if row.status == "OPEN" {
                    form #close method="post" action={ "/alerts/" (id_path) "/close" } {
                        input type="hidden" name="csrf" value=(user.csrf);
                        label { "Classification "
                            select #classification name="classification" {
                                option value="TP" { "True positive" }
                                option value="BTP" { "Benign true positive" }
                                option value="FP" { "False positive" }
                            }
                        }
                        " "
                        label { "Comment " input #close-comment type="text" name="comment"; }
                        " "
                        label { input #exclude type="checkbox" name="exclude" value="on"; " and exclude the source from this detection" }
                        " "
                        button #close-button type="submit" { "Close" }
                    }
                } @else {
                    form method="post" action={ "/alerts/" (id_path) "/reopen" } {
                        input type="hidden" name="csrf" value=(user.csrf);
                        button #reopen type="submit" { "Reopen" }
                    }
                }
                form method="post" action={ "/alerts/" (id_path) "/assign" } {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label { "Assign to " input type="text" name="to" value=(detail.assigned_to); }
                    " " button type="submit" { "Assign" }
                }
            }
        } @else {
            p { "Viewers cannot change alerts." }
        }
        h2 { "Comments and history" }
        (table(TableName::Id("history"), &["Time (UTC)", "Event", "By", "Classification", "Text"], &detail.history, |entry| html! {
            tr { td { (entry.time) } td { (entry.event) } td { (entry.actor) } td { (entry.classification) } td { (entry.text) } }
        }))
        @if may_change {
            form #comment method="post" action={ "/alerts/" (id_path) "/comment" } {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Comment " input #comment-text type="text" name="text" required; }
                " " button type="submit" { "Add" }
            }
        }
    };
    Html(page(&row.title, Some(&user), &body).into_string()).into_response()
}

#[derive(Debug, Deserialize)]
struct CloseForm {
    #[serde(default)]
    csrf: String,
    classification: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    exclude: Option<String>,
}

fn back_to(id: &str) -> Response {
    Redirect::to(&format!("/alerts/{}", url_encode(id))).into_response()
}

/// A form's change to alert `id`: refused without the session's CSRF token, made otherwise, then
/// back to the alert's page.
async fn change_alert(
    state: &State,
    user: &User,
    csrf: &str,
    id: &str,
    change: impl Future<Output = Result<(), ApiError>>,
) -> Response {
    if let Err(refusal) = user.check_form(state, csrf) {
        return refusal.into_response();
    }
    match change.await {
        Ok(()) => back_to(id),
        Err(error) => failure(Some(user), error),
    }
}

async fn close(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<CloseForm>,
) -> Response {
    let request = CloseRequest {
        classification: form.classification,
        comment: form.comment,
        exclude: form.exclude.is_some(),
    };
    let change = api::close_alert(&state, &user, id.clone(), request);
    change_alert(&state, &user, &form.csrf, &id, change).await
}

async fn reopen(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let change = api::reopen_alert(&state, &user, id.clone());
    change_alert(&state, &user, &form.csrf, &id, change).await
}

#[derive(Debug, Deserialize)]
struct TextForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    to: String,
}

async fn comment(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Response {
    let change = api::add_history(&state, &user, id.clone(), "comment", &form.text);
    change_alert(&state, &user, &form.csrf, &id, change).await
}

async fn assign(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Response {
    let change = api::add_history(&state, &user, id.clone(), "assigned", &form.to);
    change_alert(&state, &user, &form.csrf, &id, change).await
}

fn entity_body(entity: &EntityPage, query: &EntityQuery) -> Markup {
    let kind = entity.kind;
    let key_field = if kind == "account" { "name" } else { "key" };
    let csv = format!(
        "/api/v1/activities.csv?kind={kind}&key={}&protocol={}&type={}&since={}&until={}",
        url_encode(&entity.key),
        url_encode(query.filter.protocol.as_deref().unwrap_or_default()),
        url_encode(query.filter.kind.as_deref().unwrap_or_default()),
        url_encode(query.filter.since.as_deref().unwrap_or_default()),
        url_encode(query.filter.until.as_deref().unwrap_or_default()),
    );
    let action = if kind == "account" {
        "/accounts"
    } else {
        "/computers"
    };
    html! {
        h1 { @if kind == "account" { "Account " } @else { "Computer " } span #entity-name { (entity.key) } }
        h2 { "Directory" }
        @match &entity.directory {
            Some(directory) => {
                div.panel {
                    dl.attributes {
                        dt { "Distinguished name" } dd { (directory.dn) }
                        dt { "SID" } dd { (directory.sid) }
                        dt { "sAMAccountName" } dd { (directory.sam_account_name) }
                        @if !directory.upn.is_empty() { dt { "UPN" } dd { (directory.upn) } }
                        @if !directory.dns_host_name.is_empty() { dt { "DNS name" } dd { (directory.dns_host_name) } }
                        @if !directory.operating_system.is_empty() { dt { "Operating system" } dd { (directory.operating_system) } }
                        dt { "Account control" } dd { (directory.uac.join(", ")) }
                        @if !directory.spns.is_empty() { dt { "SPNs" } dd { (directory.spns.join(", ")) } }
                        dt { "adminCount" } dd { (directory.admin_count) }
                    }
                    h2 { "Tags" }
                    ul #tags { @for tag in &directory.tags { li { strong { (tag.name) } ": " (tag.reason) } } }
                    h2 { "Groups" }
                    h3 { "Direct" }
                    ul #groups-direct { @for group in &directory.groups_direct { li { (group) } } }
                    h3 { "Direct and through nesting" }
                    ul #groups-transitive { @for group in &directory.groups_transitive { li { (group) } } }
                }
            }
            None => { p { "The stored directory does not know it (no sensor synced its domain, none was imported, or it is not in it)." } }
        }
        @if !entity.alert_tags.is_empty() {
            h2 { "Tags seen in alerts" }
            ul { @for tag in &entity.alert_tags { li { strong { (tag.name) } ": " (tag.reason) } } }
        }
        @if !entity.addresses.is_empty() { p { "Addresses: " (entity.addresses.join(", ")) } }
        h2 { "Alerts" }
        (alert_table(&entity.alerts))
        h2 { "Activities" }
        form.filters method="get" action=(action) {
            input type="hidden" name=(key_field) value=(entity.key);
            label { "Protocol" input #filter-protocol type="text" name="protocol" value=(query.filter.protocol.clone().unwrap_or_default()); }
            label { "Type" input type="text" name="type" value=(query.filter.kind.clone().unwrap_or_default()); }
            label { "Since (UTC)" input type="text" name="since" value=(query.filter.since.clone().unwrap_or_default()); }
            label { "Until (UTC)" input type="text" name="until" value=(query.filter.until.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
            a #csv href=(csv) { "Export CSV" }
        }
        @if entity.activities_truncated { p { "Showing the newest " (MAX_ROWS) "; the CSV export holds more." } }
        (activity_table(&entity.activities))
    }
}

async fn entity_page(state: State, user: User, kind: &'static str, query: EntityQuery) -> Response {
    let key = if kind == "account" {
        query.name.clone()
    } else {
        query.key.clone()
    };
    if key.trim().is_empty() {
        return failure(
            Some(&user),
            ApiError::BadRequest("which entity?".to_owned()),
        );
    }
    let filter = query.filter.clone();
    let entity = match blocking(&state, move |data| {
        data.entity(kind, &key, &filter, MAX_ROWS)
    })
    .await
    {
        Ok(entity) => entity,
        Err(error) => return failure(Some(&user), error),
    };
    let title = entity.key.clone();
    Html(page(&title, Some(&user), &entity_body(&entity, &query)).into_string()).into_response()
}

async fn account(
    Shared(state): Shared<State>,
    user: User,
    Query(query): Query<EntityQuery>,
) -> Response {
    entity_page(state, user, "account", query).await
}

async fn computer(
    Shared(state): Shared<State>,
    user: User,
    Query(query): Query<EntityQuery>,
) -> Response {
    entity_page(state, user, "computer", query).await
}

fn health_table(rows: &[data::HealthRow]) -> Markup {
    let headings = [
        "Start (UTC)",
        "End (UTC)",
        "Sensor",
        "Severity",
        "Issue",
        "About",
        "Detail",
        "State",
    ];
    table(TableName::Class("health"), &headings, rows, |row| {
        html! {
            tr {
                td { (row.time) } td { (row.end) }
                td { a href={ "/sensors/" (url_encode(&row.sensor_id)) } { (row.sensor_id) } }
                td { (row.severity) }
                td { (issue_title(&row.kind)) }
                td { (row.subject) } td { (row.message) } td { (row.state) }
            }
        }
    })
}

/// A known issue kind's title for people; an event's (or a newer sensor's) kind as sent.
fn issue_title(kind: &str) -> String {
    dcwatch_telemetry::health::IssueKind::from_name(kind)
        .map_or_else(|| kind.to_owned(), |kind| kind.title().to_owned())
}

async fn sensors(Shared(state): Shared<State>, user: User) -> Response {
    let sensors = match blocking(&state, data::Data::sensors).await {
        Ok(sensors) => sensors,
        Err(error) => return failure(Some(&user), error),
    };
    let headings = [
        "Sensor",
        "Status",
        "Version",
        "Last seen (UTC)",
        "Batches stored",
        "Open health issues",
    ];
    let body = html! {
        h1 { "Sensors" }
        (table(TableName::Id("sensors"), &headings, &sensors, |sensor| html! {
            tr {
                td { a href={ "/sensors/" (url_encode(&sensor.sensor_id)) } { (sensor.sensor_id) } }
                td { (sensor.status) } td { (sensor.version) } td { (sensor.last_seen) }
                td { (sensor.stored_through) } td { (sensor.open_issues) }
            }
        }))
    };
    Html(page("Sensors", Some(&user), &body).into_string()).into_response()
}

async fn sensor(Shared(state): Shared<State>, user: User, Path(id): Path<String>) -> Response {
    let view = match api::sensor_page(&state, id).await {
        Ok(view) => view,
        Err(error) => return failure(Some(&user), error),
    };
    let names: Vec<String> = view
        .sensor
        .counters
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    let headings: Vec<&str> = std::iter::once("Time (UTC)")
        .chain(names.iter().map(String::as_str))
        .collect();
    let body = html! {
        h1 { "Sensor " (view.sensor.sensor_id) }
        div.panel { dl.attributes {
            dt { "Status" } dd { (view.sensor.status) }
            dt { "Version" } dd { (view.sensor.version) }
            dt { "Last seen (UTC)" } dd { (view.sensor.last_seen) }
            dt { "Open health issues" } dd { (view.sensor.open_issues) }
        } }
        h2 { "Counters over time" }
        @if view.samples.is_empty() { p { "No samples yet (one a minute while the console runs)." } }
        @else {
            (table(TableName::Class("counters"), &headings, &view.samples, |sample| html! {
                tr { td { (sample.time) } @for name in &names { td { (sample.counters.get(name).map(ToString::to_string).unwrap_or_default()) } } }
            }))
        }
        h2 { "Health" }
        (health_table(&view.health))
    };
    Html(page("Sensor", Some(&user), &body).into_string()).into_response()
}

async fn health(Shared(state): Shared<State>, user: User) -> Response {
    let rows = match blocking(&state, |data| data.health(None)).await {
        Ok(rows) => rows,
        Err(error) => return failure(Some(&user), error),
    };
    let of = |state: &str| -> Vec<data::HealthRow> {
        rows.iter()
            .filter(|row| row.state == state)
            .cloned()
            .collect()
    };
    let body = html! {
        h1 { "Health" }
        h2 { "Open issues" }
        (health_table(&of("open")))
        h2 { "Closed issues" }
        (health_table(&of("closed")))
        h2 { "Events" }
        (health_table(&of("event")))
    };
    Html(page("Health", Some(&user), &body).into_string()).into_response()
}

async fn search(
    Shared(state): Shared<State>,
    user: User,
    Query(query): Query<SearchQuery>,
) -> Response {
    let text = query.q.clone();
    let results = match blocking(&state, move |data| data.search(&text)).await {
        Ok(results) => results,
        Err(error) => return failure(Some(&user), error),
    };
    let link = |kind: &'static str, key: &str| {
        entity_href(&data::EntityRef {
            role: String::new(),
            kind,
            key: key.to_owned(),
            name: key.to_owned(),
            address: String::new(),
            certainty: String::new(),
            method: String::new(),
        })
    };
    let body = html! {
        h1 { "Search: " (query.q) }
        h2 { "Accounts" }
        ul #accounts { @for account in &results.accounts { li { a href=(link("account", account)) { (account) } } } }
        h2 { "Computers" }
        ul #computers { @for computer in &results.computers { li { a href=(link("computer", computer)) { (computer) } } } }
        h2 { "Addresses" }
        ul #addresses { @for address in &results.addresses { li { a href=(link("computer", address)) { (address) } } } }
    };
    Html(page("Search", Some(&user), &body).into_string()).into_response()
}
