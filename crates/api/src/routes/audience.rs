//! Profiles, tags, segments and discovery (scopes `read` to ask, `admin` to define).

use super::created_or_ok;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use shopgrowth_core::FieldError;
use shopgrowth_profile::audience::Audience;
use shopgrowth_profile::cluster;
use shopgrowth_profile::segment::Expr;
use shopgrowth_store::records::SnapshotRecord;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

/// A segment expression: the text form in `expr`, or the JSON form in `json`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// Text form, e.g. `did purchase where category = "母婴" at least 2 times in last 90 days AND city_tier = "tier1"`.
    #[serde(default)]
    pub expr: Option<String>,
    /// JSON form (`{"and": [...]}`, `{"compare": {"field": "monetary", "op": ">=", "value": 50000}}`, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub json: Option<Expr>,
    /// How many matching user ids to return (default 10, at most 1000).
    #[serde(default)]
    pub sample: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountResult {
    /// The expression in its text form.
    pub expr: String,
    pub matched: u64,
    pub users: u32,
    pub sample: Vec<String>,
    /// Evaluation time on the bitmaps, milliseconds.
    pub elapsed_ms: f64,
}

fn expression(audience: &Audience, req: &CountRequest) -> ApiResult<Expr> {
    let invalid = |field: &str, e: shopgrowth_profile::segment::SegmentError| ApiError::Invalid {
        code: "invalid_expression",
        detail: format!("the segment expression is not valid: {}", e.message),
        errors: vec![FieldError::new(
            field,
            format!("at position {}: {}", e.position, e.message),
        )],
    };
    match (&req.expr, &req.json) {
        (Some(text), None) => audience
            .population()
            .compile(text)
            .map_err(|e| invalid("expr", e)),
        (None, Some(expr)) => {
            audience
                .population()
                .check(expr)
                .map_err(|e| invalid("json", e))?;
            Ok(expr.clone())
        }
        _ => Err(ApiError::invalid(
            "give the expression as text in `expr` or as JSON in `json`, not both",
            vec![FieldError::new(
                "expr",
                "exactly one of expr and json is required",
            )],
        )),
    }
}

/// Count the users an expression selects, instantly, with a sample of them.
#[utoipa::path(post, path = "/api/v1/segments/count", tag = "audience", request_body = CountRequest,
    security(("api_key" = [])),
    responses((status = 200, body = CountResult), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CountRequest>,
) -> ApiResult<Json<CountResult>> {
    caller.require(Scope::Read)?;
    let limit = req.sample.unwrap_or(10).min(1000);
    state.audience.read(|a| {
        let expr = expression(a, &req)?;
        let started = Instant::now();
        let matched = a.population().evaluate(&expr);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Json(CountResult {
            expr: expr.to_text(),
            matched: matched.len(),
            users: a.users(),
            sample: shopgrowth_service::member_ids(a, &matched, limit),
            elapsed_ms,
        }))
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// The text form of the expression.
    pub expr: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    pub name: String,
    pub expr: String,
    pub members: u64,
}

fn segment_view(a: &Audience, name: &str) -> ApiResult<SegmentView> {
    let (expr, members) = a
        .segment(name)
        .ok_or_else(|| ApiError::NotFound(format!("no segment named {name:?}")))?;
    Ok(SegmentView {
        name: name.to_owned(),
        expr: expr.to_text(),
        members: members.len(),
    })
}

/// Save a segment (or replace it: the name is the key). Its members are kept current.
#[utoipa::path(put, path = "/api/v1/segments/{name}", tag = "audience", request_body = SegmentRequest,
    params(("name" = String, Path, description = "the segment")),
    security(("api_key" = [])),
    responses((status = 200, body = SegmentView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn put_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SegmentRequest>,
) -> ApiResult<Json<SegmentView>> {
    caller.require(Scope::Admin)?;
    state
        .audience
        .save_segment(&name, &req.expr, &req.description)
        .await?;
    state.audience.read(|a| segment_view(a, &name)).map(Json)
}

/// Saved segments with their current sizes.
#[utoipa::path(get, path = "/api/v1/segments", tag = "audience", security(("api_key" = [])),
    responses((status = 200, body = [SegmentView]), (status = 401, body = Problem)))]
pub async fn list_segments(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SegmentView>>> {
    caller.require(Scope::Read)?;
    state.audience.read(|a| {
        a.segment_names()
            .iter()
            .map(|n| segment_view(a, n))
            .collect::<ApiResult<Vec<_>>>()
            .map(Json)
    })
}

/// One saved segment and its size now.
#[utoipa::path(get, path = "/api/v1/segments/{name}", tag = "audience",
    params(("name" = String, Path, description = "the segment")), security(("api_key" = [])),
    responses((status = 200, body = SegmentView), (status = 404, body = Problem)))]
pub async fn get_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SegmentView>> {
    caller.require(Scope::Read)?;
    state.audience.read(|a| segment_view(a, &name)).map(Json)
}

#[utoipa::path(delete, path = "/api/v1/segments/{name}", tag = "audience",
    params(("name" = String, Path, description = "the segment")), security(("api_key" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
pub async fn delete_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    state.audience.delete_segment(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Members to skip.
    #[serde(default)]
    pub offset: Option<usize>,
    /// Members to return (default 20, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembersPage {
    pub segment: String,
    pub total: u64,
    /// Profiles of the members on this page (no personal data).
    #[schema(value_type = Vec<Object>)]
    pub members: Vec<shopgrowth_profile::audience::Profile>,
}

/// Preview a segment's members with their profiles.
#[utoipa::path(get, path = "/api/v1/segments/{name}/members", tag = "audience",
    params(("name" = String, Path, description = "the segment"), Page), security(("api_key" = [])),
    responses((status = 200, body = MembersPage), (status = 404, body = Problem)))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<MembersPage>> {
    caller.require(Scope::Read)?;
    state.audience.read(|a| {
        let (_, members) = a
            .segment(&name)
            .ok_or_else(|| ApiError::NotFound(format!("no segment named {name:?}")))?;
        let profiles = members
            .iter()
            .skip(page.offset.unwrap_or(0))
            .take(page.limit.unwrap_or(20).min(500))
            .map(|u| a.profile(u))
            .collect();
        Ok(Json(MembersPage {
            segment: name.clone(),
            total: members.len(),
            members: profiles,
        }))
    })
}

/// Columns of the CSV export.
pub const EXPORT_HEADER: &str = "user_id,lifecycle,value_tier,rfm_class,rfm_r,rfm_f,rfm_m,orders,monetary,aov,recency_days,active_days,top_category,preferred_channel";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One CSV row of a member's profile, for exports.
pub fn export_row(a: &Audience, user: u32) -> String {
    let p = a.profile(user);
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rfm = p.rfm;
    [
        csv_field(&p.user_id),
        p.lifecycle.as_str().to_owned(),
        p.value_tier
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        rfm.map(|r| r.class.as_str().to_owned()).unwrap_or_default(),
        opt(rfm.map(|r| i64::from(r.r))),
        opt(rfm.map(|r| i64::from(r.f))),
        opt(rfm.map(|r| i64::from(r.m))),
        p.features.frequency.to_string(),
        p.features.monetary.to_string(),
        opt(p.features.aov),
        opt(p.features.recency_days),
        p.features.active_days.to_string(),
        csv_field(
            p.features
                .categories
                .first()
                .map_or("", |c| c.name.as_str()),
        ),
        csv_field(p.features.preferred_channel.as_deref().unwrap_or("")),
    ]
    .join(",")
}

/// Export a segment's members with their profiles as CSV.
#[utoipa::path(get, path = "/api/v1/segments/{name}/export.csv", tag = "audience",
    params(("name" = String, Path, description = "the segment")), security(("api_key" = [])),
    responses((status = 200, description = "text/csv, one row per member", content_type = "text/csv"),
        (status = 404, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Scope::Read)?;
    let body = state.audience.read(|a| {
        let (_, members) = a
            .segment(&name)
            .ok_or_else(|| ApiError::NotFound(format!("no segment named {name:?}")))?;
        let mut out = String::with_capacity(members.len() as usize * 80);
        out.push_str(EXPORT_HEADER);
        out.push('\n');
        for u in members {
            out.push_str(&export_row(a, u));
            out.push('\n');
        }
        Ok::<_, ApiError>(out)
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                // ASCII fallback, and the real (often Chinese) name per RFC 6266 / 5987.
                format!(
                    "attachment; filename=\"segment.csv\"; filename*=UTF-8''{}.csv",
                    name.bytes()
                        .map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        })
                        .collect::<String>()
                ),
            ),
        ],
        body,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    pub segment: String,
    /// Shop-local date.
    pub day: String,
    pub taken_at: i64,
    pub size: i64,
    pub entered: i64,
    pub left: i64,
}

impl From<SnapshotRecord> for SnapshotView {
    fn from(s: SnapshotRecord) -> Self {
        SnapshotView {
            segment: s.segment,
            day: s.day,
            taken_at: s.taken_at,
            size: s.size,
            entered: s.entered,
            left: s.left,
        }
    }
}

/// Take today's snapshot of a segment now (the server also takes one each day by itself).
#[utoipa::path(post, path = "/api/v1/segments/{name}/snapshots", tag = "audience",
    params(("name" = String, Path, description = "the segment")), security(("api_key" = [])),
    responses((status = 201, body = SnapshotView), (status = 404, body = Problem)))]
pub async fn take_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<SnapshotView>)> {
    caller.require(Scope::Admin)?;
    let s = state.audience.snapshot(&name).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// A segment's daily snapshots: size, who entered, who left.
#[utoipa::path(get, path = "/api/v1/segments/{name}/snapshots", tag = "audience",
    params(("name" = String, Path, description = "the segment")), security(("api_key" = [])),
    responses((status = 200, body = [SnapshotView]), (status = 404, body = Problem)))]
pub async fn snapshots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<SnapshotView>>> {
    caller.require(Scope::Read)?;
    if state.audience.read(|a| a.segment(&name).is_none()) {
        return Err(ApiError::NotFound(format!("no segment named {name:?}")));
    }
    let list = state.audience.snapshots(&name).await?;
    Ok(Json(list.into_iter().map(SnapshotView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The rule, in the segment language.
    pub rule: String,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub description: String,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagView {
    pub name: String,
    /// `custom`, or `built_in` (RFM, lifecycle, value, city tier, interests).
    pub kind: &'static str,
    pub users: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn tag_view(a: &Audience, name: &str) -> TagView {
    let users = a.population().tag_users(name).map_or(0, |b| b.len());
    match a.tag_definitions().find(|d| d.name == name) {
        Some(d) => TagView {
            name: name.to_owned(),
            kind: "custom",
            users,
            version: Some(d.version),
            rule: Some(d.rule.clone()),
            weight: Some(d.weight),
            description: Some(d.description.clone()),
        },
        None => TagView {
            name: name.to_owned(),
            kind: "built_in",
            users,
            version: None,
            rule: None,
            weight: None,
            description: None,
        },
    }
}

/// Every tag, built-in and custom, with how many users carry it.
#[utoipa::path(get, path = "/api/v1/tags", tag = "audience", security(("api_key" = [])),
    responses((status = 200, body = [TagView]), (status = 401, body = Problem)))]
pub async fn list_tags(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TagView>>> {
    caller.require(Scope::Read)?;
    Ok(Json(state.audience.read(|a| {
        a.population().tags().map(|(t, _)| tag_view(a, t)).collect()
    })))
}

/// Define a custom tag, or its next version. The same definition again changes nothing (200);
/// a new version answers 201. Users gaining and losing it are recorded in their tag history.
#[utoipa::path(put, path = "/api/v1/tags/{name}", tag = "audience", request_body = TagRequest,
    params(("name" = String, Path, description = "the tag")), security(("api_key" = [])),
    responses((status = 201, body = TagView), (status = 200, body = TagView), (status = 400, body = Problem)))]
pub async fn put_tag(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<TagRequest>,
) -> ApiResult<(StatusCode, Json<TagView>)> {
    caller.require(Scope::Admin)?;
    let (_, changed) = state
        .audience
        .define_tag(&name, &req.rule, req.weight, &req.description)
        .await
        .map_err(|e| match e {
            shopgrowth_service::Error::Expression(e) => ApiError::Invalid {
                code: "invalid_expression",
                detail: format!("the tag rule is not valid: {}", e.message),
                errors: vec![FieldError::new(
                    "rule",
                    format!("at position {}: {}", e.position, e.message),
                )],
            },
            other => other.into(),
        })?;
    let status = created_or_ok(changed);
    Ok((status, Json(state.audience.read(|a| tag_view(a, &name)))))
}

/// Retire a custom tag: users lose it (recorded); its versions stay in the store.
#[utoipa::path(delete, path = "/api/v1/tags/{name}", tag = "audience",
    params(("name" = String, Path, description = "the tag")), security(("api_key" = [])),
    responses((status = 204, description = "retired"), (status = 404, body = Problem)))]
pub async fn delete_tag(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    state.audience.retire_tag(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A customer's profile: features, RFM, lifecycle, value tier and tags with weights.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/profile", tag = "audience",
    params(("user_id" = String, Path, description = "the user (after ID-Mapping)")), security(("api_key" = [])),
    responses((status = 200, description = "the profile", body = Object), (status = 404, body = Problem)))]
pub async fn profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<Json<shopgrowth_profile::audience::Profile>> {
    caller.require(Scope::Read)?;
    let customer = state.audience.customer_of(&user_id);
    state.audience.read(|a| {
        a.user_index(&customer)
            .map(|u| Json(a.profile(u)))
            .ok_or_else(|| ApiError::NotFound(format!("user {user_id:?} not found")))
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Most entries, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagHistoryItem {
    pub tag: String,
    /// `gained` or `lost`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    pub at: String,
}

/// When a customer gained and lost each tag, newest first.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/tag-history", tag = "audience",
    params(("user_id" = String, Path, description = "the user"), HistoryQuery), security(("api_key" = [])),
    responses((status = 200, body = [TagHistoryItem])))]
pub async fn tag_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<TagHistoryItem>>> {
    caller.require(Scope::Read)?;
    let items = state
        .audience
        .tag_history(&user_id, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(
        items
            .into_iter()
            .map(|c| TagHistoryItem {
                tag: c.tag,
                change: if c.gained { "gained" } else { "lost" },
                version: c.version,
                at: shopgrowth_core::time::Timestamp(c.at).to_rfc3339(),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// Clusters wanted; by default the k in 2..=8 with the best silhouette.
    #[serde(default)]
    pub k: Option<usize>,
    /// Cluster only this saved segment's buyers (default: all buyers).
    #[serde(default)]
    pub segment: Option<String>,
}

/// Discover customer groups: k-means over standardised profile features, each group described in
/// Chinese and English.
#[utoipa::path(post, path = "/api/v1/discover", tag = "audience", request_body = DiscoverRequest,
    security(("api_key" = [])),
    responses((status = 200, description = "the clusters", body = Object), (status = 400, body = Problem)))]
pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DiscoverRequest>,
) -> ApiResult<Json<cluster::Clustering>> {
    caller.require(Scope::Read)?;
    if req.k.is_some_and(|k| !(1..=20).contains(&k)) {
        return Err(ApiError::invalid(
            "k must be 1 to 20",
            vec![FieldError::new("k", "must be 1 to 20")],
        ));
    }
    let points = state.audience.read(|a| {
        let users = match &req.segment {
            Some(name) => a
                .segment(name)
                .map(|(_, m)| m.clone())
                .ok_or_else(|| ApiError::NotFound(format!("no segment named {name:?}")))?,
            None => {
                let mut all = roaring::RoaringBitmap::new();
                all.insert_range(0..a.users());
                all
            }
        };
        Ok::<_, ApiError>(a.cluster_points(&users).1)
    })?;
    let result = tokio::task::spawn_blocking(move || cluster::discover(&points, req.k, 42))
        .await
        .map_err(|e| ApiError::Internal(format!("clustering failed: {e}")))?
        .ok_or_else(|| {
            ApiError::invalid(
                "too few buyers to cluster",
                vec![FieldError::new("segment", "needs at least 2 buyers")],
            )
        })?;
    Ok(Json(result))
}

/// Rebuild every profile, tag and segment from the store (the incremental path gives the same).
#[utoipa::path(post, path = "/api/v1/audience/rebuild", tag = "audience", security(("api_key" = [])),
    responses((status = 200, description = "what was read and how long it took", body = Object),
        (status = 403, body = Problem)))]
pub async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<shopgrowth_service::BuildStats>> {
    caller.require(Scope::Admin)?;
    Ok(Json(state.audience.rebuild().await?))
}
