//! The per-alert workbook, in Defender for Identity's layout (reference 003, "Advanced Security
//! Alert investigation"): the summary; the entities by role, each with Name, Details, Type and
//! SamName (accessed resources with Time, Computer, Name, Details, Type, Service); the network
//! and event activities with the NNR certainty and resolution method of both ends; the related
//! entities with their directory and profile JSON.
//!
//! Every value is written as a string cell, never a formula, so a name like `=cmd|...` stays
//! text; Excel's cell limit (32,767 characters) clips the JSON columns.

use dcwatch_proto::v1::{Alert, AlertEntity, alert_entity::Role};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::console::data::{self, ActivityRow, Data, DataError};

/// Excel's limit on a cell's text.
pub const MAX_CELL_CHARS: usize = 32_767;

/// The tab names, in order, of the fixed tabs.
pub const SUMMARY: &str = "Summary";
pub const SOURCE_COMPUTER: &str = "Source Computer";
pub const SOURCE_USER: &str = "Source User";
pub const DOMAIN_CONTROLLERS: &str = "Domain Controllers";
pub const ACCESSED_RESOURCES: &str = "Accessed Resources";
pub const ATTACKED_ACCOUNTS: &str = "Attacked Accounts";
pub const COMPROMISED_ACCOUNTS: &str = "Compromised Accounts";
pub const GROUPS: &str = "Groups";
pub const LISTENERS: &str = "Listeners";
pub const NETWORK_ACTIVITIES: &str = "Network Activities";
pub const EVENT_ACTIVITIES: &str = "Event Activities";
pub const RELATED_ENTITIES: &str = "Related Entities";

/// The workbook of alert `id` (None: no such alert); `url` is the console's address.
pub fn workbook(data: &Data, id: &str, url: &str) -> Result<Option<Vec<u8>>, DataError> {
    let Some(detail) = data.alert_detail(id)? else {
        return Ok(None);
    };
    let Some(alert) = data.alert(id)? else {
        return Ok(None);
    };
    let status_time = detail
        .history
        .last()
        .map_or_else(String::new, |h| h.time.clone());
    let related: Vec<RelatedEntity> = alert
        .entities
        .iter()
        .enumerate()
        .map(|(index, entity)| related_entity(data, index, entity))
        .collect::<Result<_, _>>()?;
    write(&alert, &detail, &status_time, url, &related)
        .map(Some)
        .map_err(|error| DataError::Report(error.to_string()))
}

struct RelatedEntity {
    id: String,
    kind: &'static str,
    name: String,
    entity_json: String,
    profile_json: String,
}

fn related_entity(
    data: &Data,
    index: usize,
    entity: &AlertEntity,
) -> Result<RelatedEntity, DataError> {
    let shown = data::entity_ref(entity);
    let entity_json = data
        .directory_json(shown.kind, &shown.key)
        .unwrap_or_else(|| serde_json::to_value(entity).unwrap_or(serde_json::Value::Null));
    let profile = data.profile(shown.kind, &shown.key, &entity.address)?;
    Ok(RelatedEntity {
        id: if entity.sid.is_empty() {
            format!("{}-{index}", shown.kind)
        } else {
            entity.sid.clone()
        },
        kind: if shown.kind == "account" {
            "Account"
        } else {
            "Computer"
        },
        name: display_name(entity),
        entity_json: entity_json.to_string(),
        profile_json: profile.to_string(),
    })
}

fn display_name(entity: &AlertEntity) -> String {
    if entity.name.is_empty() {
        entity.address.clone()
    } else {
        entity.name.clone()
    }
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_CELL_CHARS).collect()
}

fn row_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn header(sheet: &mut Worksheet, names: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (column, name) in names.iter().enumerate() {
        sheet.write_string_with_format(
            0,
            u16::try_from(column).unwrap_or(u16::MAX),
            *name,
            bold,
        )?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn line(sheet: &mut Worksheet, row: u32, values: &[&str]) -> Result<(), XlsxError> {
    for (column, value) in values.iter().enumerate() {
        sheet.write_string(row, u16::try_from(column).unwrap_or(u16::MAX), clip(value))?;
    }
    Ok(())
}

/// What Details says of an entity: a computer's address and how its name was resolved, an
/// account's SID, and tags.
fn details(entity: &AlertEntity) -> String {
    let shown = data::entity_ref(entity);
    let mut parts = Vec::new();
    if !entity.address.is_empty() && !entity.name.is_empty() {
        parts.push(entity.address.clone());
    }
    if !shown.certainty.is_empty() || !shown.method.is_empty() {
        parts.push(
            format!("NNR {} {}", shown.certainty, shown.method)
                .trim()
                .to_owned(),
        );
    }
    if !entity.sid.is_empty() {
        parts.push(entity.sid.clone());
    }
    for tag in &entity.tags {
        parts.push(format!("{} ({})", tag.name, tag.reason));
    }
    parts.join("; ")
}

fn sam_name(entity: &AlertEntity) -> String {
    let shown = data::entity_ref(entity);
    if shown.kind == "account" {
        entity
            .name
            .rsplit_once('\\')
            .map_or_else(|| entity.name.clone(), |(_, name)| name.to_owned())
    } else if entity.name.is_empty() {
        String::new()
    } else {
        format!(
            "{}$",
            entity
                .name
                .split('.')
                .next()
                .unwrap_or_default()
                .to_uppercase()
        )
    }
}

fn entity_type(entity: &AlertEntity) -> &'static str {
    match entity.role() {
        Role::Group => "Group",
        Role::SourceAccount | Role::AttackedAccount | Role::CompromisedAccount => "User",
        _ => "Computer",
    }
}

fn write(
    alert: &Alert,
    detail: &data::AlertDetail,
    status_time: &str,
    url: &str,
    related: &[RelatedEntity],
) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let row = &detail.row;

    let sheet = book.add_worksheet().set_name(SUMMARY)?;
    let link = format!("{}/alerts/{}", url.trim_end_matches('/'), alert.id);
    let summary: [(&str, String); 15] = [
        ("Title", alert.title.clone()),
        ("Description", alert.description.clone()),
        ("Start Time (UTC)", row.start.clone()),
        ("End Time (UTC)", row.end.clone()),
        ("Severity", title_case(&row.severity)),
        ("Status", title_case(&row.status)),
        ("Status Update Time (UTC)", status_time.to_owned()),
        ("View in browser", link.clone()),
        ("Id", alert.id.clone()),
        ("Type", alert.r#type.clone()),
        ("External Id", alert.external_id.to_string()),
        ("Category", row.category.clone()),
        ("MITRE", alert.mitre.join(", ")),
        ("Classification", row.classification.clone()),
        ("Count", alert.count.to_string()),
    ];
    for (index, (name, value)) in summary.iter().enumerate() {
        let at = row_number(index);
        sheet.write_string_with_format(at, 0, *name, &bold)?;
        if *name == "View in browser" {
            sheet.write_url_with_text(at, 1, value.as_str(), value.as_str())?;
        } else {
            sheet.write_string(at, 1, clip(value))?;
        }
    }
    sheet.set_column_width(0, 26)?;
    sheet.set_column_width(1, 100)?;

    let by_role = |roles: &[Role]| -> Vec<&AlertEntity> {
        alert
            .entities
            .iter()
            .filter(|entity| roles.contains(&entity.role()))
            .collect()
    };
    let fixed: [(&str, &[Role], bool); 3] = [
        (SOURCE_COMPUTER, &[Role::SourceComputer], true),
        (SOURCE_USER, &[Role::SourceAccount], true),
        (DOMAIN_CONTROLLERS, &[Role::DomainController], true),
    ];
    let optional: [(&str, &[Role], bool); 4] = [
        (ATTACKED_ACCOUNTS, &[Role::AttackedAccount], false),
        (COMPROMISED_ACCOUNTS, &[Role::CompromisedAccount], false),
        (GROUPS, &[Role::Group], false),
        (LISTENERS, &[Role::Listener], false),
    ];
    for (name, roles, always) in fixed.iter().chain(optional.iter()) {
        let entities = by_role(roles);
        if entities.is_empty() && !always {
            continue;
        }
        let sheet = book.add_worksheet().set_name(*name)?;
        header(sheet, &["Name", "Details", "Type", "SamName"], &bold)?;
        for (index, entity) in entities.iter().enumerate() {
            line(
                sheet,
                row_number(index + 1),
                &[
                    &display_name(entity),
                    &details(entity),
                    entity_type(entity),
                    &sam_name(entity),
                ],
            )?;
        }
    }

    let resources = by_role(&[Role::DestinationComputer]);
    if !resources.is_empty() {
        let sheet = book.add_worksheet().set_name(ACCESSED_RESOURCES)?;
        header(
            sheet,
            &["Time", "Computer", "Name", "Details", "Type", "Service"],
            &bold,
        )?;
        let source = by_role(&[Role::SourceComputer])
            .first()
            .map(|entity| display_name(entity))
            .unwrap_or_default();
        for (index, entity) in resources.iter().enumerate() {
            line(
                sheet,
                row_number(index + 1),
                &[
                    &row.start,
                    &source,
                    &display_name(entity),
                    &details(entity),
                    entity_type(entity),
                    &alert.protocol,
                ],
            )?;
        }
    }

    let (events, network): (Vec<&ActivityRow>, Vec<&ActivityRow>) = detail
        .evidence
        .iter()
        .partition(|activity| activity.protocol == "windows_event");
    let sheet = book.add_worksheet().set_name(NETWORK_ACTIVITIES)?;
    header(
        sheet,
        &[
            "Time",
            "Protocol",
            "Type",
            "Source Address",
            "Source Computer",
            "Source Computer Certainty",
            "Source Computer Resolution Method",
            "Destination Address",
            "Destination Computer",
            "Destination Computer Certainty",
            "Destination Computer Resolution Method",
            "Account",
            "Outcome",
            "Sensor",
            "Details",
        ],
        &bold,
    )?;
    for (index, activity) in network.iter().enumerate() {
        line(
            sheet,
            row_number(index + 1),
            &[
                &activity.time,
                &activity.protocol,
                &activity.kind,
                &activity.src,
                &activity.source_computer.name,
                &activity.source_computer.certainty,
                &activity.source_computer.method,
                &activity.dst,
                &activity.destination_computer.name,
                &activity.destination_computer.certainty,
                &activity.destination_computer.method,
                &activity.account,
                &activity.outcome,
                &activity.sensor_id,
                &activity.json.to_string(),
            ],
        )?;
    }
    let sheet = book.add_worksheet().set_name(EVENT_ACTIVITIES)?;
    header(
        sheet,
        &[
            "Time", "Type", "Computer", "Account", "Outcome", "Sensor", "Details",
        ],
        &bold,
    )?;
    for (index, activity) in events.iter().enumerate() {
        line(
            sheet,
            row_number(index + 1),
            &[
                &activity.time,
                &activity.kind,
                &activity.source_computer.name,
                &activity.account,
                &activity.outcome,
                &activity.sensor_id,
                &activity.json.to_string(),
            ],
        )?;
    }

    let sheet = book.add_worksheet().set_name(RELATED_ENTITIES)?;
    header(
        sheet,
        &[
            "Id",
            "Type",
            "Name",
            "Unique Entity Json",
            "Unique Entity Profile Json",
        ],
        &bold,
    )?;
    for (index, entity) in related.iter().enumerate() {
        line(
            sheet,
            row_number(index + 1),
            &[
                &entity.id,
                entity.kind,
                &entity.name,
                &entity.entity_json,
                &entity.profile_json,
            ],
        )?;
    }
    book.save_to_buffer()
}

/// HIGH → High, as MDI's report writes severities and statuses.
fn title_case(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
