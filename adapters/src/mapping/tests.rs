//! Loading and checking mapping files: every mistake is one error naming its key.

use super::*;

fn err(toml: &str) -> String {
    Mapping::from_toml(toml).unwrap_err().to_string()
}

const HEAD: &str = "kind = \"achievement\"\nname = \"t\"\n";

#[test]
fn unknown_keys_and_kinds_are_named() {
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"成果名称\"\ntarget = \"/title\"\nconverter = \"text\"\n"
    ));
    assert!(e.contains("converter"), "{e}");
    let e =
        err("kind = \"patent\"\nname = \"t\"\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n");
    assert!(e.contains("patent") && e.contains("achievement"), "{e}");
    let e = err(&format!(
        "{HEAD}[layout]\nheader_rows = 2\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n"
    ));
    assert!(e.contains("header_rows"), "{e}");
}

#[test]
fn targets_are_checked_against_the_schema() {
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"成果名称\"\ntarget = \"/titel\"\n"
    ));
    assert!(e.contains("field[0].target") && e.contains("/titel"), "{e}");
    // A historical record's 登记日期 may be mapped: it travels beside the record.
    Mapping::from_toml(&format!(
        "{HEAD}[[field]]\ncolumn = \"登记日期\"\ntarget = \"/registration_date\"\nconvert = \"date\"\n"
    ))
    .unwrap();
    let e = err(
        "kind = \"funded_project\"\nname = \"t\"\n[[field]]\ncolumn = \"批准登记号\"\ntarget = \"/registration_no\"\n",
    );
    assert!(e.contains("no field /registration_no"), "{e}");
    let e = err(&format!(
        "{HEAD}[defaults]\n\"/secrecy/levle\" = \"public\"\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n"
    ));
    assert!(e.contains("defaults.\"/secrecy/levle\""), "{e}");
}

#[test]
fn converters_must_fit_their_target() {
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"密级\"\ntarget = \"/stage\"\nconvert = \"secrecy\"\n"
    ));
    assert!(
        e.contains("field[0].convert") && e.contains("public"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"名称\"\ntarget = \"/title\"\nconvert = \"code\"\n"
    ));
    assert!(e.contains("no code list"), "{e}");
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"名称\"\ntarget = \"/title\"\nconvert = \"trl\"\n"
    ));
    assert!(e.contains("integer") && e.contains("string"), "{e}");
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"名称\"\ntarget = \"/title\"\nconvert = \"datum\"\n"
    ));
    assert!(e.contains("unknown converter"), "{e}");
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"形式\"\ntarget = \"/forms\"\nconvert = \"forms\"\nvalues = {{ \"新技术\" = \"新技术\" }}\n"
    ));
    assert!(e.contains("field[0].values") && e.contains("新技术"), "{e}");
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"经费\"\ntarget = \"/transfer/price\"\nconvert = \"amount\"\nunit = \"美元\"\n"
    ));
    assert!(e.contains("field[0].unit"), "{e}");
    let e = err(&format!(
        "{HEAD}[[field]]\ncolumn = \"名称\"\ntarget = \"/title\"\nsplit = true\n"
    ));
    assert!(
        e.contains("field[0].split") && e.contains("one value"),
        "{e}"
    );
}

#[test]
fn names_identity_and_constants_are_checked() {
    let e = err(
        "kind = \"achievement\"\nname = \"a b\"\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n",
    );
    assert!(e.contains("`name`"), "{e}");
    let e = err(&format!(
        "{HEAD}identity = [\"/nope\"]\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n"
    ));
    assert!(e.contains("identity[0]"), "{e}");
    let e = err(&format!(
        "{HEAD}[constants]\n\"/title\" = \"x\"\n[[field]]\ncolumn = \"a\"\ntarget = \"/title\"\n"
    ));
    assert!(e.contains("constants") && e.contains("field[0]"), "{e}");
    let e = err(&format!("{HEAD}[[field]]\ntarget = \"/title\"\n"));
    assert!(e.contains("needs a column"), "{e}");
}

#[test]
fn a_good_mapping_loads_with_its_source_table_carried() {
    let m = Mapping::from_toml(&format!(
        "{HEAD}identity = [[\"/registration_no\"], [\"/title\"]]\n[source]\nformat = \"xlsx\"\nsheet = \"登记表\"\n[source.http]\npage_size = 100\n\
         [[field]]\ncolumn = [\"成果名称\", \"项目名称\"]\ntarget = \"/title\"\n\
         [[field]]\ncolumn = \"批准登记号\"\ntarget = \"/registration_no\"\nconvert = \"registration_no\"\n"
    ))
    .unwrap();
    assert_eq!(m.kind(), RecordKind::Achievement);
    assert_eq!(m.source().unwrap()["sheet"].as_str(), Some("登记表"));
    assert_eq!(m.identity(), vec![vec!["/registration_no"], vec!["/title"]]);
    assert_eq!(m.layout().header_min_matches, 2);
    assert_eq!(m.fields()[0].columns(), ["成果名称", "项目名称"]);
    assert!(
        m.to_string()
            .contains("成果名称 | 项目名称 → /title (text)")
    );
}
