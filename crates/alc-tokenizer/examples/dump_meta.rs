fn main() {
    let path = std::env::args().nth(1).unwrap();
    let f = alc_format::GgufFile::open(&path).unwrap();
    for (k, v) in f.metadata() {
        if k.starts_with("tokenizer.") {
            match v.as_array() {
                Some(a) => println!("{k}: array[{}]", a.len()),
                None => println!("{k}: {:?}", v),
            }
        }
    }
    let toks = f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    let types = f
        .get_i64_array("tokenizer.ggml.token_type")
        .unwrap()
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for t in &types {
        *counts.entry(*t).or_insert(0) += 1;
    }
    println!("type counts {counts:?}");
    for (i, (t, ty)) in toks.iter().zip(types.iter()).enumerate() {
        if *ty != 1 && *ty != 6 && (i < 300 || *ty != 5) {
            println!("  {i} type={ty} {t:?}");
        }
    }
    if let Some(s) = f.get_f32_array("tokenizer.ggml.scores").unwrap() {
        println!("scores[0..10] {:?}", &s[..10.min(s.len())]);
    }
    if let Some(m) = f.get_str_array("tokenizer.ggml.merges").unwrap() {
        println!("merges[0..5] {:?}", &m[..5]);
    }
}
