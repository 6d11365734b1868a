//! The JSON API under `/api/v1/`, described by `backend/console/openapi.json`. Pages render
//! the same `data` answers; downloads (the report, the CSV) are served from here for both.

use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State as Shared},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use dcwatch_proto::v1::alert::Classification;
use serde::Deserialize;

use crate::console::{
    Peer, State,
    auth::{self, Refusal, User},
    data::{self, ActivityFilter, AlertFilter, DataError, MAX_ROWS},
    report,
};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}", get(alert))
        .route("/api/v1/alerts/{id}/close", post(close))
        .route("/api/v1/alerts/{id}/reopen", post(reopen))
        .route("/api/v1/alerts/{id}/comments", post(comment))
        .route("/api/v1/alerts/{id}/assign", post(assign))
        .route("/api/v1/alerts/{id}/report.xlsx", get(report_xlsx))
        .route("/api/v1/accounts", get(account))
        .route("/api/v1/computers", get(computer))
        .route("/api/v1/activities.csv", get(activities_csv))
        .route("/api/v1/sensors", get(sensors))
        .route("/api/v1/sensors/{id}", get(sensor))
        .route("/api/v1/health", get(health))
        .route("/api/v1/search", get(search))
        .route("/api/v1/exclusions", get(exclusions))
}

/// What an API call answers when it fails.
#[derive(Debug)]
pub enum ApiError {
    NotFound,
    BadRequest(String),
    Forbidden(&'static str),
    Internal(String),
}

impl From<DataError> for ApiError {
    fn from(error: DataError) -> Self {
        log::warn!("console: {error}");
        Self::Internal("the store failed; see the backend's log".to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_owned()),
            Self::Internal(why) => (StatusCode::INTERNAL_SERVER_ERROR, why),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Runs store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&data::Data) -> Result<T, DataError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = State::clone(state);
    tokio::task::spawn_blocking(move || work(&state.data))
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    Wrong,
    Limited,
    CrossSite,
    Internal(String),
}

/// Checks the rate limit and the password; starts a session. Shared by the form and the API.
pub async fn try_login(
    state: &State,
    headers: &HeaderMap,
    peer: Option<Peer>,
    name: &str,
    password: &str,
) -> Result<(String, User), LoginError> {
    if auth::cross_site(headers) {
        state.auth.csrf_refused();
        return Err(LoginError::CrossSite);
    }
    let client = peer.map_or_else(String::new, |Peer(address)| address.ip().to_string());
    if !state.auth.login_allowed(&client, name) {
        return Err(LoginError::Limited);
    }
    let (owned_name, owned_password) = (name.to_owned(), password.to_owned());
    let verified = blocking(state, move |data| {
        data.with(|store| {
            crate::console::users::verify(store, &owned_name, &owned_password)
                .map_err(DataError::from)
        })
    })
    .await
    .map_err(|error| LoginError::Internal(format!("{error:?}")))?;
    if let Some((name, role)) = verified {
        log::info!("console: {name} logged in from {client}");
        state
            .auth
            .start(name, role)
            .map_err(|error| LoginError::Internal(error.to_string()))
    } else {
        log::warn!("console: failed login for {name:?} from {client}");
        state.auth.login_failed(&client, name);
        Err(LoginError::Wrong)
    }
}

async fn login(
    Shared(state): Shared<State>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Json(credentials): Json<Credentials>,
) -> Response {
    match try_login(
        &state,
        &headers,
        peer.map(|Extension(peer)| peer),
        &credentials.name,
        &credentials.password,
    )
    .await
    {
        Ok((token, user)) => (
            [(header::SET_COOKIE, auth::session_cookie(&token))],
            Json(user),
        )
            .into_response(),
        Err(LoginError::Wrong) => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "wrong name or password"})),
        )
            .into_response(),
        Err(LoginError::Limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from_static("300"))],
            Json(serde_json::json!({"error": "too many failed logins; try later"})),
        )
            .into_response(),
        Err(LoginError::CrossSite) => {
            Refusal::Forbidden("cross-site request refused").into_response()
        }
        Err(LoginError::Internal(why)) => ApiError::Internal(why).into_response(),
    }
}

async fn logout(Shared(state): Shared<State>, _user: User, headers: HeaderMap) -> Response {
    if let Some(token) = auth::cookie_token(&headers) {
        state.auth.end(&token);
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::expired_cookie())],
    )
        .into_response()
}

async fn me(user: User) -> Json<User> {
    Json(user)
}

async fn alerts(
    Shared(state): Shared<State>,
    _user: User,
    Query(filter): Query<AlertFilter>,
) -> Result<Json<data::Timeline>, ApiError> {
    Ok(Json(
        blocking(&state, move |data| data.timeline(&filter)).await?,
    ))
}

async fn alert(
    Shared(state): Shared<State>,
    _user: User,
    Path(id): Path<String>,
) -> Result<Json<data::AlertDetail>, ApiError> {
    blocking(&state, move |data| data.alert_detail(&id))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize)]
pub struct CloseRequest {
    /// TP, BTP or FP.
    pub classification: String,
    #[serde(default)]
    pub comment: String,
    /// Also exclude the alert's primary entity from this detection.
    #[serde(default)]
    pub exclude: bool,
}

pub fn classification(text: &str) -> Option<Classification> {
    match text.to_uppercase().as_str() {
        "TP" => Some(Classification::Tp),
        "BTP" | "B-TP" => Some(Classification::Btp),
        "FP" => Some(Classification::Fp),
        _ => None,
    }
}

/// Longest comment kept.
pub const MAX_COMMENT_CHARS: usize = 4000;

fn may_change(user: &User) -> Result<(), ApiError> {
    if user.may_change() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("viewers cannot change alerts"))
    }
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_COMMENT_CHARS).collect()
}

/// Closes an alert; the shared work of the form and the API.
pub async fn close_alert(
    state: &State,
    user: &User,
    id: String,
    request: CloseRequest,
) -> Result<(), ApiError> {
    may_change(user)?;
    let classification = classification(&request.classification)
        .ok_or_else(|| ApiError::BadRequest("classification is TP, BTP or FP".to_owned()))?;
    let actor = user.name.clone();
    let comment = bounded(&request.comment);
    let closed = blocking(state, move |data| {
        data.close_alert(
            &id,
            classification,
            &actor,
            &comment,
            request.exclude,
            data::now_ns(),
        )
    })
    .await?;
    if closed {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn close(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Json(request): Json<CloseRequest>,
) -> Result<Json<data::AlertDetail>, ApiError> {
    close_alert(&state, &user, id.clone(), request).await?;
    alert(Shared(state), user, Path(id)).await
}

pub async fn reopen_alert(state: &State, user: &User, id: String) -> Result<(), ApiError> {
    may_change(user)?;
    let actor = user.name.clone();
    if blocking(state, move |data| {
        data.reopen_alert(&id, &actor, data::now_ns())
    })
    .await?
    {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn reopen(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<data::AlertDetail>, ApiError> {
    reopen_alert(&state, &user, id.clone()).await?;
    alert(Shared(state), user, Path(id)).await
}

#[derive(Debug, Deserialize)]
pub struct CommentRequest {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct AssignRequest {
    /// A user name; empty to unassign.
    pub to: String,
}

/// Adds a comment or an assignment to an alert's history.
pub async fn add_history(
    state: &State,
    user: &User,
    id: String,
    event: &'static str,
    text: &str,
) -> Result<(), ApiError> {
    may_change(user)?;
    if event == "comment" && text.trim().is_empty() {
        return Err(ApiError::BadRequest("an empty comment".to_owned()));
    }
    let actor = user.name.clone();
    let text = bounded(text);
    if blocking(state, move |data| {
        data.add_history(&id, event, &actor, &text, data::now_ns())
    })
    .await?
    {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn comment(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Json(request): Json<CommentRequest>,
) -> Result<Json<data::AlertDetail>, ApiError> {
    add_history(&state, &user, id.clone(), "comment", &request.text).await?;
    alert(Shared(state), user, Path(id)).await
}

async fn assign(
    Shared(state): Shared<State>,
    user: User,
    Path(id): Path<String>,
    Json(request): Json<AssignRequest>,
) -> Result<Json<data::AlertDetail>, ApiError> {
    add_history(&state, &user, id.clone(), "assigned", &request.to).await?;
    alert(Shared(state), user, Path(id)).await
}

async fn report_xlsx(
    Shared(state): Shared<State>,
    _user: User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let url = state.url.clone();
    let file_id = id.clone();
    let bytes = blocking(&state, move |data| report::workbook(data, &id, &url))
        .await?
        .ok_or(ApiError::NotFound)?;
    let safe: String = file_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"dcwatch-alert-{safe}.xlsx\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct EntityQuery {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
    #[serde(flatten)]
    pub filter: ActivityFilter,
}

async fn account(
    Shared(state): Shared<State>,
    _user: User,
    Query(query): Query<EntityQuery>,
) -> Result<Json<data::EntityPage>, ApiError> {
    if query.name.trim().is_empty() {
        return Err(ApiError::BadRequest("name is required".to_owned()));
    }
    Ok(Json(
        blocking(&state, move |data| {
            data.entity("account", &query.name, &query.filter, MAX_ROWS)
        })
        .await?,
    ))
}

async fn computer(
    Shared(state): Shared<State>,
    _user: User,
    Query(query): Query<EntityQuery>,
) -> Result<Json<data::EntityPage>, ApiError> {
    if query.key.trim().is_empty() {
        return Err(ApiError::BadRequest("key is required".to_owned()));
    }
    Ok(Json(
        blocking(&state, move |data| {
            data.entity("computer", &query.key, &query.filter, MAX_ROWS)
        })
        .await?,
    ))
}

/// Rows a CSV export holds at most.
pub const MAX_CSV_ROWS: usize = 100_000;

#[derive(Debug, Default, Deserialize)]
pub struct CsvQuery {
    /// `account` or `computer`.
    pub kind: String,
    pub key: String,
    #[serde(flatten)]
    pub filter: ActivityFilter,
}

/// A CSV field: quoted, with quotes doubled, and a leading `=`, `+`, `-`, `@` made inert for
/// spreadsheets (OWASP's CSV injection advice).
pub fn csv_field(text: &str) -> String {
    let inert = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", inert.replace('"', "\"\""))
}

async fn activities_csv(
    Shared(state): Shared<State>,
    _user: User,
    Query(query): Query<CsvQuery>,
) -> Result<Response, ApiError> {
    let kind: &'static str = match query.kind.as_str() {
        "account" => "account",
        "computer" => "computer",
        _ => {
            return Err(ApiError::BadRequest(
                "kind is account or computer".to_owned(),
            ));
        }
    };
    let page = blocking(&state, move |data| {
        data.entity(kind, &query.key, &query.filter, MAX_CSV_ROWS)
    })
    .await?;
    let mut out = String::from(
        "time,protocol,type,src,dst,account,source_computer,source_certainty,source_method,\
         destination_computer,destination_certainty,destination_method,outcome,sensor_id\n",
    );
    for row in &page.activities {
        let fields = [
            &row.time,
            &row.protocol,
            &row.kind,
            &row.src,
            &row.dst,
            &row.account,
            &row.source_computer.name,
            &row.source_computer.certainty,
            &row.source_computer.method,
            &row.destination_computer.name,
            &row.destination_computer.certainty,
            &row.destination_computer.method,
            &row.outcome,
            &row.sensor_id,
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"dcwatch-{kind}-activities.csv\""),
            ),
        ],
        out,
    )
        .into_response())
}

async fn sensors(
    Shared(state): Shared<State>,
    _user: User,
) -> Result<Json<Vec<data::SensorRow>>, ApiError> {
    Ok(Json(blocking(&state, data::Data::sensors).await?))
}

#[derive(Debug, serde::Serialize)]
pub struct SensorPage {
    pub sensor: data::SensorRow,
    pub samples: Vec<data::CounterSample>,
    pub health: Vec<data::HealthRow>,
}

pub async fn sensor_page(state: &State, id: String) -> Result<SensorPage, ApiError> {
    blocking(state, move |data| {
        let Some(sensor) = data.sensors()?.into_iter().find(|s| s.sensor_id == id) else {
            return Ok(None);
        };
        Ok(Some(SensorPage {
            samples: data.counter_samples(&id)?,
            health: data.health(Some(&id))?,
            sensor,
        }))
    })
    .await?
    .ok_or(ApiError::NotFound)
}

async fn sensor(
    Shared(state): Shared<State>,
    _user: User,
    Path(id): Path<String>,
) -> Result<Json<SensorPage>, ApiError> {
    Ok(Json(sensor_page(&state, id).await?))
}

async fn health(
    Shared(state): Shared<State>,
    _user: User,
) -> Result<Json<Vec<data::HealthRow>>, ApiError> {
    Ok(Json(blocking(&state, |data| data.health(None)).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: String,
}

async fn search(
    Shared(state): Shared<State>,
    _user: User,
    Query(query): Query<SearchQuery>,
) -> Result<Json<data::SearchResults>, ApiError> {
    Ok(Json(
        blocking(&state, move |data| data.search(&query.q)).await?,
    ))
}

#[derive(Debug, serde::Serialize)]
pub struct ExclusionRow {
    #[serde(rename = "type")]
    pub type_name: String,
    pub kind: String,
    pub value: String,
    pub comment: String,
}

async fn exclusions(
    Shared(state): Shared<State>,
    _user: User,
) -> Result<Json<Vec<ExclusionRow>>, ApiError> {
    let rows = blocking(&state, data::Data::exclusions).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(type_name, kind, value, comment)| ExclusionRow {
                type_name,
                kind,
                value,
                comment,
            })
            .collect(),
    ))
}
