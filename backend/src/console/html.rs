//! The pages' frame and shared pieces. maud escapes every value it interpolates, so names from
//! the wire (an account called `<img src=x onerror=...>`) are text, never markup; the content
//! security policy (no script at all) is the second wall.

use maud::{DOCTYPE, Markup, html};

use crate::console::{
    auth::{User, url_encode},
    data::{ActivityRow, AlertRow, EntityRef},
};

pub const STYLESHEET: &str = include_str!("console.css");

pub fn page(title: &str, user: Option<&User>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dcwatch" }
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                header {
                    a.brand href="/alerts" { "dcwatch" }
                    @if let Some(user) = user {
                        nav {
                            a href="/alerts" { "Alerts" }
                            a href="/sensors" { "Sensors" }
                            a href="/health" { "Health" }
                            form.search action="/search" method="get" {
                                input type="search" name="q" placeholder="Account, computer or address" aria-label="Search";
                                button type="submit" { "Search" }
                            }
                        }
                        form.logout action="/logout" method="post" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            span.user { (user.name) " (" (user.role.name()) ")" }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn severity_badge(severity: &str) -> Markup {
    html! { span class={ "badge sev-" (severity.to_lowercase()) } { (severity) } }
}

pub fn status_badge(status: &str, classification: &str) -> Markup {
    html! {
        span class={ "badge st-" (status.to_lowercase()) } { (status) }
        @if !classification.is_empty() { " " span.badge { (classification) } }
    }
}

pub fn entity_href(entity: &EntityRef) -> String {
    if entity.kind == "account" {
        format!("/accounts?name={}", url_encode(&entity.key))
    } else {
        format!("/computers?key={}", url_encode(&entity.key))
    }
}

pub fn entity_link(entity: &EntityRef) -> Markup {
    let label = if entity.name.is_empty() {
        entity.address.clone()
    } else if entity.address.is_empty() {
        entity.name.clone()
    } else {
        format!("{} ({})", entity.name, entity.address)
    };
    html! { a.entity href=(entity_href(entity)) { (label) } }
}

/// How a table is found: by its class (the stylesheet, most tables) or its id (a page's one
/// table of its kind, which the tests find).
#[derive(Clone, Copy, Debug)]
pub enum TableName<'a> {
    Class(&'a str),
    Id(&'a str),
}

/// Every table of the console: a header cell per heading, then `row`'s `tr` for each item.
pub fn table<T>(
    name: TableName<'_>,
    headings: &[&str],
    items: impl IntoIterator<Item = T>,
    row: impl Fn(T) -> Markup,
) -> Markup {
    let (class, id) = match name {
        TableName::Class(class) => (Some(class), None),
        TableName::Id(id) => (None, Some(id)),
    };
    html! {
        table class=[class] id=[id] {
            thead { tr { @for heading in headings { th { (heading) } } } }
            tbody { @for item in items { (row(item)) } }
        }
    }
}

pub fn alert_table(alerts: &[AlertRow]) -> Markup {
    let headings = [
        "Last activity (UTC)",
        "Severity",
        "Alert",
        "Entities",
        "Status",
        "Count",
    ];
    table(TableName::Class("alerts"), &headings, alerts, |alert| {
        html! {
            tr data-alert=(alert.id) {
                td { (alert.end) }
                td { (severity_badge(&alert.severity)) }
                td {
                    a.alert-link href={ "/alerts/" (url_encode(&alert.id)) } { (alert.title) }
                    div.description { (alert.description) }
                }
                td {
                    @for entity in &alert.entities { (entity_link(entity)) " " }
                }
                td { (status_badge(&alert.status, &alert.classification)) }
                td { (alert.count) }
            }
        }
    })
}

fn nnr(name: &str, certainty: &str, method: &str) -> Markup {
    html! {
        @if !name.is_empty() {
            (name)
            @if !certainty.is_empty() || !method.is_empty() {
                " " span.nnr title="name resolution: certainty, method" { "(" (certainty) " " (method) ")" }
            }
        }
    }
}

pub fn activity_table(activities: &[ActivityRow]) -> Markup {
    let headings = [
        "Time (UTC)",
        "Protocol",
        "Type",
        "Source",
        "Source computer (NNR)",
        "Destination",
        "Destination computer (NNR)",
        "Account",
        "Outcome",
        "Details",
    ];
    table(
        TableName::Class("activities"),
        &headings,
        activities,
        |activity| {
            html! {
                tr.activity {
                    td { (activity.time) }
                    td { (activity.protocol) }
                    td { (activity.kind) }
                    td { (activity.src) }
                    td { (nnr(&activity.source_computer.name, &activity.source_computer.certainty, &activity.source_computer.method)) }
                    td { (activity.dst) }
                    td { (nnr(&activity.destination_computer.name, &activity.destination_computer.certainty, &activity.destination_computer.method)) }
                    td {
                        @if !activity.account.is_empty() {
                            a href={ "/accounts?name=" (url_encode(&activity.account)) } { (activity.account) }
                        }
                    }
                    td { (activity.outcome) }
                    td { details { summary { "JSON" } pre { (activity.json.to_string()) } } }
                }
            }
        },
    )
}
