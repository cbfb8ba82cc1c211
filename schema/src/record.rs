//! Serde types for the record kinds, mirroring `schemas/*.json` field for field.
//!
//! The JSON Schema files are the contract; these types are how Rust code builds and reads
//! records. They round-trip exactly: optional fields stay absent when absent, empty lists stay
//! empty lists, and amounts keep the number form they were written in ([`Amount`]), so a record
//! read and written again hashes to the same canonical bytes. Unknown fields are refused, as the
//! schemas refuse them.
//!
//! Why typed records are not what the services pass around: a node and a gateway handle records
//! as JSON values, exactly as submitted and signed; these types serve the sample generator, tests
//! and any Rust caller that builds a record.
//!
//! What it may not touch: rules. The types check shape only; whether a record is valid is
//! [`crate::validate`]'s, against the schema files, which these types follow and not the reverse.

use crate::SecrecyLevel;
use serde::{Deserialize, Serialize};

/// An amount in 万元 (ten thousand yuan), kept exactly as written (`12` stays `12`, `12.5` stays
/// `12.5`) so that re-serializing never changes a signed record's bytes.
pub type Amount = serde_json::Number;

/// Declares an enum whose wire values are fixed Chinese strings, with `ALL` and `as_str`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (schema) value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }
    };
}

wire_enum! {
    /// 成果类别.
    Category {
        /// 应用技术 (registration flag Y).
        AppliedTechnology = "应用技术",
        /// 基础理论 (flag J).
        BasicTheory = "基础理论",
        /// 软科学 (flag R).
        SoftScience = "软科学",
    }
}

impl Category {
    /// The category flag of the registration number (批准登记号).
    pub fn registration_flag(self) -> char {
        match self {
            Category::AppliedTechnology => 'Y',
            Category::BasicTheory => 'J',
            Category::SoftScience => 'R',
        }
    }
}

wire_enum! {
    /// 技术领域: the national high-technology fields, plus agriculture and other.
    Field {
        /// 电子信息.
        ElectronicInformation = "电子信息",
        /// 生物与新医药.
        BiomedicalAndPharma = "生物与新医药",
        /// 航空航天.
        Aerospace = "航空航天",
        /// 新材料.
        NewMaterials = "新材料",
        /// 高技术服务.
        HighTechServices = "高技术服务",
        /// 新能源与节能.
        NewEnergy = "新能源与节能",
        /// 资源与环境.
        ResourcesAndEnvironment = "资源与环境",
        /// 先进制造与自动化.
        AdvancedManufacturing = "先进制造与自动化",
        /// 现代农业.
        ModernAgriculture = "现代农业",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 创新类型.
    InnovationAttribute {
        /// 原始创新.
        Original = "原始创新",
        /// 集成创新.
        Integrated = "集成创新",
        /// 引进消化吸收再创新.
        Reinnovation = "引进消化吸收再创新",
    }
}

wire_enum! {
    /// 成果所处阶段.
    Stage {
        /// 初期阶段.
        Early = "初期阶段",
        /// 中期阶段.
        Middle = "中期阶段",
        /// 成熟应用阶段.
        Mature = "成熟应用阶段",
    }
}

wire_enum! {
    /// 成果水平.
    Level {
        /// 国际领先.
        InternationalLeading = "国际领先",
        /// 国际先进.
        InternationalAdvanced = "国际先进",
        /// 国内领先.
        DomesticLeading = "国内领先",
        /// 国内先进.
        DomesticAdvanced = "国内先进",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 评价方式.
    EvaluationMethod {
        /// 验收.
        Acceptance = "验收",
        /// 评价.
        Evaluation = "评价",
        /// 鉴定.
        Appraisal = "鉴定",
        /// 行业准入.
        IndustryAccess = "行业准入",
        /// 评审.
        Review = "评审",
        /// 结题.
        Closure = "结题",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 成果形式.
    Form {
        /// 论文.
        Paper = "论文",
        /// 专利.
        Patent = "专利",
        /// 软件.
        Software = "软件",
        /// 标准.
        Standard = "标准",
        /// 新产品.
        NewProduct = "新产品",
        /// 新工艺.
        NewProcess = "新工艺",
        /// 新材料.
        NewMaterial = "新材料",
        /// 新装置.
        NewDevice = "新装置",
        /// 生物新品种.
        NewVariety = "生物新品种",
        /// 研究报告.
        Report = "研究报告",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 单位性质.
    UnitType {
        /// 高等院校.
        University = "高等院校",
        /// 科研院所.
        Institute = "科研院所",
        /// 企业.
        Company = "企业",
        /// 医疗机构.
        Hospital = "医疗机构",
        /// 政府机关.
        Government = "政府机关",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 学位.
    Degree {
        /// 博士.
        Doctor = "博士",
        /// 硕士.
        Master = "硕士",
        /// 学士.
        Bachelor = "学士",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 知识产权类型.
    IpType {
        /// 发明专利.
        InventionPatent = "发明专利",
        /// 实用新型专利.
        UtilityModel = "实用新型专利",
        /// 外观设计专利.
        Design = "外观设计专利",
        /// 国际专利.
        InternationalPatent = "国际专利",
        /// 软件著作权.
        SoftwareCopyright = "软件著作权",
        /// 植物新品种权.
        PlantVariety = "植物新品种权",
        /// 集成电路布图设计.
        IcLayout = "集成电路布图设计",
        /// 标准.
        Standard = "标准",
    }
}

wire_enum! {
    /// 知识产权状态.
    IpStatus {
        /// 申请中.
        Pending = "申请中",
        /// 已授权.
        Granted = "已授权",
        /// 已失效.
        Lapsed = "已失效",
    }
}

wire_enum! {
    /// 转化方式.
    TransferMode {
        /// 转让.
        Assignment = "转让",
        /// 许可.
        Licence = "许可",
        /// 作价投资.
        Investment = "作价投资",
        /// 技术服务.
        Service = "技术服务",
        /// 合作开发.
        JointDevelopment = "合作开发",
        /// 其他.
        Other = "其他",
    }
}

wire_enum! {
    /// 转化状态.
    TransferStatus {
        /// 未转化.
        NotTransferred = "未转化",
        /// 转化中.
        InProgress = "转化中",
        /// 已转化.
        Transferred = "已转化",
    }
}

wire_enum! {
    /// 应用状态.
    ApplicationStatus {
        /// 未应用.
        NotApplied = "未应用",
        /// 试用.
        Trial = "试用",
        /// 小批量或小范围应用.
        Limited = "小批量或小范围应用",
        /// 稳定应用.
        Stable = "稳定应用",
        /// 已规模应用.
        LargeScale = "已规模应用",
    }
}

wire_enum! {
    /// 项目状态.
    ProjectStatus {
        /// 立项.
        Approved = "立项",
        /// 在研.
        Ongoing = "在研",
        /// 结题.
        Closed = "结题",
        /// 验收通过.
        Accepted = "验收通过",
        /// 验收不通过.
        Failed = "验收不通过",
        /// 终止.
        Terminated = "终止",
    }
}

wire_enum! {
    /// 验收结论.
    AcceptanceConclusion {
        /// 通过.
        Passed = "通过",
        /// 不通过.
        NotPassed = "不通过",
        /// 结题.
        Closed = "结题",
    }
}

/// A date range (`period` in the schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Start date, YYYY-MM-DD.
    pub start: String,
    /// End date, YYYY-MM-DD; not before `start`.
    pub end: String,
}

/// An institution (完成单位 / 承担单位).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// Registered name.
    pub name: String,
    /// Unified social credit code.
    pub uscc: String,
    /// GB/T 2260 region code.
    pub region: String,
    /// Kind of institution.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit_type: Option<UnitType>,
}

/// A researcher: completer of a result or principal investigator of a project.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Name (public).
    pub name: String,
    /// Professional title (职称).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    /// Highest degree.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub degree: Option<Degree>,
    /// Name of the person's institution.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub institution: Option<String>,
    /// Contribution to the result.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contribution: Option<String>,
    /// Identity card number (personal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_number: Option<String>,
    /// Phone (personal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone: Option<String>,
    /// E-mail (personal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
}

/// Contact for a record (personal as a whole).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Contact name.
    pub name: String,
    /// Phone.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    /// Postal address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
    /// Postcode.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub postcode: Option<String>,
}

/// A reference from a result to the funded project it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundingRef {
    /// Program, e.g. 国家重点研发计划.
    pub program: String,
    /// Sub-program (专项).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub_program: Option<String>,
    /// Project number as issued by the funder.
    pub project_no: String,
    /// Funder name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub funder: Option<String>,
}

/// The decision behind a secrecy level change (降解密决定).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecrecyDecision {
    /// Decision reference (文号).
    pub reference: String,
    /// Decision date.
    pub date: String,
    /// Deciding authority.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authority: Option<String>,
    /// The level before the decision.
    pub previous_level: SecrecyLevel,
}

/// Record-level secrecy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrecy {
    /// The level.
    pub level: SecrecyLevel,
    /// Secrecy term in years.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub term_years: Option<u8>,
    /// The decision that set this level, for a changed level.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<SecrecyDecision>,
}

impl Secrecy {
    /// A record with no secrecy decision at the given level.
    pub fn at(level: SecrecyLevel) -> Secrecy {
        Secrecy {
            level,
            term_years: None,
            decision: None,
        }
    }
}

/// Classification codes of an achievement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    /// Technology field.
    pub field: Field,
    /// 中图分类号.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clc: Option<String>,
    /// GB/T 13745 discipline code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discipline: Option<String>,
    /// GB/T 4754 industry code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub industry: Option<String>,
}

/// How an achievement was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Method.
    pub method: EvaluationMethod,
    /// Date.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub date: Option<String>,
    /// Evaluating organization.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub organization: Option<String>,
    /// Conclusion text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conclusion: Option<String>,
}

/// An intellectual-property item of an achievement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpItem {
    /// Type.
    #[serde(rename = "type")]
    pub ip_type: IpType,
    /// Patent, registration or standard number.
    pub number: String,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    /// Status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<IpStatus>,
    /// Filing or grant date.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub date: Option<String>,
}

/// Transfer intention, modes, status and terms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// Whether the holder wants to transfer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub intention: Option<bool>,
    /// Modes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub modes: Option<Vec<TransferMode>>,
    /// Status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<TransferStatus>,
    /// Price in 万元 (commercial).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub price: Option<Amount>,
    /// Terms (commercial).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conditions: Option<String>,
}

/// Economic benefits (commercial as a whole).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benefits {
    /// Year the figures are for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub year: Option<u16>,
    /// Revenue, 万元.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revenue: Option<Amount>,
    /// Profit, 万元.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profit: Option<Amount>,
    /// Tax, 万元.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tax: Option<Amount>,
}

/// Application and benefits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<ApplicationStatus>,
    /// Where it is applied.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub industries: Option<String>,
    /// Economic benefits (commercial).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub benefits: Option<Benefits>,
    /// Social benefit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub social_benefit: Option<String>,
}

/// 推荐单位.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recommender {
    /// Name.
    pub name: String,
    /// Code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
}

/// 科技成果: a research result as registered (schema `achievement.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Achievement {
    /// 成果名称.
    pub title: String,
    /// 成果类别.
    pub category: Category,
    /// 成果简介.
    #[serde(rename = "abstract")]
    pub abstract_text: String,
    /// 关键词.
    pub keywords: Vec<String>,
    /// Classification codes.
    pub classification: Classification,
    /// 创新类型.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub innovation_attribute: Option<InnovationAttribute>,
    /// 成果所处阶段.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stage: Option<Stage>,
    /// Technology readiness level 1–9.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trl: Option<u8>,
    /// 成果水平.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level: Option<Level>,
    /// 成果评价.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evaluation: Option<Evaluation>,
    /// 成果形式.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub forms: Option<Vec<Form>>,
    /// 研究起止时间.
    pub research_period: Period,
    /// 完成单位, first is the main institution.
    pub institutions: Vec<Institution>,
    /// 完成人.
    pub completers: Vec<Person>,
    /// 知识产权.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip: Option<Vec<IpItem>>,
    /// 项目来源.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub funding: Option<Vec<FundingRef>>,
    /// 成果转化.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transfer: Option<Transfer>,
    /// 应用情况.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub application: Option<Application>,
    /// 主要技术指标 (commercial).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub technical_indicators: Option<String>,
    /// 联系人 (personal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contact: Option<Contact>,
    /// 推荐单位.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recommender: Option<Recommender>,
    /// 密级.
    pub secrecy: Secrecy,
    /// JSON Pointers the submitter declares commercial secrets.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidential_fields: Option<Vec<String>>,
    /// 批准登记号, assigned on approval.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub registration_no: Option<String>,
    /// 登记日期.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub registration_date: Option<String>,
}

/// The funder of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funder {
    /// Name.
    pub name: String,
    /// Unified social credit code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uscc: Option<String>,
    /// Region code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<String>,
}

/// Budget split in 万元; the parts add up to the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Total.
    pub total: Amount,
    /// 中央财政.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub central_fiscal: Option<Amount>,
    /// 地方财政.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local_fiscal: Option<Amount>,
    /// 自筹 (commercial).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub self_raised: Option<Amount>,
}

/// 验收.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// Date.
    pub date: String,
    /// Conclusion.
    pub conclusion: AcceptanceConclusion,
    /// Accepting organization.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub organization: Option<String>,
    /// Acceptance report number.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub report_no: Option<String>,
}

/// 成果转化义务.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferObligation {
    /// Whether the funding carries a transfer obligation.
    pub required: bool,
    /// Deadline.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deadline: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
}

/// 科技计划项目: a funded project (schema `funded_project.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundedProject {
    /// 项目编号.
    pub project_no: String,
    /// 项目名称.
    pub title: String,
    /// 计划类别.
    pub program: String,
    /// 专项.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub_program: Option<String>,
    /// Funder.
    pub funder: Funder,
    /// 项目简介.
    #[serde(rename = "abstract", skip_serializing_if = "Option::is_none", default)]
    pub abstract_text: Option<String>,
    /// 关键词.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keywords: Option<Vec<String>>,
    /// Technology field.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<Field>,
    /// 承担单位.
    pub lead: Institution,
    /// 参与单位.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub participants: Option<Vec<Institution>>,
    /// 项目负责人.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pi: Option<Person>,
    /// 执行期.
    pub period: Period,
    /// 经费.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub budget: Option<Budget>,
    /// 项目状态.
    pub status: ProjectStatus,
    /// 验收.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acceptance: Option<Acceptance>,
    /// 成果转化义务.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transfer_obligation: Option<TransferObligation>,
    /// 联系人 (personal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contact: Option<Contact>,
    /// 密级.
    pub secrecy: Secrecy,
    /// JSON Pointers the submitter declares commercial secrets.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidential_fields: Option<Vec<String>>,
}
