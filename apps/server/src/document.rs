//! The OpenAPI document as served and checked in. poem-openapi writes unsigned integers as
//! `format: uint32` without bounds, which JSON Schema does not enforce; clients and fuzzers would
//! then believe `-1` is valid. [`harden`] states the bounds the types already enforce. The same
//! document tells the router which methods a path allows, for the `Allow` header of a 405.

use poem::http::Method;
use serde_json::Value;

/// Adds `minimum`/`maximum` to integer schemas whose format implies them, and marks optional
/// properties `nullable`: the server reads `null` as "left out", so the document says so.
pub fn harden(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, prop) in props.iter_mut() {
                    if let Value::Object(p) = prop
                        && !required.contains(name)
                        && !p.contains_key("$ref")
                    {
                        p.insert("nullable".into(), Value::Bool(true));
                    }
                }
            }
            let is_integer = map.get("type").and_then(Value::as_str) == Some("integer");
            let bounds = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0, u64::from(u8::MAX))),
                Some("uint16") => Some((0, u64::from(u16::MAX))),
                Some("uint32") => Some((0, u64::from(u32::MAX))),
                Some("uint64") => Some((0, u64::MAX)),
                _ => None,
            };
            if let (true, Some((min, max))) = (is_integer, bounds) {
                map.entry("minimum").or_insert(Value::from(min));
                map.entry("maximum").or_insert(Value::from(max));
            }
            for v in map.values_mut() {
                harden(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(harden),
        _ => {}
    }
}

/// Which methods each documented path template allows.
#[derive(Debug, Default)]
pub struct AllowTable(Vec<(Vec<Option<String>>, Vec<Method>)>);

impl AllowTable {
    pub fn from_document(doc: &Value) -> Self {
        let mut table = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            for (template, ops) in paths {
                let segments = template
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let methods = ops
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter_map(|m| m.to_uppercase().parse::<Method>().ok())
                    .collect();
                table.push((segments, methods));
            }
        }
        Self(table)
    }

    /// The `Allow` header value for `path`: the methods of the matching template with the most
    /// literal segments (`/projects/active` rather than `/projects/{project_id}`), as a router
    /// would pick it.
    pub fn allow(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split('/').collect();
        let matching: Vec<&(Vec<Option<String>>, Vec<Method>)> = self
            .0
            .iter()
            .filter(|(segs, _)| {
                segs.len() == parts.len()
                    && segs
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
            })
            .collect();
        let literals = |segs: &Vec<Option<String>>| segs.iter().filter(|s| s.is_some()).count();
        let best = matching.iter().map(|(segs, _)| literals(segs)).max()?;
        let mut methods: Vec<&str> = matching
            .iter()
            .filter(|(segs, _)| literals(segs) == best)
            .flat_map(|(_, m)| m.iter().map(Method::as_str))
            .collect();
        if methods.is_empty() {
            return None;
        }
        methods.sort_unstable();
        methods.dedup();
        Some(methods.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsigned_formats_get_their_bounds_and_explicit_ones_are_kept() {
        let mut doc = json!({ "a": { "type": "integer", "format": "uint32", "maximum": 255 },
                              "b": [{ "type": "integer", "format": "uint16" }],
                              "c": { "type": "integer", "format": "int64" } });
        harden(&mut doc);
        assert_eq!(doc["a"]["minimum"], 0);
        assert_eq!(doc["a"]["maximum"], 255);
        assert_eq!(doc["b"][0]["maximum"], 65535);
        assert!(doc["c"].get("minimum").is_none());
    }

    #[test]
    fn optional_properties_become_nullable_and_required_ones_do_not() {
        let mut doc = json!({ "type": "object", "required": ["a"],
            "properties": { "a": { "type": "string" }, "b": { "type": "string" }, "c": { "$ref": "#/x" } } });
        harden(&mut doc);
        assert!(doc["properties"]["a"].get("nullable").is_none());
        assert_eq!(doc["properties"]["b"]["nullable"], true);
        assert!(doc["properties"]["c"].get("nullable").is_none());
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let doc = json!({ "paths": {
            "/api/v1/projects/{project_id}": { "get": {}, "put": {}, "delete": {} },
            "/api/v1/projects/active": { "get": {} },
            "/health": { "get": {} }
        }});
        let table = AllowTable::from_document(&doc);
        assert_eq!(table.allow("/health").as_deref(), Some("GET"));
        assert_eq!(
            table.allow("/api/v1/projects/x").as_deref(),
            Some("DELETE, GET, PUT")
        );
        assert_eq!(
            table.allow("/api/v1/projects/active").as_deref(),
            Some("GET")
        );
        assert_eq!(table.allow("/nowhere"), None);
    }
}
