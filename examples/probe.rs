fn main() {
    for f in std::env::args().skip(1) {
        match prom_adapter::config::load_rules(std::path::Path::new(&f)) {
            Ok(r) => println!("ok: {} custom", r.custom.len()),
            Err(e) => println!("{e}"),
        }
    }
}
