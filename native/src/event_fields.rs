//! An input event's fields as a line gives them, before any check: `Fields`, and serde's reading of a line into
//! them. serde's reading is the reference: `scan` reads the common shapes faster and must agree with it on every
//! line it takes (its tests and the fuzz target check that), and every other line is serde's.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields of an input event: strings as serde's `Text` gives them (borrowed unless they have escapes),
/// and the rest as their raw JSON text (what a `RawValue` holds).
#[derive(Debug, Default, PartialEq)]
pub struct Fields<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub touchpoint_id: Option<Cow<'a, str>>,
    pub episode_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub campaign_id: Option<Cow<'a, str>>,
    pub channel: Option<Cow<'a, str>>,
    pub creative_type: Option<Cow<'a, str>>,
    pub timestamp: Option<&'a str>,
    pub immediate_reward: Option<&'a str>,
    pub state: Option<&'a str>,
    pub action: Option<&'a str>,
    pub conversion_id: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub value: Option<&'a str>,
    pub currency: Option<Cow<'a, str>>,
    pub refund_of: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
}

/// A string borrowed from the line unless it has escapes. serde's own `Cow<str>` borrows only as a bare field:
/// inside an `Option` it always allocates, five strings a touchpoint on the parsing thread, each freed on the
/// engine's.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(Option::<Text<'de>>::deserialize(d)?.map(|t| t.0))
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    touchpoint_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    episode_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    campaign_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    creative_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    immediate_reward: Option<&'a RawValue>,
    #[serde(borrow, default)]
    state: Option<&'a RawValue>,
    #[serde(borrow, default)]
    action: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    conversion_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    currency: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    refund_of: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_text")]
    model: Option<Cow<'a, str>>,
}

/// The line's fields as serde reads them (what `scan::fields` must agree with).
pub fn serde_fields(line: &[u8]) -> Option<Fields<'_>> {
    let raw: RawEvent<'_> = serde_json::from_slice(line).ok()?;
    Some(Fields {
        kind: Some(raw.kind), touchpoint_id: raw.touchpoint_id, episode_id: raw.episode_id, user_id: raw.user_id,
        campaign_id: raw.campaign_id, channel: raw.channel, creative_type: raw.creative_type,
        timestamp: raw.timestamp.map(RawValue::get), immediate_reward: raw.immediate_reward.map(RawValue::get),
        state: raw.state.map(RawValue::get), action: raw.action.map(RawValue::get), conversion_id: raw.conversion_id,
        event: raw.event, value: raw.value.map(RawValue::get), currency: raw.currency, refund_of: raw.refund_of,
        model: raw.model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_borrowed_from_the_line_unless_escaped() {
        let line = br#"{"type":"touchpoint","touchpoint_id":"t1","user_id":"u\u00e91","channel":null}"#;
        let raw: RawEvent<'_> = serde_json::from_slice(line).unwrap();
        assert!(matches!(raw.touchpoint_id, Some(Cow::Borrowed("t1"))));
        assert!(matches!(raw.user_id.as_deref(), Some("u\u{e9}1")) && matches!(raw.user_id, Some(Cow::Owned(_))));
        assert!(raw.channel.is_none() && raw.episode_id.is_none());
        assert!(serde_json::from_slice::<RawEvent<'_>>(br#"{"type":"touchpoint","user_id":7}"#).is_err());
    }
}
