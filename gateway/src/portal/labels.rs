//! The words of the portal: interface labels in Chinese and English, and the Chinese label of
//! every record field the schema knows.
//!
//! Only the interface is translated (`?lang=en`); the records' values stay as registered, in
//! Chinese. Field labels are labels only: which fields a reader sees is decided by the access
//! filter, never here, so a field missing from [`FIELD_LABELS`] still shows (under its key).

/// The interface language, carried in every link as `lang=en` (Chinese needs no parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 中文, the default.
    #[default]
    Zh,
    /// English interface labels.
    En,
}

impl Lang {
    /// From the `lang` parameter: `en` is English, anything else Chinese.
    pub fn from_param(value: Option<&str>) -> Lang {
        match value {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    /// The value of `<html lang>`.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The interface words.
    pub fn ui(self) -> &'static Ui {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    /// `zh` or `en` of a pair.
    pub fn pick(self, (zh, en): (&'static str, &'static str)) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// Every interface string of the portal, one language.
pub struct Ui {
    pub site: &'static str,
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub nav_search: &'static str,
    pub nav_stats: &'static str,
    pub nav_about: &'static str,
    pub other_lang: &'static str,
    pub other_lang_code: &'static str,
    pub query_label: &'static str,
    pub query_placeholder: &'static str,
    pub kind_label: &'static str,
    pub kind_all: &'static str,
    pub kind_achievement: &'static str,
    pub kind_project: &'static str,
    pub sort_label: &'static str,
    pub sort_relevance: &'static str,
    pub sort_date: &'static str,
    pub submit: &'static str,
    pub results: &'static str,
    pub total_before: &'static str,
    pub total_after: &'static str,
    pub filters_label: &'static str,
    pub active_filters: &'static str,
    pub remove_filter: &'static str,
    pub clear_all: &'static str,
    pub facet_region: &'static str,
    pub facet_field: &'static str,
    pub facet_category: &'static str,
    pub facet_program: &'static str,
    pub facet_trl: &'static str,
    pub facet_transfer_mode: &'static str,
    pub facet_year: &'static str,
    pub facet_kind: &'static str,
    pub facet_node: &'static str,
    pub facet_query: &'static str,
    pub trl_at_least: &'static str,
    pub next_page: &'static str,
    pub first_page: &'static str,
    pub pages_label: &'static str,
    pub download: &'static str,
    pub empty_title: &'static str,
    pub empty_hint_query: &'static str,
    pub empty_hint_filters: &'static str,
    pub empty_hint_catalogue: &'static str,
    pub region_unknown: &'static str,
    pub year_unknown: &'static str,
    pub record_fields: &'static str,
    pub record_links: &'static str,
    pub record_links_none: &'static str,
    pub record_sources: &'static str,
    pub verification: &'static str,
    pub verification_intro: &'static str,
    pub v_node: &'static str,
    pub v_record: &'static str,
    pub v_version: &'static str,
    pub v_key: &'static str,
    pub v_batch: &'static str,
    pub v_seq: &'static str,
    pub v_root: &'static str,
    pub v_proof: &'static str,
    pub v_leaf: &'static str,
    pub v_status: &'static str,
    pub v_verified: &'static str,
    pub v_withdrawn: &'static str,
    pub v_download: &'static str,
    pub v_commands: &'static str,
    pub v_unavailable: &'static str,
    pub hidden_value: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub stats_title: &'static str,
    pub stats_intro: &'static str,
    pub stats_by_region: &'static str,
    pub stats_by_year: &'static str,
    pub stats_by_field: &'static str,
    pub stats_by_program: &'static str,
    pub stats_value: &'static str,
    pub stats_count: &'static str,
    pub stats_csv: &'static str,
    pub stats_table: &'static str,
    pub stats_more: &'static str,
    pub about_title: &'static str,
    pub error_title: &'static str,
    pub error_back: &'static str,
    pub not_found: &'static str,
    pub unauthorized: &'static str,
    pub busy: &'static str,
    pub unavailable: &'static str,
    pub footer: &'static str,
    pub prev_page: &'static str,
    pub page_before: &'static str,
    pub page_after: &'static str,
    pub history: &'static str,
    pub history_intro: &'static str,
    pub h_version_before: &'static str,
    pub h_version_after: &'static str,
    pub h_received: &'static str,
    pub h_level: &'static str,
    pub h_changed: &'static str,
    pub h_first: &'static str,
    pub h_same: &'static str,
    pub h_withdrawn: &'static str,
    pub h_current: &'static str,
    /// The footer's account of the reader's view: the part before the list of what it shows.
    pub view_shows: &'static str,
    pub view_public_records: &'static str,
    pub view_internal_records: &'static str,
    pub view_commercial: &'static str,
    pub view_personal: &'static str,
    /// What no reader is shown, whoever they are.
    pub view_never: &'static str,
    /// What this reader is not shown, before the list.
    pub view_not_shown: &'static str,
    pub view_sep: &'static str,
    pub view_token: &'static str,
    pub view_anonymous: &'static str,
}

const ZH: Ui = Ui {
    site: "国家科技成果信息查询",
    skip: "跳到主要内容",
    nav_label: "主导航",
    nav_search: "检索",
    nav_stats: "统计",
    nav_about: "关于",
    other_lang: "English",
    other_lang_code: "en",
    query_label: "检索词",
    query_placeholder: "成果名称、关键词、单位、项目编号……",
    kind_label: "类型",
    kind_all: "全部",
    kind_achievement: "科技成果",
    kind_project: "科技计划项目",
    sort_label: "排序",
    sort_relevance: "相关度",
    sort_date: "日期（新→旧）",
    submit: "检索",
    results: "检索结果",
    total_before: "共",
    total_after: "条",
    filters_label: "筛选",
    active_filters: "已选条件",
    remove_filter: "移除条件",
    clear_all: "清除全部条件",
    facet_region: "省份",
    facet_field: "技术领域",
    facet_category: "成果类别",
    facet_program: "计划类别",
    facet_trl: "技术就绪度",
    facet_transfer_mode: "转化方式",
    facet_year: "年份",
    facet_kind: "类型",
    facet_node: "发布节点",
    facet_query: "检索词",
    trl_at_least: "不低于",
    next_page: "下一页",
    first_page: "第一页",
    pages_label: "翻页",
    download: "下载这些结果",
    empty_title: "没有找到结果",
    empty_hint_query: "试试更短或更常用的词，例如“电池”“传感器”；中文词按字面匹配，英文按整词匹配。",
    empty_hint_filters: "也可以移除部分筛选条件再试。",
    empty_hint_catalogue: "目录中还没有公开的记录。",
    region_unknown: "地区不详",
    year_unknown: "年份不详",
    record_fields: "登记信息",
    record_links: "关联的项目与成果",
    record_links_none: "没有可见的关联记录。",
    record_sources: "来源节点",
    verification: "验证信息",
    verification_intro: "每条记录都由登记它的节点签名发布，网关在入库时核验签名与 Merkle 证明；下列材料可供任何人独立复核。",
    v_node: "签名节点",
    v_record: "节点记录号",
    v_version: "版本",
    v_key: "密钥标识",
    v_batch: "批次",
    v_seq: "条目序号",
    v_root: "Merkle 根",
    v_proof: "Merkle 证明",
    v_leaf: "叶序号 / 树大小",
    v_status: "状态",
    v_verified: "已验证：网关入库时核验了签名、链与证明",
    v_withdrawn: "已撤回",
    v_download: "下载验证材料（JSON）",
    v_commands: "用 openssl 复核",
    v_unavailable: "该版本的验证材料不可用。",
    hidden_value: "（不公开）",
    yes: "是",
    no: "否",
    stats_title: "统计",
    stats_intro: "按省份、年份、技术领域和计划类别统计的可见记录数。",
    stats_by_region: "按省份",
    stats_by_year: "按年份",
    stats_by_field: "按技术领域",
    stats_by_program: "按计划类别",
    stats_value: "类别",
    stats_count: "记录数",
    stats_csv: "下载 CSV",
    stats_table: "数据表",
    stats_more: "图中只显示前若干项，完整数据见表格与 CSV。",
    about_title: "关于本目录",
    error_title: "出错了",
    error_back: "返回检索",
    not_found: "没有这条记录，或您无权查看。",
    unauthorized: "访问令牌无效或已被撤销；不带令牌即可按公开权限浏览。",
    busy: "请求过于频繁，请稍后再试。",
    unavailable: "服务暂时不可用，请稍后再试。",
    footer: "国家科技成果信息系统",
    prev_page: "上一页",
    page_before: "第",
    page_after: "页",
    history: "版本历史",
    history_intro: "网关收到的、您有权查看的各个版本（按收到先后编号）。",
    h_version_before: "第",
    h_version_after: "版",
    h_received: "网关收到",
    h_level: "密级",
    h_changed: "有变化的字段",
    h_first: "首个可见版本",
    h_same: "可见字段无变化",
    h_withdrawn: "撤回",
    h_current: "当前版本",
    view_shows: "当前视图展示",
    view_public_records: "公开记录",
    view_internal_records: "内部记录",
    view_commercial: "商业信息",
    view_personal: "个人信息",
    view_never: "国家秘密从不展示",
    view_not_shown: "不含",
    view_sep: "、",
    view_token: "（按访问令牌的权限）",
    view_anonymous: "（未使用访问令牌）",
};

const EN: Ui = Ui {
    site: "National S&T Results Catalogue",
    skip: "Skip to main content",
    nav_label: "Main navigation",
    nav_search: "Search",
    nav_stats: "Statistics",
    nav_about: "About",
    other_lang: "中文",
    other_lang_code: "zh",
    query_label: "Search terms",
    query_placeholder: "Title, keyword, institution, project number…",
    kind_label: "Kind",
    kind_all: "All",
    kind_achievement: "Research result",
    kind_project: "Funded project",
    sort_label: "Sort",
    sort_relevance: "Relevance",
    sort_date: "Date (newest first)",
    submit: "Search",
    results: "Results",
    total_before: "",
    total_after: "results",
    filters_label: "Filters",
    active_filters: "Active filters",
    remove_filter: "Remove filter",
    clear_all: "Clear all filters",
    facet_region: "Province",
    facet_field: "Technology field",
    facet_category: "Category",
    facet_program: "Program",
    facet_trl: "Readiness level (TRL)",
    facet_transfer_mode: "Transfer mode",
    facet_year: "Year",
    facet_kind: "Kind",
    facet_node: "Publishing node",
    facet_query: "Terms",
    trl_at_least: "at least",
    next_page: "Next page",
    first_page: "First page",
    pages_label: "Pages",
    download: "Download these results",
    empty_title: "No results",
    empty_hint_query: "Try a shorter or more common term, e.g. 电池 (battery); Chinese terms match as written, English terms as whole words.",
    empty_hint_filters: "Or remove some filters and try again.",
    empty_hint_catalogue: "The catalogue holds no public records yet.",
    region_unknown: "Region unknown",
    year_unknown: "Year unknown",
    record_fields: "Registered information",
    record_links: "Linked projects and results",
    record_links_none: "No visible linked records.",
    record_sources: "Source nodes",
    verification: "Verification",
    verification_intro: "Every record is signed by the node that registered it; the gateway checked the signature and the Merkle proof when it took the record in. Anyone can re-check with the material below.",
    v_node: "Signing node",
    v_record: "Node record id",
    v_version: "Version",
    v_key: "Key id",
    v_batch: "Batch",
    v_seq: "Entry seq",
    v_root: "Merkle root",
    v_proof: "Merkle proof",
    v_leaf: "Leaf index / tree size",
    v_status: "Status",
    v_verified: "Verified: signature, chain and proof checked by the gateway on ingest",
    v_withdrawn: "Withdrawn",
    v_download: "Download the verification material (JSON)",
    v_commands: "Re-check with openssl",
    v_unavailable: "No verification material for this version.",
    hidden_value: "(not public)",
    yes: "yes",
    no: "no",
    stats_title: "Statistics",
    stats_intro: "Visible records by province, year, technology field and program.",
    stats_by_region: "By province",
    stats_by_year: "By year",
    stats_by_field: "By technology field",
    stats_by_program: "By program",
    stats_value: "Value",
    stats_count: "Records",
    stats_csv: "Download CSV",
    stats_table: "Data table",
    stats_more: "The chart shows the largest values only; the table and the CSV have all of them.",
    about_title: "About this catalogue",
    error_title: "Something went wrong",
    error_back: "Back to search",
    not_found: "No such record, or you may not see it.",
    unauthorized: "The access token is unknown or revoked; browse without a token to read as public.",
    busy: "Too many requests; please try again shortly.",
    unavailable: "The service is unavailable for a moment; please try again shortly.",
    footer: "National S&T results information system",
    prev_page: "Previous page",
    page_before: "Page",
    page_after: "",
    history: "Version history",
    history_intro: "The versions the gateway received that you may see, numbered in the order received.",
    h_version_before: "Version",
    h_version_after: "",
    h_received: "Received by the gateway",
    h_level: "Secrecy",
    h_changed: "Fields changed",
    h_first: "First version you may see",
    h_same: "No visible field changed",
    h_withdrawn: "Withdrawn",
    h_current: "current",
    view_shows: "This view shows",
    view_public_records: "public records",
    view_internal_records: "internal records",
    view_commercial: "commercial information",
    view_personal: "personal data",
    view_never: "state secrets are never shown",
    view_not_shown: "not",
    view_sep: ", ",
    view_token: "(as your access token allows)",
    view_anonymous: "(no access token)",
};

/// Labels of record fields by key, `(中文, English)`, in the order a record page lists the
/// top-level ones. Keys nested under several parents (`name`, `region`…) mean the same thing
/// wherever they appear, so one label serves them all.
pub const FIELD_LABELS: &[(&str, (&str, &str))] = &[
    ("title", ("名称", "Title")),
    ("project_no", ("项目编号", "Project number")),
    ("registration_no", ("批准登记号", "Registration number")),
    ("registration_date", ("登记日期", "Registration date")),
    ("category", ("成果类别", "Category")),
    ("program", ("计划类别", "Program")),
    ("sub_program", ("子计划", "Sub-program")),
    ("abstract", ("简介", "Abstract")),
    ("keywords", ("关键词", "Keywords")),
    ("classification", ("分类", "Classification")),
    ("field", ("技术领域", "Technology field")),
    ("clc", ("中图分类号", "CLC code")),
    ("discipline", ("学科分类", "Discipline")),
    ("industry", ("国民经济行业", "Industry")),
    ("innovation_attribute", ("创新类型", "Innovation type")),
    ("stage", ("成果所处阶段", "Stage")),
    ("trl", ("技术就绪度", "Readiness level (TRL)")),
    ("level", ("成果水平", "Level")),
    ("evaluation", ("成果评价", "Evaluation")),
    ("method", ("方式", "Method")),
    ("organization", ("组织单位", "Organization")),
    ("conclusion", ("结论", "Conclusion")),
    ("forms", ("成果形式", "Forms")),
    ("research_period", ("研究起止时间", "Research period")),
    ("period", ("起止时间", "Period")),
    ("start", ("开始", "Start")),
    ("end", ("结束", "End")),
    ("funder", ("资助单位", "Funder")),
    ("lead", ("牵头单位", "Lead institution")),
    ("participants", ("参与单位", "Participants")),
    ("institutions", ("完成单位", "Institutions")),
    ("name", ("名称", "Name")),
    ("uscc", ("统一社会信用代码", "USCC")),
    ("region", ("地区", "Region")),
    ("unit_type", ("单位性质", "Unit type")),
    ("completers", ("完成人", "Completers")),
    ("pi", ("项目负责人", "Principal investigator")),
    ("degree", ("学位", "Degree")),
    ("institution", ("工作单位", "Institution")),
    ("contribution", ("贡献", "Contribution")),
    ("id_number", ("证件号码", "ID number")),
    ("phone", ("电话", "Phone")),
    ("email", ("电子邮箱", "Email")),
    ("ip", ("知识产权", "Intellectual property")),
    ("type", ("类型", "Type")),
    ("number", ("编号", "Number")),
    ("status", ("状态", "Status")),
    ("date", ("日期", "Date")),
    ("funding", ("项目来源", "Funding")),
    ("budget", ("经费（万元）", "Budget (10k yuan)")),
    ("total", ("合计", "Total")),
    ("central_fiscal", ("中央财政", "Central fiscal")),
    ("local_fiscal", ("地方财政", "Local fiscal")),
    ("self_raised", ("自筹", "Self-raised")),
    ("acceptance", ("验收", "Acceptance")),
    ("report_no", ("报告编号", "Report number")),
    ("transfer_obligation", ("转化义务", "Transfer obligation")),
    ("required", ("须转化", "Required")),
    ("deadline", ("期限", "Deadline")),
    ("description", ("说明", "Description")),
    ("transfer", ("成果转化", "Transfer")),
    ("intention", ("转化意向", "Intention")),
    ("modes", ("转化方式", "Modes")),
    ("price", ("价格（万元）", "Price (10k yuan)")),
    ("conditions", ("条件", "Conditions")),
    ("application", ("应用情况", "Application")),
    ("industries", ("应用行业", "Industries")),
    ("benefits", ("经济效益", "Benefits")),
    ("year", ("年度", "Year")),
    ("revenue", ("收入（万元）", "Revenue (10k yuan)")),
    ("profit", ("利润（万元）", "Profit (10k yuan)")),
    ("tax", ("税收（万元）", "Tax (10k yuan)")),
    ("social_benefit", ("社会效益", "Social benefit")),
    ("technical_indicators", ("技术指标", "Technical indicators")),
    ("contact", ("联系人", "Contact")),
    ("address", ("地址", "Address")),
    ("postcode", ("邮编", "Postcode")),
    ("recommender", ("推荐单位", "Recommender")),
    ("code", ("代码", "Code")),
    ("secrecy", ("密级", "Secrecy")),
    ("term_years", ("保密期限（年）", "Term (years)")),
    ("decision", ("降解密决定", "Declassification decision")),
    ("reference", ("文号", "Reference")),
    ("authority", ("决定机关", "Authority")),
    ("previous_level", ("原密级", "Previous level")),
    (
        "confidential_fields",
        ("声明保密的字段", "Fields declared confidential"),
    ),
];

/// Keys that mean something else on a person (`completers[]`, `pi`, `contact`): a person's
/// `title` is their professional title (职称), their `name` a person's name.
const PERSON_LABELS: &[(&str, (&str, &str))] = &[
    ("title", ("职称", "Professional title")),
    ("name", ("姓名", "Name")),
];

/// The parents whose objects are people.
const PEOPLE: [&str; 3] = ["completers", "pi", "contact"];

/// The label of field `key` (the key itself when the schema grew a field this table lacks).
pub fn field_label(key: &str, lang: Lang) -> String {
    FIELD_LABELS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or_else(|| key.to_owned(), |(_, pair)| lang.pick(*pair).to_owned())
}

/// The label of field `key` inside an object of field `parent`.
pub fn field_label_in(parent: &str, key: &str, lang: Lang) -> String {
    if PEOPLE.contains(&parent)
        && let Some((_, pair)) = PERSON_LABELS.iter().find(|(k, _)| *k == key)
    {
        return lang.pick(*pair).to_owned();
    }
    field_label(key, lang)
}

/// Where `key` comes in a record page (unknown keys last, in the record's order).
pub fn field_order(key: &str) -> usize {
    FIELD_LABELS
        .iter()
        .position(|(k, _)| *k == key)
        .unwrap_or(FIELD_LABELS.len())
}

/// A secrecy level as people say it.
pub fn secrecy_label(level: &str, lang: Lang) -> String {
    let pair = match level {
        "public" => ("公开", "public"),
        "internal" => ("内部", "internal"),
        "secret" => ("秘密", "secret"),
        "confidential" => ("机密", "confidential"),
        "top_secret" => ("绝密", "top secret"),
        other => return other.to_owned(),
    };
    lang.pick(pair).to_owned()
}

/// A record kind as people say it.
pub fn kind_label(kind: &str, lang: Lang) -> String {
    let ui = lang.ui();
    match kind {
        "achievement" => ui.kind_achievement.to_owned(),
        "funded_project" => ui.kind_project.to_owned(),
        other => other.to_owned(),
    }
}

/// A region code as people say it: the province's name (GB/T 2260), with the code when it
/// names a city or county under it.
pub fn region_label(code: &str) -> String {
    match rix_schema::codes::province_name(code) {
        Some(name) if code.ends_with("0000") => name.to_owned(),
        Some(name) => format!("{name}（{code}）"),
        None => code.to_owned(),
    }
}

/// What the reader's view of the catalogue is, in words, from the entitlements their request
/// was read with (`token`: whether a token named them): what it shows, what it leaves out,
/// and that state secrets are never shown to anyone. It says only what the reader's own
/// entitlements are — nothing about the catalogue.
pub fn view_note(e: rix_schema::sensitivity::Entitlements, token: bool, lang: Lang) -> String {
    let ui = lang.ui();
    let classes = [
        (true, ui.view_public_records),
        (e.internal, ui.view_internal_records),
        (e.commercial, ui.view_commercial),
        (e.personal, ui.view_personal),
    ];
    let shown: Vec<&str> = classes.iter().filter(|c| c.0).map(|c| c.1).collect();
    let left_out: Vec<&str> = classes.iter().filter(|c| !c.0).map(|c| c.1).collect();
    let (colon, stop, semi) = match lang {
        Lang::Zh => ("：", "。", "；"),
        Lang::En => (": ", ".", "; "),
    };
    let mut note = format!(
        "{}{colon}{} {}",
        ui.view_shows,
        shown.join(ui.view_sep),
        if token {
            ui.view_token
        } else {
            ui.view_anonymous
        }
    );
    if lang == Lang::Zh {
        note = note.replace(" （", "（");
    }
    if !left_out.is_empty() {
        note.push_str(&format!(
            "{semi}{}{colon}{}",
            ui.view_not_shown,
            left_out.join(ui.view_sep)
        ));
    }
    note.push_str(&format!("{semi}{}{stop}", ui.view_never));
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use rix_schema::sensitivity::Entitlements;

    #[test]
    fn the_view_note_says_what_the_reader_sees_and_what_not() {
        let public = view_note(Entitlements::PUBLIC, false, Lang::Zh);
        assert_eq!(
            public,
            "当前视图展示：公开记录（未使用访问令牌）；不含：内部记录、商业信息、个人信息；国家秘密从不展示。"
        );
        let all = Entitlements {
            internal: true,
            commercial: true,
            personal: true,
        };
        assert_eq!(
            view_note(all, true, Lang::En),
            "This view shows: public records, internal records, commercial information, personal data (as your access token allows); state secrets are never shown."
        );
    }
}
