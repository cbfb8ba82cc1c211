//! Workbook sources read real files: an XLSX written here with rust_xlsxwriter, an ODS
//! written here as the zip of XML it is, and an XLS made once by `fixtures/make_xls.py` — each
//! with what a province's 登记表 workbook holds (a title row above the header, merged cells,
//! date cells, numbers stored as text, full-width text, trailing spaces, blank rows, a hidden
//! sheet of drop-down lists).

use std::io::Write;
use std::path::{Path, PathBuf};

use rix_adapters::row::{Cell, RowData};
use rix_adapters::source::{self, SheetRef, SourceError, SourceOptions};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// (sheet, row, cells) of every row.
type Rows = Vec<(String, u64, Vec<Cell>)>;

fn read(path: &Path, options: &SourceOptions) -> Rows {
    source::open(path, options)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            assert_eq!(row.origin.file, path.display().to_string());
            match row.data {
                RowData::Cells(cells) => (row.origin.sheet.unwrap(), row.origin.row, cells),
                RowData::Tree(tree) => panic!("a workbook row is cells, not {tree}"),
            }
        })
        .collect()
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn sheets(refs: Vec<SheetRef>) -> SourceOptions {
    SourceOptions {
        sheets: refs,
        ..SourceOptions::default()
    }
}

/// 2019年: title merged over A1:F1, blank row 2, header row 3, two records whose institution is
/// merged over B4:B5, a white-space row 6, a record in row 7. 2020年: cells from C3 only (the
/// used range does not start at A1). 下拉选项: hidden.
fn write_xlsx(dir: &Path) -> PathBuf {
    let path = dir.join("登记表.xlsx");
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    let plain = Format::new();

    let sheet = workbook.add_worksheet();
    sheet.set_name("2019年").unwrap();
    sheet
        .merge_range(0, 0, 0, 5, "2019年度科技成果登记表", &plain)
        .unwrap();
    for (column, header) in [
        "成果名称",
        "第一完成单位",
        "登记日期",
        "经费（万元）",
        "批准登记号",
        "是否转化",
    ]
    .into_iter()
    .enumerate()
    {
        sheet.write_string(2, column as u16, header).unwrap();
    }
    sheet
        .write_string(3, 0, "基于深度学习的水稻病害识别 ")
        .unwrap();
    sheet
        .merge_range(3, 1, 4, 1, "云南农业大学", &plain)
        .unwrap();
    sheet
        .write_datetime_with_format(3, 2, ExcelDateTime::from_ymd(2019, 3, 1).unwrap(), &date)
        .unwrap();
    sheet.write_number(3, 3, 120.5).unwrap();
    sheet.write_string(3, 4, "5300002019Y0001").unwrap();
    sheet.write_boolean(3, 5, true).unwrap();
    sheet.write_string(4, 0, "高原湖泊蓝藻预警系统").unwrap();
    sheet
        .write_datetime_with_format(
            4,
            2,
            ExcelDateTime::from_ymd(2019, 11, 20)
                .unwrap()
                .and_hms(14, 30, 0)
                .unwrap(),
            &datetime,
        )
        .unwrap();
    sheet.write_string(4, 3, "０３５").unwrap();
    sheet.write_string(4, 4, "00123").unwrap();
    sheet.write_string(5, 0, "   ").unwrap();
    sheet.write_string(5, 2, "\u{3000}").unwrap();
    sheet.write_string(6, 0, "ＡＢＣ全角成果名称").unwrap();
    sheet.write_string(6, 1, "昆明理工大学  ").unwrap();

    let sheet = workbook.add_worksheet();
    sheet.set_name("2020年").unwrap();
    sheet.write_string(2, 2, "成果名称").unwrap();
    sheet.write_string(2, 3, "第一完成单位").unwrap();
    sheet.write_string(3, 2, "三七种植标准").unwrap();
    sheet.write_number(3, 3, 7).unwrap();

    let sheet = workbook.add_worksheet();
    sheet.set_name("下拉选项").unwrap();
    sheet.write_string(0, 0, "公开").unwrap();
    sheet.write_string(1, 0, "内部").unwrap();
    sheet.set_hidden(true);

    workbook.save(&path).unwrap();
    path
}

fn xlsx_2019() -> Rows {
    let sheet = || "2019年".to_owned();
    let title = text("2019年度科技成果登记表");
    vec![
        (sheet(), 1, vec![title.clone(); 6]),
        (
            sheet(),
            3,
            [
                "成果名称",
                "第一完成单位",
                "登记日期",
                "经费（万元）",
                "批准登记号",
                "是否转化",
            ]
            .map(text)
            .to_vec(),
        ),
        (
            sheet(),
            4,
            vec![
                text("基于深度学习的水稻病害识别 "),
                text("云南农业大学"),
                Cell::DateSerial(43525.0),
                Cell::Number(120.5),
                text("5300002019Y0001"),
                Cell::Bool(true),
            ],
        ),
        (
            sheet(),
            5,
            vec![
                text("高原湖泊蓝藻预警系统"),
                text("云南农业大学"),
                Cell::DateSerial(43789.0 + 52_200_000.0 / 86_400_000.0),
                text("０３５"),
                text("00123"),
            ],
        ),
        (
            sheet(),
            7,
            vec![text("ＡＢＣ全角成果名称"), text("昆明理工大学  ")],
        ),
    ]
}

fn xlsx_2020() -> Rows {
    vec![
        (
            "2020年".to_owned(),
            3,
            vec![
                Cell::Empty,
                Cell::Empty,
                text("成果名称"),
                text("第一完成单位"),
            ],
        ),
        (
            "2020年".to_owned(),
            4,
            vec![
                Cell::Empty,
                Cell::Empty,
                text("三七种植标准"),
                Cell::Number(7.0),
            ],
        ),
    ]
}

#[test]
fn xlsx_rows_carry_typed_cells_merged_values_and_excel_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_xlsx(dir.path());
    let mut expected = xlsx_2019();
    expected.extend(xlsx_2020());
    assert_eq!(read(&path, &SourceOptions::default()), expected);
}

#[test]
fn xlsx_sheets_are_chosen_by_name_or_position_and_hidden_ones_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_xlsx(dir.path());
    assert_eq!(
        read(&path, &sheets(vec![SheetRef::Name("下拉选项".into())])),
        vec![
            ("下拉选项".to_owned(), 1, vec![text("公开")]),
            ("下拉选项".to_owned(), 2, vec![text("内部")]),
        ]
    );
    let mut expected = xlsx_2020();
    expected.extend(xlsx_2019());
    assert_eq!(
        read(
            &path,
            &sheets(vec![SheetRef::Position(2), SheetRef::Name("2019年".into())])
        ),
        expected
    );
}

#[test]
fn a_missing_sheet_is_refused_with_the_sheets_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_xlsx(dir.path());
    for (wanted, shown) in [
        (SheetRef::Name("2021年".into()), "\"2021年\""),
        (SheetRef::Position(4), "number 4"),
    ] {
        match source::open(&path, &sheets(vec![wanted])) {
            Err(SourceError::SheetNotFound {
                file,
                wanted,
                available,
            }) => {
                assert_eq!(file, path.display().to_string());
                assert_eq!(wanted, shown);
                assert_eq!(available, vec!["2019年", "2020年", "下拉选项"]);
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a missing sheet was accepted"),
        }
    }
}

#[test]
fn a_file_that_is_not_a_workbook_is_refused_before_any_row_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, advice) in [
        ("登记表.xlsx", "成果名称,第一完成单位\n", "name it .csv"),
        (
            "登记表.xls",
            "\u{FEFF}<html><table><tr><td>成果名称</td></tr></table></html>",
            "save it as .xlsx",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        match source::open(&path, &SourceOptions::default()) {
            Err(error @ SourceError::Workbook { .. }) => {
                let SourceError::Workbook { file, sheet, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(file, &path.display().to_string());
                assert_eq!(sheet, &None);
                assert!(error.to_string().contains(advice), "{error}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("{name} was read as a workbook"),
        }
    }
}

#[test]
fn a_workbook_is_read_as_what_it_is_whatever_its_name_says() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = write_xlsx(dir.path());
    let misnamed = dir.path().join("导出.xls");
    std::fs::rename(&xlsx, &misnamed).unwrap();
    let rows = read(&misnamed, &sheets(vec![SheetRef::Name("2020年".into())]));
    assert_eq!(rows, xlsx_2020());
}

#[test]
fn xls_rows_carry_typed_cells_merged_values_and_excel_row_numbers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registration.xls");
    let sheet = || "登记表".to_owned();
    let title = text("2018年度科技成果登记表");
    assert_eq!(
        read(&path, &SourceOptions::default()),
        vec![
            (sheet(), 1, vec![title.clone(); 5]),
            (
                sheet(),
                2,
                [
                    "成果名称",
                    "第一完成单位",
                    "登记日期",
                    "经费（万元）",
                    "成果密级"
                ]
                .map(text)
                .to_vec()
            ),
            (
                sheet(),
                3,
                vec![
                    text("茶叶病虫害绿色防控技术 "),
                    text("云南农业大学"),
                    Cell::DateSerial(43281.0),
                    Cell::Number(85.5),
                    text("公开"),
                ]
            ),
            (
                sheet(),
                4,
                vec![
                    text("ＧＰＳ高原测绘"),
                    text("云南农业大学"),
                    text("2018.07"),
                    text("０４０"),
                    text("内部"),
                ]
            ),
        ]
    );
    assert_eq!(
        read(&path, &sheets(vec![SheetRef::Position(2)])),
        vec![
            ("下拉选项".to_owned(), 1, vec![text("公开")]),
            ("下拉选项".to_owned(), 2, vec![text("内部")]),
        ]
    );
}

/// An ODS file as LibreOffice and WPS write it: two empty rows above a title spanning three
/// columns, a header, an institution spanning two rows, ISO date cells.
fn write_ods(dir: &Path) -> PathBuf {
    let content = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">
<office:body><office:spreadsheet>
<table:table table:name="成果">
<table:table-column table:number-columns-repeated="4"/>
<table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="4"/></table:table-row>
<table:table-row><table:table-cell table:number-columns-spanned="3" office:value-type="string"><text:p>2019年度科技成果登记表</text:p></table:table-cell><table:covered-table-cell table:number-columns-repeated="2"/><table:table-cell/></table:table-row>
<table:table-row><table:table-cell office:value-type="string"><text:p>成果名称</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>第一完成单位</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>登记日期</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>经费</text:p></table:table-cell></table:table-row>
<table:table-row><table:table-cell office:value-type="string"><text:p>水稻病害识别 </text:p></table:table-cell><table:table-cell table:number-rows-spanned="2" office:value-type="string"><text:p>云南大学</text:p></table:table-cell><table:table-cell office:value-type="date" office:date-value="2019-03-01"><text:p>2019-03-01</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="12.5"><text:p>12.5</text:p></table:table-cell></table:table-row>
<table:table-row><table:table-cell office:value-type="string"><text:p>普洱茶发酵工艺</text:p></table:table-cell><table:covered-table-cell/><table:table-cell office:value-type="date" office:date-value="2020-01-15T08:00:00"><text:p>2020-01-15 08:00</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>０４０</text:p></table:table-cell></table:table-row>
</table:table>
<table:table table:name="说明">
<table:table-row><table:table-cell office:value-type="string"><text:p>填表说明</text:p></table:table-cell></table:table-row>
</table:table>
</office:spreadsheet></office:body></office:document-content>"#;
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">
<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>
<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"#;
    let path = dir.join("登记表.ods");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in [
        ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", manifest),
        ("content.xml", content),
    ] {
        zip.start_file(name, stored).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path
}

#[test]
fn ods_rows_carry_typed_cells_merged_values_and_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_ods(dir.path());
    let sheet = || "成果".to_owned();
    let title = text("2019年度科技成果登记表");
    assert_eq!(
        read(&path, &SourceOptions::default()),
        vec![
            (sheet(), 3, vec![title.clone(); 3]),
            (
                sheet(),
                4,
                ["成果名称", "第一完成单位", "登记日期", "经费"]
                    .map(text)
                    .to_vec()
            ),
            (
                sheet(),
                5,
                vec![
                    text("水稻病害识别 "),
                    text("云南大学"),
                    Cell::DateSerial(43525.0),
                    Cell::Number(12.5),
                ]
            ),
            (
                sheet(),
                6,
                vec![
                    text("普洱茶发酵工艺"),
                    text("云南大学"),
                    Cell::DateSerial(43845.0 + 28_800.0 / 86_400.0),
                    text("０４０"),
                ]
            ),
            ("说明".to_owned(), 1, vec![text("填表说明")]),
        ]
    );
}
