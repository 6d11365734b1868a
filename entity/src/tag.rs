//! Tags: what dcwatch knows an entity to be, each with the reason an analyst can check.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagName {
    Sensitive,
    Honeytoken,
    Dc,
    Rodc,
    ExchangeServer,
    DnsServer,
    Disabled,
    Expired,
    New,
    DontReqPreauth,
}

impl TagName {
    /// The name on the wire (`Tag.name` in the proto, the JSON, the console).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sensitive => "sensitive",
            Self::Honeytoken => "honeytoken",
            Self::Dc => "dc",
            Self::Rodc => "rodc",
            Self::ExchangeServer => "exchange_server",
            Self::DnsServer => "dns_server",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::New => "new",
            Self::DontReqPreauth => "dont_req_preauth",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub name: TagName,
    pub reason: String,
}

impl Tag {
    pub fn new(name: TagName, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}
