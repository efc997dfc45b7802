//! The standard klasses, defined as data in `index-config/klasses/` (embedded in the binary, or
//! read from `--index-config DIR`), in the same format as a posted custom klass.

use std::path::Path;

use crate::model::klass::STANDARD_KLASSES;
use crate::model::klass::{AttributeDef, KlassDef};
use crate::model::{Attribute, Klass};

const EMBEDDED: [(&str, &str); 6] = [
    ("company", include_str!("../../index-config/klasses/company.json")),
    ("customer", include_str!("../../index-config/klasses/customer.json")),
    (
        "conversation",
        include_str!("../../index-config/klasses/conversation.json"),
    ),
    ("message", include_str!("../../index-config/klasses/message.json")),
    ("note", include_str!("../../index-config/klasses/note.json")),
    ("kobject", include_str!("../../index-config/klasses/kobject.json")),
];

/// The standard klass definitions and the standard attributes every custom klass gets.
#[derive(Debug, Clone)]
pub struct StandardKlasses {
    /// company, customer, conversation, message, note.
    pub klasses: Vec<Klass>,
    /// customer, company, title: the standard attributes of every kobject.
    pub kobject: Vec<Attribute>,
}

impl StandardKlasses {
    /// Loads the embedded definitions, or those of `dir/klasses/*.json` when given.
    ///
    /// # Errors
    /// A file that is missing or does not parse, naming the file.
    pub fn load(dir: Option<&Path>) -> Result<StandardKlasses, String> {
        let mut klasses = Vec::new();
        let mut kobject = Vec::new();
        for (name, embedded) in EMBEDDED {
            let text = match dir {
                Some(d) => {
                    let p = d.join("klasses").join(format!("{name}.json"));
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => embedded.to_string(),
            };
            let def: KlassDef = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| format!("klasses/{name}.json: `{}`: {}", e.path(), e.inner()))?;
            let attrs = to_attributes(name, def.attributes)?;
            if name == "kobject" {
                kobject = attrs;
            } else {
                klasses.push(Klass {
                    name: name.to_string(),
                    display_name: def.display_name,
                    icon: def.icon,
                    color: def.color,
                    standard: true,
                    attributes: attrs,
                    relationships: Vec::new(),
                    created_at: 0,
                    updated_at: 0,
                });
            }
        }
        debug_assert_eq!(klasses.len(), STANDARD_KLASSES.len());
        Ok(StandardKlasses { klasses, kobject })
    }
}

fn to_attributes(klass: &str, defs: Vec<AttributeDef>) -> Result<Vec<Attribute>, String> {
    let mut out = Vec::new();
    for (i, d) in defs.into_iter().enumerate() {
        let mut errors = Vec::new();
        let ty = d.check(&format!("/attributes/{i}"), &mut errors);
        if let (Some(ty), true) = (ty, errors.is_empty()) {
            // A standard attribute's index key is its name.
            let key = d.name.clone();
            out.push(d.into_attribute(ty, key, true));
        } else {
            return Err(format!(
                "klasses/{klass}.json: {}",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.pointer, e.title))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrType;

    #[test]
    fn embedded_definitions_load() {
        let s = StandardKlasses::load(None).unwrap();
        let names: Vec<&str> = s.klasses.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, STANDARD_KLASSES);
        let conv = s.klasses.iter().find(|k| k.name == "conversation").unwrap();
        let status = conv.attribute("status").unwrap();
        assert_eq!(status.ty, AttrType::Enum);
        assert_eq!(status.default, Some(serde_json::json!("open")));
        assert!(conv.attribute("customer").unwrap().required);
        assert_eq!(s.kobject.len(), 3);
    }

    #[test]
    fn a_broken_definition_names_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("klasses")).unwrap();
        for (name, text) in EMBEDDED {
            let text = if name == "note" {
                text.replace("\"type\": \"text\"", "\"typ\": \"text\"")
            } else {
                text.to_string()
            };
            std::fs::write(dir.path().join("klasses").join(format!("{name}.json")), text).unwrap();
        }
        let err = StandardKlasses::load(Some(dir.path())).unwrap_err();
        assert!(err.contains("note.json"), "{err}");
        assert!(err.contains("typ"), "{err}");
    }
}
