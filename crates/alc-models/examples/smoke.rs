use alc_kernels::cpu::CpuBackend;
use alc_models::Logits;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let mut m = alc_models::load(&path).unwrap();
    eprintln!("load {:?} {:?}", t.elapsed(), m.hp);
    for t in m.file.tensors().iter().take(12) {
        eprintln!("{} {:?} {}", t.name, t.dims, t.dtype);
    }
    let be = CpuBackend::new(2);
    m.pack_weights(&be);
    let mut st = m.new_state(512, 128).unwrap();
    let toks: Vec<u32> = std::env::args()
        .nth(2)
        .unwrap()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let t = std::time::Instant::now();
    let mut logits = m
        .forward(&be, &mut st, &toks, Logits::Last)
        .unwrap()
        .to_vec();
    eprintln!("prefill {:?}", t.elapsed());
    let mut out = vec![];
    let t = std::time::Instant::now();
    for _ in 0..32 {
        let id = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(id);
        logits = m
            .forward(&be, &mut st, &[id], Logits::Last)
            .unwrap()
            .to_vec();
    }
    eprintln!("decode 32 in {:?}", t.elapsed());
    println!("{:?}", out);
}
