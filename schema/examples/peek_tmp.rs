use rix_schema::sample::*;
fn main() {
    let g = SampleGenerator::new(SampleConfig::default());
    let m = SampleGenerator::new(SampleConfig {
        node: NodeProfile::ministry("most", "科技部", "348"),
        ..SampleConfig::default()
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&g.achievement(4)).unwrap()
    );
    println!("{}", serde_json::to_string_pretty(&g.project(1)).unwrap());
    for i in 0..12 {
        let a = g.achievement(i);
        println!(
            "{} | {:?} | {:?} | {:?}",
            a.title,
            a.keywords,
            a.registration_no,
            a.funding.as_ref().map(|f| &f[0].project_no)
        );
    }
    for i in 0..8 {
        let a = m.achievement(i);
        println!(
            "M {} | {} | {:?}",
            a.title, a.institutions[0].name, a.registration_no
        );
    }
    for i in 0..8 {
        let p = g.project(i);
        println!(
            "P {} | {} {} {:?} | {} | {} {:?}",
            p.project_no,
            p.program,
            p.sub_program.unwrap_or_default(),
            p.budget.map(|b| b.total.to_string()),
            p.lead.name,
            p.period.start,
            p.status
        );
    }
    for i in 0..4 {
        let p = m.project(i);
        println!("MP {} | {} | {}", p.project_no, p.program, p.title);
    }
    let t = std::time::Instant::now();
    let mut n = 0usize;
    for i in 0..100_000 {
        n += g.achievement(i).title.len();
    }
    let ta = t.elapsed();
    let t = std::time::Instant::now();
    for i in 0..100_000 {
        n += g.project(i).title.len();
    }
    println!(
        "100k achievements {:?}, 100k projects {:?} ({n})",
        ta,
        t.elapsed()
    );
}
