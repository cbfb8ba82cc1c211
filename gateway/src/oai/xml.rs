//! Writing the responses: the OAI-PMH envelope and the two metadata formats, `oai_dc` and the
//! native `rix` format.
//!
//! Text is escaped here and only here ([`Xml`]); a record's values are whatever a submitter
//! typed, so every one goes through [`escape`], which also replaces the characters XML 1.0
//! cannot carry at all (control characters, U+FFFE, U+FFFF) with U+FFFD — a response that does
//! not parse would stop a harvester at that page for good.
//!
//! What it may not touch: which records or fields are shown. It writes what [`super::verbs`]
//! hands it, which has already passed the access filter.

use serde_json::Value;

/// The OAI-PMH 2.0 namespace and the address of its schema.
pub const OAI_NS: &str = "http://www.openarchives.org/OAI/2.0/";
const OAI_SCHEMA: &str = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// `oai_dc`: its namespace and schema.
pub const OAI_DC_NS: &str = "http://www.openarchives.org/OAI/2.0/oai_dc/";
/// See [`OAI_DC_NS`].
pub const OAI_DC_SCHEMA: &str = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd";
const DC_NS: &str = "http://purl.org/dc/elements/1.1/";

/// The native format's namespace; its schema is `rix-1.0.xsd` in `gateway/standards/rix-oai/`,
/// served beside the provider at `/oai/rix-1.0.xsd`.
pub const RIX_NS: &str = "https://example.invalid/rix/oai/rix/1.0";
/// The native format's schema, as served (`include_str!` of the file in the repository).
pub const RIX_XSD: &str = include_str!("../../standards/rix-oai/rix-1.0.xsd");
/// Path of [`RIX_XSD`] under the gateway's root.
pub const RIX_XSD_PATH: &str = "/oai/rix-1.0.xsd";

/// `text` as XML character data or an attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser would turn a bare CR into LF, and tab and LF in an attribute into spaces.
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A response being written: elements opened and closed in order.
#[derive(Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    fn tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
    }

    /// `<name attrs…>`.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.out.push('>');
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name attrs…/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.out.push_str("/>");
    }

    /// `<name attrs…>text</name>`.
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.out.push_str(&escape(text));
        self.close(name);
    }

    /// `fragment`, already XML (written by another [`Xml`]).
    pub fn raw(&mut self, fragment: &str) {
        self.out.push_str(fragment);
    }

    /// The response so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The `request` element's attributes: the verb and arguments echoed (none after `badVerb`
/// or `badArgument`, as the protocol says).
pub type Echo<'a> = Vec<(&'a str, &'a str)>;

/// A whole response: the envelope around what `body` writes.
pub fn response(
    response_date: &str,
    base_url: &str,
    echo: &Echo<'_>,
    body: impl FnOnce(&mut Xml),
) -> String {
    let mut x = Xml::default();
    x.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let location = format!("{OAI_NS} {OAI_SCHEMA}");
    x.open(
        "OAI-PMH",
        &[
            ("xmlns", OAI_NS),
            ("xmlns:xsi", XSI_NS),
            ("xsi:schemaLocation", &location),
        ],
    );
    x.leaf("responseDate", &[], response_date);
    x.leaf("request", echo, base_url);
    body(&mut x);
    x.close("OAI-PMH");
    x.out.push('\n');
    x.finish()
}

/// What a record page shows of one entry, in the reader's view.
pub struct ItemView<'a> {
    /// The entry's OAI identifier.
    pub identifier: &'a str,
    /// Its unified id.
    pub unified_id: &'a str,
    /// `achievement` or `funded_project`.
    pub kind: &'a str,
    /// The record as the reader may see it.
    pub record: &'a Value,
    /// The sources the reader may know of: `(node_id, id, version, withdrawn)`.
    pub sources: &'a [(String, String, i64, bool)],
    /// OAI identifiers of the entries it links to, as the reader may know them.
    pub links: &'a [String],
    /// Its pages: the portal's and the API's.
    pub urls: &'a [String],
}

fn texts<'v>(v: &'v Value, pointer: &str, member: Option<&str>) -> Vec<&'v str> {
    match v.pointer(pointer) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match member {
                Some(m) => i.get(m).and_then(Value::as_str),
                None => i.as_str(),
            })
            .collect(),
        Some(Value::Object(_)) => member
            .and_then(|m| v.pointer(&format!("{pointer}/{m}")))
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The `oai_dc` rendering of `item`: Dublin Core's fifteen elements, as many as the record
/// fills. Every value is read from the view the reader was given.
pub fn oai_dc(x: &mut Xml, item: &ItemView<'_>) {
    let location = format!("{OAI_DC_NS} {OAI_DC_SCHEMA}");
    x.open(
        "oai_dc:dc",
        &[
            ("xmlns:oai_dc", OAI_DC_NS),
            ("xmlns:dc", DC_NS),
            ("xmlns:xsi", XSI_NS),
            ("xsi:schemaLocation", &location),
        ],
    );
    let r = item.record;
    let project = item.kind == "funded_project";
    let put = |x: &mut Xml, element: &str, values: Vec<&str>| {
        for v in values.into_iter().filter(|v| !v.trim().is_empty()) {
            x.leaf(element, &[], v);
        }
    };
    put(x, "dc:title", texts(r, "/title", None));
    if project {
        put(x, "dc:creator", texts(r, "/pi", Some("name")));
        put(x, "dc:creator", texts(r, "/lead", Some("name")));
        put(x, "dc:contributor", texts(r, "/participants", Some("name")));
        put(x, "dc:contributor", texts(r, "/funder", None));
    } else {
        put(x, "dc:creator", texts(r, "/completers", Some("name")));
        put(x, "dc:creator", texts(r, "/institutions", Some("name")));
    }
    put(x, "dc:subject", texts(r, "/keywords", None));
    if project {
        put(x, "dc:subject", texts(r, "/field", None));
        put(x, "dc:subject", texts(r, "/program", None));
    } else {
        put(x, "dc:subject", texts(r, "/classification/field", None));
        put(x, "dc:subject", texts(r, "/category", None));
    }
    put(x, "dc:description", texts(r, "/abstract", None));
    let publishers: Vec<&str> = item
        .sources
        .iter()
        .filter(|s| !s.3)
        .map(|s| s.0.as_str())
        .collect();
    put(x, "dc:publisher", publishers);
    let date = if project {
        texts(r, "/period/start", None)
    } else {
        let registered = texts(r, "/registration_date", None);
        if registered.is_empty() {
            texts(r, "/research_period/end", None)
        } else {
            registered
        }
    };
    put(x, "dc:date", date.into_iter().take(1).collect());
    put(x, "dc:type", vec![item.kind]);
    put(
        x,
        "dc:identifier",
        item.urls.iter().map(String::as_str).collect(),
    );
    put(x, "dc:identifier", vec![item.identifier]);
    if project {
        put(x, "dc:identifier", texts(r, "/project_no", None));
    } else {
        put(x, "dc:identifier", texts(r, "/registration_no", None));
    }
    put(x, "dc:language", vec!["zh"]);
    put(
        x,
        "dc:relation",
        item.links.iter().map(String::as_str).collect(),
    );
    if let Some(region) = texts(r, "/institutions", Some("region"))
        .into_iter()
        .chain(texts(r, "/lead", Some("region")))
        .next()
    {
        put(x, "dc:coverage", vec![region]);
    }
    x.close("oai_dc:dc");
}

/// The `rix` rendering of `item`: the whole view, losslessly — its sources, its links and the
/// record as JSON in XML (objects, arrays and scalars as `map`, `array`, `string`, `number`,
/// `boolean` and `null`, members named by `key`), so that a harvester reads back exactly the
/// JSON the API gives.
pub fn rix(x: &mut Xml, item: &ItemView<'_>, schema_url: &str) {
    let location = format!("{RIX_NS} {schema_url}");
    x.open(
        "rix:entry",
        &[
            ("xmlns:rix", RIX_NS),
            ("xmlns:xsi", XSI_NS),
            ("xsi:schemaLocation", &location),
            ("unified_id", item.unified_id),
            ("kind", item.kind),
        ],
    );
    for (node_id, id, version, withdrawn) in item.sources {
        x.empty(
            "rix:source",
            &[
                ("node_id", node_id),
                ("id", id),
                ("version", &version.to_string()),
                ("withdrawn", if *withdrawn { "true" } else { "false" }),
            ],
        );
    }
    for link in item.links {
        x.empty("rix:link", &[("identifier", link)]);
    }
    for url in item.urls {
        x.leaf("rix:url", &[], url);
    }
    x.open("rix:record", &[]);
    json_value(x, None, item.record);
    x.close("rix:record");
    x.close("rix:entry");
}

fn json_value(x: &mut Xml, key: Option<&str>, value: &Value) {
    let attrs: Vec<(&str, &str)> = key.map(|k| ("key", k)).into_iter().collect();
    match value {
        Value::Null => x.empty("rix:null", &attrs),
        Value::Bool(b) => x.leaf("rix:boolean", &attrs, if *b { "true" } else { "false" }),
        Value::Number(n) => x.leaf("rix:number", &attrs, &n.to_string()),
        Value::String(s) => x.leaf("rix:string", &attrs, s),
        Value::Array(items) => {
            x.open("rix:array", &attrs);
            for item in items {
                json_value(x, None, item);
            }
            x.close("rix:array");
        }
        Value::Object(members) => {
            x.open("rix:map", &attrs);
            for (k, v) in members {
                json_value(x, Some(k), v);
            }
            x.close("rix:map");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_xml_cannot_carry_is_escaped_or_replaced() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y\u{FFFF}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(escape("一\r\n二\t"), "一&#13;&#10;二&#9;");
        assert_eq!(escape("锂电池 ]]>"), "锂电池 ]]&gt;");
    }
}
