//! Kernel tests: every fast path against a naive loop.

use super::linear::linear_rows_impl;
use super::*;
use crate::numeric::{Mac, Weight};
use crate::testutil::Rng;

/// A conv case: `(c, h, w, co, kh, kw, sh, sw, ph, pw)`.
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// The geometry of a conv case, output size from the usual floor formula.
fn conv_geom(&(c, h, w, co, kh, kw, sh, sw, ph, pw): &ConvCase) -> Geom {
    Geom {
        c,
        h,
        w,
        co,
        ho: (h + 2 * ph - kh) / sh + 1,
        wo: (w + 2 * pw - kw) / sw + 1,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
    }
}

/// Reference: the same product computed naively (tests).
fn linear_rows_naive<A: Mac<W>, W: Weight>(
    acc: &mut [A],
    w: &[W],
    stride: usize,
    rows: &[u32],
    xs: Option<&[A]>,
) {
    for (k, &r) in rows.iter().enumerate() {
        for o in 0..acc.len() {
            let wv = w[r as usize * stride + o];
            acc[o] = match xs {
                None => acc[o].add_w(wv),
                Some(xs) => acc[o].add_xw(xs[k], wv),
            };
        }
    }
}

#[test]
fn linear_scatter_matches_naive_float_and_int() {
    let mut rng = Rng::new(1);
    for &(n_in, n_out) in &[
        (7usize, 5usize),
        (40, 64),
        (33, 100),
        (10, 31),
        (5, 129),
        (60, 300),
        (200, 128),
    ] {
        let wf: Vec<f32> = (0..n_in * n_out).map(|_| rng.uniform() - 0.5).collect();
        let wi: Vec<i8> = (0..n_in * n_out)
            .map(|_| rng.int(-128, 127) as i8)
            .collect();
        let rows: Vec<u32> = (0..n_in as u32)
            .filter(|_| rng.next().is_multiple_of(3))
            .collect();
        let xs_f: Vec<f32> = rows.iter().map(|_| rng.uniform() * 4.0).collect();
        let xs_i: Vec<i32> = rows.iter().map(|_| rng.int(-128, 127) as i32).collect();
        let bias: Vec<f32> = (0..n_out).map(|_| rng.uniform()).collect();
        for xs in [None, Some(xs_f.as_slice())] {
            let mut a = bias.clone();
            let mut b = bias.clone();
            let mut c = bias.clone();
            linear_rows(&mut a, &wf, n_out, &rows, xs);
            linear_rows_impl(&mut c, &wf, n_out, &rows, xs);
            linear_rows_naive(&mut b, &wf, n_out, &rows, xs);
            // same order of operations per element: bit-identical
            assert_eq!(a, b);
            assert_eq!(c, b);
        }
        for xs in [None, Some(xs_i.as_slice())] {
            let mut a = vec![3i32; n_out];
            let mut b = vec![3i32; n_out];
            linear_rows(&mut a, &wi, n_out, &rows, xs);
            linear_rows_naive(&mut b, &wi, n_out, &rows, xs);
            assert_eq!(a, b);
            if xs.is_none() {
                let mut d = vec![3i32; n_out];
                linear_rows_i16(&mut d, &wi, n_out, &rows);
                assert_eq!(d, b);
            }
            // against i64
            let mut c = vec![3i64; n_out];
            let xs64: Option<Vec<i64>> = xs.map(|v| v.iter().map(|&x| x as i64).collect());
            linear_rows(&mut c, &wi, n_out, &rows, xs64.as_deref());
            assert!(a.iter().zip(&c).all(|(&p, &q)| p as i64 == q));
        }
    }
}

/// Naive direct convolution in torch layout (CHW input, [co][c][kh][kw] weights).
fn conv_naive(x: &[f32], wt: &[f32], g: &Geom) -> Vec<f32> {
    let mut out = vec![0.0f32; g.co * g.ho * g.wo];
    for oc in 0..g.co {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let mut s = 0.0f64;
                for c in 0..g.c {
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                            let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            s += x[(c * g.h + iy as usize) * g.w + ix as usize] as f64
                                * wt[((oc * g.c + c) * g.kh + ky) * g.kw + kx] as f64;
                        }
                    }
                }
                out[(oc * g.ho + oy) * g.wo + ox] = s as f32;
            }
        }
    }
    out
}

#[test]
fn conv_scatter_matches_naive_with_borders_and_fanout() {
    let mut rng = Rng::new(7);
    let cases = [
        (
            2usize, 5usize, 6usize, 3usize, 3usize, 3usize, 1usize, 1usize, 1usize, 1usize,
        ),
        (3, 7, 5, 4, 3, 2, 2, 1, 1, 0),
        (1, 4, 4, 2, 2, 2, 2, 2, 0, 0),
        (2, 6, 6, 3, 5, 5, 1, 1, 2, 2),
        (2, 5, 5, 2, 3, 3, 3, 3, 2, 1),
    ];
    for case in &cases {
        let g = conv_geom(case);
        let Geom {
            c,
            h,
            w,
            co,
            ho,
            wo,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
        } = g;
        let x: Vec<f32> = (0..c * h * w)
            .map(|_| {
                if rng.next().is_multiple_of(3) {
                    (rng.int(1, 4)) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let wt: Vec<f32> = (0..co * c * kh * kw)
            .map(|_| rng.int(-3, 3) as f32)
            .collect();
        // relayout: x CHW -> HWC ; w [co][c][kh][kw] -> [c][kh][kw][co]
        let mut xh = vec![0.0f32; x.len()];
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    xh[(y * w + xx) * c + ch] = x[(ch * h + y) * w + xx];
                }
            }
        }
        let mut k = vec![0.0f32; wt.len()];
        for oc in 0..co {
            for ch in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        k[((ch * kh + ky) * kw + kx) * co + oc] =
                            wt[((oc * c + ch) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        let items: Vec<u32> = (0..xh.len() as u32)
            .filter(|&i| xh[i as usize] != 0.0)
            .collect();
        let xs: Vec<f32> = items.iter().map(|&i| xh[i as usize]).collect();
        let mut acc = vec![0.0f32; ho * wo * co];
        conv_scatter(&mut acc, &k, &g, &items, Some(&xs));
        let want = conv_naive(&x, &wt, &g);
        for oc in 0..co {
            for oy in 0..ho {
                for ox in 0..wo {
                    assert_eq!(
                        acc[(oy * wo + ox) * co + oc],
                        want[(oc * ho + oy) * wo + ox],
                        "case {:?}",
                        (c, h, w, co, kh, kw, sh, sw, ph, pw)
                    );
                }
            }
        }
        // fan-out: a unit input at (y, x) reaches exactly `fanout` output positions
        for y in 0..h {
            for xx in 0..w {
                let mut cnt = 0;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let iy = (oy * sh) as isize - ph as isize;
                        let ix = (ox * sw) as isize - pw as isize;
                        let (yy, xx2) = (y as isize, xx as isize);
                        if yy >= iy && yy < iy + kh as isize && xx2 >= ix && xx2 < ix + kw as isize
                        {
                            cnt += 1;
                        }
                    }
                }
                assert_eq!(g.fanout(y, xx), cnt);
            }
        }
    }
}

#[test]
fn pooling_dense_and_scatter_agree() {
    let mut rng = Rng::new(3);
    for &(c, h, w, k, s) in &[
        (2usize, 6usize, 6usize, 2usize, 2usize),
        (3, 7, 5, 3, 2),
        (1, 5, 5, 2, 3),
    ] {
        let ho = (h - k) / s + 1;
        let wo = (w - k) / s + 1;
        let g = Geom {
            c,
            h,
            w,
            co: c,
            ho,
            wo,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: 0,
            pw: 0,
        };
        let x: Vec<i32> = (0..c * h * w)
            .map(|_| {
                if rng.next().is_multiple_of(2) {
                    rng.int(-5, 5) as i32
                } else {
                    0
                }
            })
            .collect();
        let mut dense = vec![0i64; ho * wo * c];
        pool_dense_sums::<i32>(&x, &g, &mut dense);
        let mut nz = Vec::new();
        collect_nonzero(&x, &mut nz);
        let mut wide = vec![0i64; ho * wo * c];
        let mut mark = vec![false; ho * wo * c];
        let mut touched = Vec::new();
        pool_scatter_sums::<i32>(&x, &nz, &g, &mut wide, &mut mark, &mut touched);
        assert_eq!(dense, wide);
        // naive window sums
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut sum = 0i64;
                    for ky in 0..k {
                        for kx in 0..k {
                            sum += x[((oy * s + ky) * w + ox * s + kx) * c + ch] as i64;
                        }
                    }
                    assert_eq!(dense[(oy * wo + ox) * c + ch], sum);
                }
            }
        }
        // each touched element is marked once
        let mut t = touched.clone();
        t.sort();
        t.dedup();
        assert_eq!(t.len(), touched.len());
    }
}

#[test]
fn nonzero_collection() {
    let mut x = vec![0.0f32; 37];
    x[0] = 1.0;
    x[15] = -2.0;
    x[16] = 1.0;
    x[36] = 3.0;
    x[20] = -0.0;
    x[33] = f32::NAN;
    let mut rng = Rng::new(5);
    let xi: Vec<i32> = (0..1000)
        .map(|_| {
            if rng.next().is_multiple_of(7) {
                rng.int(-3, 3) as i32
            } else {
                0
            }
        })
        .collect();
    let want_i: Vec<u32> = (0..xi.len() as u32)
        .filter(|&i| xi[i as usize] != 0)
        .collect();
    use super::simd::{set_level, Level};
    for level in [Level::Portable, Level::Avx2, Level::Avx512] {
        set_level(Some(level));
        let mut nz = vec![99];
        collect_nonzero(&x, &mut nz);
        assert_eq!(
            nz,
            vec![0, 15, 16, 33, 36],
            "{level:?}: -0.0 is zero, NaN is not"
        );
        for n in [0, 1, 15, 16, 17, 999, 1000] {
            collect_nonzero(&xi[..n], &mut nz);
            let want: Vec<u32> = want_i
                .iter()
                .copied()
                .filter(|&i| (i as usize) < n)
                .collect();
            assert_eq!(nz, want, "{level:?} n={n}");
        }
        // Appending block by block, with each block's start as the base, lists the same
        // indices as one pass over the whole array, after what the list already held.
        for block in [1, 5, 16, 17, 64, 333] {
            let mut nz = vec![7u32];
            for (b, ch) in xi.chunks(block).enumerate() {
                append_nonzero(ch, (b * block) as u32, &mut nz);
            }
            assert_eq!(nz[0], 7, "{level:?} block={block}");
            assert_eq!(&nz[1..], &want_i[..], "{level:?} block={block}");
        }
    }
    set_level(None);
}

/// Random channels-last input with about `density` active elements, its active list and the
/// kernel in the engine's `[c][kh][kw][co]` layout.
fn sparse_conv_case(rng: &mut Rng, g: &Geom, density: u64) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let x: Vec<f32> = (0..g.c * g.h * g.w)
        .map(|_| {
            if rng.next() % 100 < density {
                rng.uniform() * 2.0 - 0.5
            } else {
                0.0
            }
        })
        .collect();
    let nz: Vec<u32> = (0..x.len() as u32)
        .filter(|&i| x[i as usize] != 0.0)
        .collect();
    let k: Vec<f32> = (0..g.co * g.c * g.kh * g.kw)
        .map(|_| rng.uniform() - 0.5)
        .collect();
    (x, nz, k)
}

#[test]
fn conv_gather_equals_scatter_bit_for_bit_at_every_simd_level() {
    use super::simd::{set_level, Level};
    let mut rng = Rng::new(11);
    // (c, h, w, co, kh, kw, sh, sw, ph, pw)
    let cases = [
        (
            2usize, 9usize, 8usize, 32usize, 3usize, 3usize, 1usize, 1usize, 1usize, 1usize,
        ),
        (5, 7, 7, 3, 3, 3, 1, 1, 1, 1),
        (3, 8, 9, 37, 3, 2, 2, 1, 1, 0),
        (4, 6, 6, 70, 5, 5, 1, 1, 2, 2),
        (1, 5, 5, 8, 3, 3, 3, 3, 2, 1),
    ];
    for level in [Level::Portable, Level::Avx2, Level::Avx512] {
        set_level(Some(level));
        for case in &cases {
            let g = conv_geom(case);
            let Geom { c, h, w, co, .. } = g;
            for density in [5, 40, 100] {
                let (x, nz, k) = sparse_conv_case(&mut rng, &g, density);
                let xs: Vec<f32> = nz.iter().map(|&i| x[i as usize]).collect();
                let mut starts = Vec::new();
                let fanout: Vec<u32> = (0..h * w).map(|p| g.fanout(p / w, p % w) as u32).collect();
                let (fan, _, _) = scan_active(&nz, &x, c, h * w, &fanout, true, &mut starts);
                let want_fan: u64 = nz.iter().map(|&i| fanout[i as usize / c] as u64).sum();
                assert_eq!(fan, want_fan);
                let per_channel: Vec<f32> = (0..co).map(|i| i as f32 * 0.25).collect();
                let mut want = vec![0.0f32; g.ho * g.wo * co];
                fill_bias(&mut want, Some(&per_channel));
                conv_scatter(&mut want, &k, &g, &nz, Some(&xs));
                let mut got = vec![f32::NAN; g.ho * g.wo * co];
                let inp = Active {
                    x: &x,
                    nz: &nz,
                    starts: &starts,
                    unit: false,
                };
                conv_gather(&mut got, &k, &g, inp, Some(&per_channel), 0);
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "float gather != scatter, level {level:?}, geom {g:?}");
                // int8 weights, unit (spike) inputs
                let ki: Vec<i8> = k.iter().map(|&v| (v * 200.0) as i8).collect();
                let mut wi = vec![5i32; g.ho * g.wo * co];
                conv_scatter(&mut wi, &ki, &g, &nz, None);
                let ones = vec![1i32; x.len()];
                let mut gi = vec![0i32; g.ho * g.wo * co];
                let inp = Active {
                    x: &ones,
                    nz: &nz,
                    starts: &starts,
                    unit: true,
                };
                conv_gather(&mut gi, &ki, &g, inp, Some(&[5i32; 70][..co]), 0);
                assert_eq!(wi, gi, "int gather != scatter, level {level:?}, geom {g:?}");
            }
        }
    }
    set_level(None);
}

#[test]
fn conv_gather_i16_equals_i32_gather() {
    use super::simd::{set_level, Level};
    let mut rng = Rng::new(21);
    for level in [Level::Portable, Level::Avx2, Level::Avx512] {
        set_level(Some(level));
        // (c, h, w, co): channel counts around the 64/32/16-lane blocks
        for &(c, h, w, co) in &[
            (3usize, 9usize, 7usize, 64usize),
            (5, 6, 6, 37),
            (2, 8, 8, 100),
        ] {
            let g = Geom {
                c,
                h,
                w,
                co,
                ho: h,
                wo: w,
                kh: 3,
                kw: 3,
                sh: 1,
                sw: 1,
                ph: 1,
                pw: 1,
            };
            let k: Vec<i8> = (0..co * c * 9).map(|_| rng.int(-127, 127) as i8).collect();
            for unit in [true, false] {
                let x: Vec<i32> = (0..c * h * w)
                    .map(|_| match (rng.next() % 2, unit) {
                        (0, _) => 0,
                        (_, true) => 1,
                        _ => rng.int(-4, 4) as i32,
                    })
                    .collect();
                let nz: Vec<u32> = (0..x.len() as u32)
                    .filter(|&i| x[i as usize] != 0)
                    .collect();
                let fanout: Vec<u32> = (0..h * w).map(|p| g.fanout(p / w, p % w) as u32).collect();
                let mut starts = Vec::new();
                scan_active(&nz, &x, c, h * w, &fanout, unit, &mut starts);
                let inp = Active {
                    x: &x,
                    nz: &nz,
                    starts: &starts,
                    unit,
                };
                let bias: Vec<i32> = (0..co as i32).map(|v| v * 3 - 50).collect();
                let mut want = vec![0i32; h * w * co];
                conv_gather(&mut want, &k, &g, inp, Some(&bias), 0);
                let max_term = if unit { 127 } else { 4 * 127 };
                for flush in [1usize, 3, 32767 / max_term] {
                    let mut got = vec![0i32; h * w * co];
                    conv_gather_i16(&mut got, &k, &g, inp, Some(&bias), 0, flush);
                    assert_eq!(
                        got, want,
                        "level {level:?} c={c} co={co} unit={unit} flush={flush}"
                    );
                    // a range of output positions alone (the split across threads)
                    let mut part = vec![0i32; 5 * co];
                    conv_gather_i16(&mut part, &k, &g, inp, Some(&bias), 7, flush);
                    assert_eq!(part[..], want[7 * co..12 * co]);
                }
            }
        }
    }
    set_level(None);
}

#[test]
fn conv_dense_vnni_equals_gather() {
    use super::vnni;
    if !vnni::cpu_has() {
        // The kernel is only compiled in for CPUs with AVX-512 VNNI; nothing to compare here.
        return;
    }
    super::simd::set_level(None);
    let mut rng = Rng::new(31);
    // (c, h, w, co, kh, kw, sh, sw, ph, pw): channels not a multiple of 4, strides, no padding,
    // wide padding, 1x1 kernels, co of one and of several 64-channel blocks
    let cases = [
        (
            32usize, 17usize, 17usize, 64usize, 3usize, 3usize, 1usize, 1usize, 1usize, 1usize,
        ),
        (10, 9, 7, 16, 3, 3, 2, 1, 1, 0),
        (8, 6, 6, 80, 5, 5, 1, 1, 2, 2),
        (13, 5, 8, 32, 1, 1, 1, 1, 0, 0),
        (9, 7, 7, 144, 3, 2, 2, 2, 0, 1),
    ];
    for case in &cases {
        let g = conv_geom(case);
        let Geom {
            c,
            h,
            w,
            co,
            kh,
            kw,
            ..
        } = g;
        assert!(vnni::fits(&g), "{g:?}");
        let k: Vec<i8> = (0..co * c * kh * kw)
            .map(|_| rng.int(-128, 127) as i8)
            .collect();
        let wp = vnni::pack_kernel(&k, &g);
        let fanout: Vec<u32> = (0..h * w).map(|p| g.fanout(p / w, p % w) as u32).collect();
        for (density, top) in [(3u64, 1i64), (30, 4), (100, 255)] {
            let x: Vec<i32> = (0..c * h * w)
                .map(|_| {
                    if rng.next() % 100 < density {
                        rng.int(0, top) as i32
                    } else {
                        0
                    }
                })
                .collect();
            let nz: Vec<u32> = (0..x.len() as u32)
                .filter(|&i| x[i as usize] != 0)
                .collect();
            let mut starts = Vec::new();
            let (want_fan, want_max, _) =
                scan_active(&nz, &x, c, h * w, &fanout, false, &mut starts);
            let bias: Vec<i32> = (0..co as i32).map(|v| v * 7 - 300).collect();
            let n_out = g.ho * g.wo * co;
            let mut want = vec![0i32; n_out];
            let inp = Active {
                x: &x,
                nz: &nz,
                starts: &starts,
                unit: false,
            };
            conv_gather(&mut want, &k, &g, inp, Some(&bias), 0);
            let (mut xp, mut occ) = (Vec::new(), Vec::new());
            let (fan, max_x) =
                vnni::pack_input(&x, &g, &fanout, &mut xp, &mut occ).expect("in 0..=255");
            assert_eq!((fan, max_x), (want_fan, want_max), "{g:?}");
            let inp = vnni::Packed { xp: &xp, occ: &occ };
            let mut got = vec![i32::MIN; n_out];
            vnni::conv_dense(&mut got, &wp, &g, &inp, Some(&bias), 0);
            assert_eq!(got, want, "dense != gather, {g:?} density {density}");
            let mut nob = vec![0i32; n_out];
            let mut want0 = vec![0i32; n_out];
            conv_gather(&mut want0, &k, &g, inp_of(&x, &nz, &starts), None, 0);
            vnni::conv_dense(&mut nob, &wp, &g, &inp, None, 0);
            assert_eq!(nob, want0, "no bias, {g:?}");
            // split by output channels: parts on real threads, in reverse order, or only some
            // of them called by the runner (the rest run afterwards)
            for parts in [1usize, 2, 3, 5] {
                let mut got = vec![i32::MIN; n_out];
                vnni::conv_dense_by_channels(&mut got, &wp, &g, &inp, Some(&bias), parts, &|job| {
                    std::thread::scope(|s| {
                        for k in 0..parts {
                            s.spawn(move || job(k));
                        }
                    })
                });
                assert_eq!(got, want, "by channels, {parts} parts, {g:?}");
                let mut got = vec![i32::MIN; n_out];
                vnni::conv_dense_by_channels(&mut got, &wp, &g, &inp, Some(&bias), parts, &|job| {
                    (0..parts).rev().step_by(2).for_each(job)
                });
                assert_eq!(got, want, "by channels, some parts, {parts} parts, {g:?}");
            }
            // ranges of output positions alone (the split across threads), with every mix of
            // the kernel's blocks of six, four and one positions
            let first = (g.ho * g.wo) / 3;
            for count in [1usize, 3, 4, 5, 6, 7, 10, 11, 13] {
                let count = count.min(g.ho * g.wo - first);
                let mut part = vec![0i32; count * co];
                vnni::conv_dense(&mut part, &wp, &g, &inp, Some(&bias), first);
                assert_eq!(
                    part[..],
                    want[first * co..(first + count) * co],
                    "{count} at {first}"
                );
            }
        }
        // values outside 0..=255 are refused
        let mut x = vec![0i32; c * h * w];
        let (mut xp, mut occ) = (Vec::new(), Vec::new());
        x[c] = -1;
        assert!(vnni::pack_input(&x, &g, &fanout, &mut xp, &mut occ).is_none());
        x[c] = 256;
        assert!(vnni::pack_input(&x, &g, &fanout, &mut xp, &mut occ).is_none());
    }
    // channel parts: whole groups (64 while they fit, then 16), covering every channel once
    for (co, parts) in [
        (64usize, 2usize),
        (144, 2),
        (512, 2),
        (512, 3),
        (80, 4),
        (16, 1),
    ] {
        let ranges = vnni::channel_parts(co, parts);
        assert_eq!(ranges.len(), parts);
        let mut next = 0;
        for &(lo, hi) in ranges.iter().filter(|r| r.0 < r.1) {
            assert_eq!(lo, next, "{co} {parts} {ranges:?}");
            assert!(lo % 16 == 0 && hi % 16 == 0);
            next = hi;
        }
        assert_eq!(next, co, "{co} {parts} {ranges:?}");
    }
    assert_eq!(vnni::channel_groups(512), 8);
    assert_eq!(vnni::channel_groups(80), 2);
    assert_eq!(vnni::channel_groups(144), 3);
    // geometries the kernel does not take
    let base = Geom {
        c: 8,
        h: 4,
        w: 4,
        co: 16,
        ho: 4,
        wo: 4,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
    };
    assert!(!vnni::fits(&Geom { co: 24, ..base }));
    assert!(!vnni::fits(&Geom { c: 2, ..base }));
    assert!(!vnni::fits(&Geom { ph: 5000, ..base }));
}

fn inp_of<'a>(x: &'a [i32], nz: &'a [u32], starts: &'a [u32]) -> Active<'a, i32> {
    Active {
        x,
        nz,
        starts,
        unit: false,
    }
}
