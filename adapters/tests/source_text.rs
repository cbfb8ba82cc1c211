//! Text sources read real files: CSV and TSV in UTF-8 (with and without a byte order mark),
//! GBK, GB18030 and UTF-16; XML exports in UTF-8 and GBK; JSON Lines with bad lines among good
//! ones. Every test asserts the exact rows and errors.

use std::path::{Path, PathBuf};

use encoding_rs::{GB18030, GBK, UTF_8};
use rix_adapters::row::{Cell, Origin, RowData, SourceRow};
use rix_adapters::source::csv::{CsvOptions, CsvRows};
use rix_adapters::source::jsonl::JsonLinesRows;
use rix_adapters::source::xml::XmlRows;
use rix_adapters::source::{self, Format, SourceError, SourceOptions};
use serde_json::json;

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// (line, cells) of rows that must all be read without error.
fn cells(rows: impl Iterator<Item = Result<SourceRow, SourceError>>) -> Vec<(u64, Vec<Cell>)> {
    rows.map(|row| {
        let row = row.unwrap();
        assert_eq!(row.origin.sheet, None);
        match row.data {
            RowData::Cells(cells) => (row.origin.row, cells),
            RowData::Tree(tree) => panic!("a CSV row is cells, not {tree}"),
        }
    })
    .collect()
}

fn csv_rows(bytes: Vec<u8>, options: CsvOptions) -> CsvRows {
    CsvRows::new(std::io::Cursor::new(bytes), "导出.csv".to_owned(), options).unwrap()
}

/// A 登记表 export: a quoted abstract over two lines, a comma inside quotes, trailing spaces
/// kept, an empty field, a blank line and a line of empty fields (not yielded), rows of
/// different lengths.
const REGISTER: &str = "成果名称,成果简介,第一完成单位,经费（万元）\r\n\
\"基于深度学习的水稻病害识别\",\"第一行简介\r\n第二行简介\",云南农业大学  ,120.5\r\n\
\r\n\
,,,\r\n\
高原湖泊蓝藻预警系统,\"含,逗号\",,\r\n\
只有一列\r\n\
三七种植标准,简介,昆明理工大学,7,多出的一列\r\n";

fn register_rows() -> Vec<(u64, Vec<Cell>)> {
    vec![
        (
            1,
            ["成果名称", "成果简介", "第一完成单位", "经费（万元）"]
                .map(text)
                .to_vec(),
        ),
        (
            2,
            vec![
                text("基于深度学习的水稻病害识别"),
                text("第一行简介\r\n第二行简介"),
                text("云南农业大学  "),
                text("120.5"),
            ],
        ),
        (
            6,
            vec![
                text("高原湖泊蓝藻预警系统"),
                text("含,逗号"),
                Cell::Empty,
                Cell::Empty,
            ],
        ),
        (7, vec![text("只有一列")]),
        (
            8,
            ["三七种植标准", "简介", "昆明理工大学", "7", "多出的一列"]
                .map(text)
                .to_vec(),
        ),
    ]
}

#[test]
fn gbk_csv_is_detected_and_decoded_with_records_numbered_by_their_first_line() {
    let (bytes, _, unmappable) = GBK.encode(REGISTER);
    assert!(!unmappable);
    let rows = csv_rows(bytes.into_owned(), CsvOptions::default());
    assert_eq!(rows.encoding(), GBK);
    assert_eq!(cells(rows), register_rows());
}

#[test]
fn rows_are_numbered_by_their_first_line_whatever_the_line_ends() {
    let expected = |inner: &str| {
        vec![
            (1, vec![text("a")]),
            (3, vec![text(&format!("b{inner}c")), text("x")]),
            (5, vec![text("d")]),
        ]
    };
    let read = |content: &str| cells(csv_rows(content.as_bytes().to_vec(), CsvOptions::default()));
    assert_eq!(read("a\n\n\"b\nc\",x\nd"), expected("\n"));
    assert_eq!(read("a\n\n\"b\nc\",x\nd\n"), expected("\n"));
    assert_eq!(read("a\r\n\r\n\"b\r\nc\",x\r\nd"), expected("\r\n"));
    assert_eq!(read("a\r\n\r\n\"b\r\nc\",\"x\"\r\nd\r\n"), expected("\r\n"));
    // Old Macintosh line ends (CR alone): rows are numbered by record.
    assert_eq!(
        read("a\rb\rc\r"),
        vec![
            (1, vec![text("a")]),
            (2, vec![text("b")]),
            (3, vec![text("c")])
        ]
    );
}

#[test]
fn gb18030_csv_keeps_characters_beyond_gbk_detected_or_forced() {
    // 𠀀 (U+20000) and 䶮 (U+4DAE) are four-byte sequences in GB18030, absent from GBK.
    let content = "成果名称,完成人\n𠀀字库扩展研究,刘䶮\n";
    let (bytes, _, unmappable) = GB18030.encode(content);
    assert!(!unmappable);
    let expected = vec![
        (1, vec![text("成果名称"), text("完成人")]),
        (2, vec![text("𠀀字库扩展研究"), text("刘䶮")]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "导出.csv", &bytes);
    let forced = SourceOptions {
        encoding: Some("GB18030".to_owned()),
        ..SourceOptions::default()
    };
    assert_eq!(cells(source::open(&path, &forced).unwrap()), expected);
    assert_eq!(
        cells(source::open(&path, &SourceOptions::default()).unwrap()),
        expected
    );
}

#[test]
fn utf8_csv_with_a_byte_order_mark_loses_the_mark_and_nothing_else() {
    let mut bytes = "\u{FEFF}".as_bytes().to_vec();
    bytes.extend_from_slice(REGISTER.as_bytes());
    let rows = csv_rows(bytes, CsvOptions::default());
    assert_eq!(rows.encoding(), UTF_8);
    assert_eq!(cells(rows), register_rows());
    let rows = csv_rows(REGISTER.as_bytes().to_vec(), CsvOptions::default());
    assert_eq!(rows.encoding(), UTF_8);
    assert_eq!(cells(rows), register_rows());
}

#[test]
fn tsv_is_split_on_tabs_by_its_extension_and_utf16_by_its_mark() {
    let content = "成果名称\t关键词\n水稻, 病害\t水稻；病害、识别\n";
    let expected = vec![
        (1, vec![text("成果名称"), text("关键词")]),
        (2, vec![text("水稻, 病害"), text("水稻；病害、识别")]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "导出.tsv", content.as_bytes());
    assert_eq!(Format::from_path(&path), Some(Format::Tsv));
    assert_eq!(
        cells(source::open(&path, &SourceOptions::default()).unwrap()),
        expected
    );
    // Excel's "Unicode text" export: UTF-16LE with a byte order mark, tab-separated.
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in content.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let path = write(dir.path(), "unicode.txt", &utf16);
    let options = SourceOptions {
        format: Some(Format::Tsv),
        ..SourceOptions::default()
    };
    assert_eq!(cells(source::open(&path, &options).unwrap()), expected);
}

#[test]
fn a_semicolon_delimiter_and_no_quoting_are_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "导出.csv",
        "名称;单位\n\"引号\"成果;云南\n".as_bytes(),
    );
    let options = SourceOptions {
        delimiter: Some(';'),
        no_quoting: true,
        ..SourceOptions::default()
    };
    assert_eq!(
        cells(source::open(&path, &options).unwrap()),
        vec![
            (1, vec![text("名称"), text("单位")]),
            (2, vec![text("\"引号\"成果"), text("云南")]),
        ]
    );
    let options = SourceOptions {
        delimiter: Some('；'),
        ..SourceOptions::default()
    };
    assert!(matches!(
        source::open(&path, &options),
        Err(SourceError::Options { .. })
    ));
}

#[test]
fn a_row_with_bytes_invalid_in_the_encoding_is_refused_alone_with_its_offset() {
    let mut bytes = "名称,单位\n好的一行,云南\n坏".as_bytes().to_vec();
    let bad_offset = bytes.len() as u64;
    bytes.push(0xFF);
    bytes.extend_from_slice("的一行,贵州\n后面的行,四川\n".as_bytes());
    let rows: Vec<_> = csv_rows(
        bytes,
        CsvOptions {
            encoding: Some(UTF_8),
            ..CsvOptions::default()
        },
    )
    .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        cells(rows[..2].iter().cloned_ok()),
        vec![
            (1, vec![text("名称"), text("单位")]),
            (2, vec![text("好的一行"), text("云南")]),
        ]
    );
    match &rows[2] {
        Err(SourceError::Undecodable {
            origin,
            line,
            byte,
            encoding,
        }) => {
            assert_eq!(
                origin,
                &Origin {
                    file: "导出.csv".to_owned(),
                    sheet: None,
                    row: 3
                }
            );
            assert_eq!((*line, *byte, *encoding), (3, bad_offset, "UTF-8"));
            assert_eq!(rows[2].as_ref().unwrap_err().row_origin(), Some(origin));
        }
        other => panic!("expected the third line refused, got {other:?}"),
    }
    assert_eq!(
        cells(rows[3..].iter().cloned_ok()),
        vec![(4, vec![text("后面的行"), text("四川")])]
    );
}

/// Clones the `Ok` rows of a slice of results (all must be `Ok`).
trait ClonedOk<'a> {
    fn cloned_ok(self) -> std::vec::IntoIter<Result<SourceRow, SourceError>>;
}

impl<'a, I: Iterator<Item = &'a Result<SourceRow, SourceError>>> ClonedOk<'a> for I {
    fn cloned_ok(self) -> std::vec::IntoIter<Result<SourceRow, SourceError>> {
        self.map(|r| Ok(r.as_ref().unwrap().clone()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

#[test]
fn a_file_of_unknown_format_is_refused_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "导出.dat", b"a,b\n");
    let error = source::open(&path, &SourceOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::UnknownFormat { .. }));
    assert!(error.to_string().contains("format = \"xlsx\""), "{error}");
    let options = SourceOptions {
        encoding: Some("big-five-ish".into()),
        ..SourceOptions::default()
    };
    let path = write(dir.path(), "导出.csv", b"a,b\n");
    assert!(matches!(
        source::open(&path, &options),
        Err(SourceError::UnknownEncoding { label }) if label == "big-five-ish"
    ));
}

// ---------------------------------------------------------------- XML

const EXPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- 国家科技成果登记系统 导出 -->
<成果列表 xmlns:x="urn:example">
  <成果 编号="53-2019-001" x:状态="已登记">
    <成果名称>基于深度学习的水稻病害识别 &amp; 预警</成果名称>
    <关键词>水稻</关键词>
    <关键词>病害</关键词>
    <完成单位 排名="1">云南农业大学</完成单位>
    <完成单位 排名="2"/>
    <成果简介><![CDATA[<b>第一行</b>]]>
第二行&#x4E2D;</成果简介>
    <联系人><姓名>张三</姓名><电话>0871-1234</电话></联系人>
    <备注/>
    <说明>见<附件>附件一</附件>及其他</说明>
  </成果>
  <成果>三七种植标准</成果>
  <成果 编号="53-2019-003"/>
</成果列表>
"#;

fn trees(rows: XmlRows) -> Vec<(u64, serde_json::Value)> {
    rows.map(|row| {
        let row = row.unwrap();
        match row.data {
            RowData::Tree(tree) => (row.origin.row, tree),
            RowData::Cells(cells) => panic!("an XML record is a tree, not {cells:?}"),
        }
    })
    .collect()
}

fn first_record() -> serde_json::Value {
    json!({
        "@编号": "53-2019-001",
        "@x:状态": "已登记",
        "成果名称": "基于深度学习的水稻病害识别 & 预警",
        "关键词": ["水稻", "病害"],
        "完成单位": [{"@排名": "1", "$text": "云南农业大学"}, {"@排名": "2"}],
        "成果简介": "<b>第一行</b>\n第二行中",
        "联系人": {"姓名": "张三", "电话": "0871-1234"},
        "备注": "",
        "说明": {"附件": "附件一", "$text": "见及其他"},
    })
}

#[test]
fn xml_records_become_trees_with_attributes_repeats_entities_and_mixed_text() {
    let rows = XmlRows::new(
        std::io::Cursor::new(EXPORT.as_bytes().to_vec()),
        "export.xml".to_owned(),
        "成果",
        None,
    )
    .unwrap();
    assert_eq!(
        trees(rows),
        vec![
            (1, first_record()),
            (2, json!({"$text": "三七种植标准"})),
            (3, json!({"@编号": "53-2019-003"})),
        ]
    );
}

#[test]
fn gbk_declared_xml_is_decoded_per_its_declaration() {
    let content = EXPORT.replace("encoding=\"UTF-8\"", "encoding=\"GBK\"");
    let (bytes, _, unmappable) = GBK.encode(&content);
    assert!(!unmappable);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "export.xml", &bytes);
    let options = SourceOptions {
        record: Some("/成果列表/成果".to_owned()),
        ..SourceOptions::default()
    };
    let rows: Vec<(u64, serde_json::Value)> = source::open(&path, &options)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            assert_eq!(row.origin.file, path.display().to_string());
            match row.data {
                RowData::Tree(tree) => (row.origin.row, tree),
                RowData::Cells(_) => unreachable!(),
            }
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, first_record()),
            (2, json!({"$text": "三七种植标准"})),
            (3, json!({"@编号": "53-2019-003"})),
        ]
    );
}

#[test]
fn an_absolute_path_takes_only_the_records_at_that_path() {
    let xml = "<root><records><record><id>1</id></record><record><id>2</id></record></records>\
               <archive><record><id>old</id></record></archive></root>";
    let rows = XmlRows::new(
        std::io::Cursor::new(xml.as_bytes().to_vec()),
        "x.xml".to_owned(),
        "/root/records/record",
        None,
    )
    .unwrap();
    assert_eq!(
        trees(rows),
        vec![(1, json!({"id": "1"})), (2, json!({"id": "2"}))]
    );
    let rows = XmlRows::new(
        std::io::Cursor::new(xml.as_bytes().to_vec()),
        "x.xml".to_owned(),
        "record",
        None,
    )
    .unwrap();
    assert_eq!(
        trees(rows),
        vec![
            (1, json!({"id": "1"})),
            (2, json!({"id": "2"})),
            (3, json!({"id": "old"}))
        ]
    );
}

#[test]
fn a_record_with_an_undefined_entity_is_refused_alone_and_a_broken_document_stops_with_its_line() {
    let xml = "<列表>\n<成果><名称>一</名称></成果>\n<成果>\n<名称>二&nbsp;</名称></成果>\n\
               <成果><名称>三</名称></成果>\n<成果><名称>四</名称></成果名称>\n<成果><名称>五</名称></成果>\n</列表>";
    let rows: Vec<_> = XmlRows::new(
        std::io::Cursor::new(xml.as_bytes().to_vec()),
        "bad.xml".to_owned(),
        "成果",
        None,
    )
    .unwrap()
    .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let tree = |i: usize| match &rows[i] {
        Ok(SourceRow {
            origin,
            data: RowData::Tree(tree),
        }) => (origin.row, tree.clone()),
        other => panic!("row {i}: {other:?}"),
    };
    assert_eq!(tree(0), (1, json!({"名称": "一"})));
    match &rows[1] {
        Err(SourceError::XmlRecord {
            origin,
            line,
            message,
        }) => {
            assert_eq!(origin.row, 2);
            assert_eq!(*line, 3);
            assert!(message.contains("&nbsp;"), "{message}");
        }
        other => panic!("expected record 2 refused, got {other:?}"),
    }
    assert_eq!(tree(2), (3, json!({"名称": "三"})));
    match &rows[3] {
        Err(error @ SourceError::Xml { file, line, .. }) => {
            assert_eq!(file, "bad.xml");
            assert_eq!(*line, 6);
            assert_eq!(error.row_origin(), None);
        }
        other => panic!("expected the document refused at line 6, got {other:?}"),
    }
}

#[test]
fn xml_needs_its_record_element_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "export.xml", EXPORT.as_bytes());
    let error = source::open(&path, &SourceOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Options { .. }));
    assert!(error.to_string().contains("record = \"成果\""), "{error}");
}

// ---------------------------------------------------------------- JSON Lines

#[test]
fn json_lines_yield_objects_and_refuse_bad_lines_alone() {
    let lines = "\u{FEFF}{\"title\":\"水稻病害识别\",\"trl\":6}\n\
                 \n\
                 not json at all\n\
                 [1,2]\n\
                 {\"secrecy\":{\"level\":\"secret\"},\"secrecy\":{\"level\":\"public\"}}\n   \n\
                 {\"title\":\"三七种植标准\",\"keywords\":[\"三七\"]}\r\n";
    let rows: Vec<_> = JsonLinesRows::new(
        std::io::Cursor::new(lines.as_bytes().to_vec()),
        "exchange.jsonl".to_owned(),
    )
    .collect();
    assert_eq!(rows.len(), 5);
    let ok = |i: usize| match &rows[i] {
        Ok(SourceRow {
            origin,
            data: RowData::Tree(tree),
        }) => (origin.row, tree.clone()),
        other => panic!("row {i}: {other:?}"),
    };
    let refused = |i: usize| match &rows[i] {
        Err(SourceError::JsonLine { origin, message }) => (origin.row, message.clone()),
        other => panic!("row {i}: {other:?}"),
    };
    assert_eq!(ok(0), (1, json!({"title": "水稻病害识别", "trl": 6})));
    assert_eq!(
        refused(1),
        (3, "not valid JSON (column 2): expected ident".to_owned())
    );
    assert_eq!(
        refused(2),
        (
            4,
            "the line is JSON but an array, not an object; each line must be one record {…}"
                .to_owned()
        )
    );
    let (line, message) = refused(3);
    assert_eq!(line, 5);
    assert!(message.starts_with("/secrecy is given twice"), "{message}");
    assert_eq!(
        ok(4),
        (7, json!({"title": "三七种植标准", "keywords": ["三七"]}))
    );
}
